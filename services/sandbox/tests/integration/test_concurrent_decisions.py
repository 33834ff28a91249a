"""Concurrent decisions get distinct, gap-free numbers in their agency's register
(PostgreSQL): approvals and rejections racing in two registers at once, and refused
approvals among them, which take no number."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from sqlalchemy import create_engine, select

from sandbox.models import DecisionRow

from .world import World, approval

pytestmark = pytest.mark.postgres

TODAY = date(2026, 11, 23)
TELECOM = {"sector": "telecom", "requested_months": 36,
           "exemptions": [{"provision": "spectrum licensing", "justification": "LEO"}]}


def numbers(decisions: list[str], register: str) -> list[int]:
    pattern = re.compile(rf"([0-9]+)/{re.escape(register)}")
    return sorted(int(m[1]) for d in decisions if (m := pattern.fullmatch(d)))


def test_concurrent_decisions_get_distinct_gap_free_numbers(client, tokens, sandbox_db
                                                            ) -> None:
    w = World(client, tokens)
    fintech = [w.assessed()["id"] for _ in range(6)]
    telecom = [w.assessed(**TELECOM)["id"] for _ in range(4)]
    # One approval is refused (limits wider than requested): it must take no number.
    bodies = {app_id: approval(TODAY) for app_id in fintech + telecom}
    bodies[fintech[0]] = approval(TODAY, limits={"regions": ["Mars"], "max_participants": 1})
    bodies[fintech[1]] = {"decision": "reject", "reasons": ["not ready"]}
    bodies[telecom[0]] = {"decision": "reject", "reasons": ["spectrum unavailable"]}
    start = threading.Barrier(len(bodies))

    def decide(app_id: str) -> tuple[int, dict]:
        start.wait()
        response = client.post(f"/v1/applications/{app_id}/decision", headers=w.r3,
                               json=bodies[app_id])
        return response.status_code, response.json()

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = dict(zip(bodies, pool.map(decide, bodies), strict=True))

    assert answers[fintech[0]][0] == 422
    decided = {a: body for a, (status, body) in answers.items() if status == 200}
    assert len(decided) == len(bodies) - 1
    sbv = numbers([d["decision_no"] for d in decided.values()], "QĐ-TNKS-SBV")
    mic = numbers([d["decision_no"] for d in decided.values()], "QĐ-TNKS-MIC")
    assert sbv == list(range(1, 6)) and mic == list(range(1, 5))
    assert {d["decision_year"] for d in decided.values()} == {2026}

    engine = create_engine(sandbox_db)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(DecisionRow.decision_no, DecisionRow.kind)).all()
    finally:
        engine.dispose()
    assert sorted(no for no, _ in stored) == sorted(d["decision_no"]
                                                    for d in decided.values())
    assert sorted(kind for _, kind in stored) == ["approval"] * 7 + ["rejection"] * 2
