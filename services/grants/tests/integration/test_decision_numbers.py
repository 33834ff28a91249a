"""Formal decisions carry the next number of their agency's grants register for the year
(Vietnam's calendar), with no gap and no repeat under concurrent decisions (PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select

from grants.models import ApplicationRow
from servicekit.decisions import REGISTERS

pytestmark = pytest.mark.postgres

AWARD = 100_000_000
AWARDS_THAT_FIT = 5  # each agency's call has the budget for five awards, not seven


def open_call(client, pm: dict, *, budget: int, min_reviews: int = 1) -> dict:
    call = client.post("/v1/calls", headers=pm, json={
        "title": "Call", "budget_vnd": budget, "max_award_vnd": AWARD,
        "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z",
        "min_reviews": min_reviews}).json()
    assert client.post(f"/v1/calls/{call['id']}/open", headers=pm).status_code == 200
    return call


def reviewed_application(client, tokens, call_id: str, n: int) -> str:
    lead = tokens.headers(f"r-lead-{n}", "researcher", org="HUST")
    app = client.post("/v1/applications", headers=lead, json={
        "call_id": call_id, "title": f"A{n}", "abstract": "", "institution_id": "HUST",
        "requested_vnd": AWARD, "risk_level": "medium",
        "team": [{"researcher_id": f"r-lead-{n}", "name": "L", "role": "PI",
                  "contribution_bp": 10000}],
        "milestones": [{"title": "M", "deliverable": "D", "verification": "V",
                        "due_date": "2027-05-01", "tranche_bp": 10000}]}).json()
    assert client.post(f"/v1/applications/{app['id']}/submit", headers=lead).status_code == 200
    r = client.post(f"/v1/applications/{app['id']}/reviews",
                    headers=tokens.headers("rev-1", "reviewer", org="VAST"),
                    json={"scores": {"merit": 4}, "recommendation": "fund", "comment": ""})
    assert r.status_code == 201, r.text
    return app["id"]


def number_of(decision_no: str, agency: str) -> int:
    number, register = decision_no.split("/", 1)
    assert register == f"QĐ-{agency}"
    return int(number)


def test_concurrent_decisions_of_two_agencies_are_numbered_without_gap_or_repeat(
        client, tokens, grants_db):
    """Per agency: seven approvals (two over the budget, refused) and five rejections race;
    the ten decisions taken are numbered 1..10 in that agency's register, the refused
    ones take no number."""
    jobs: list[tuple[str, dict, str, dict]] = []
    for agency in ("MOST", "DOST-HN"):
        pm = tokens.headers(f"pm-{agency}", "program_manager", org=agency)
        call = open_call(client, pm, budget=AWARDS_THAT_FIT * AWARD)
        for n in range(12):
            app_id = reviewed_application(client, tokens, call["id"], n)
            body = ({"decision": "approve", "awarded_vnd": AWARD} if n < 7
                    else {"decision": "reject", "reason": "not this year"})
            jobs.append((agency, pm, app_id, body))

    start = threading.Barrier(len(jobs))

    def decide(job: tuple[str, dict, str, dict]) -> tuple[str, int, dict]:
        agency, pm, app_id, body = job
        start.wait()
        r = client.post(f"/v1/applications/{app_id}/decision", headers=pm, json=body)
        return agency, r.status_code, r.json()

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(decide, jobs))

    for agency in ("MOST", "DOST-HN"):
        mine = [(status, body) for a, status, body in answers if a == agency]
        assert sorted(status for status, _ in mine) == [200] * 10 + [409] * 2
        taken = [body for status, body in mine if status == 200]
        assert sorted(number_of(b["decision_no"], agency) for b in taken) == list(range(1, 11))
        assert {b["decision_year"] for b in taken} == {2026}
        assert all("budget" in b["detail"] for status, b in mine if status == 409)

    engine = create_engine(grants_db)
    with engine.connect() as conn:
        stored = conn.execute(select(ApplicationRow.agency_id, ApplicationRow.decision_no)
                              .where(ApplicationRow.agency_id.in_(("MOST", "DOST-HN")),
                                     ApplicationRow.decision_no.is_not(None))).all()
        registers = dict(conn.execute(select(REGISTERS.c.name, REGISTERS.c.last_no).where(
            REGISTERS.c.year == 2026, REGISTERS.c.name.in_(("QĐ-MOST", "QĐ-DOST-HN")))).all())
    engine.dispose()
    assert len(stored) == 20 and len({no for _, no in stored}) == 20
    assert registers == {"QĐ-MOST": 10, "QĐ-DOST-HN": 10}


def test_a_grants_closure_takes_the_next_number_after_the_awards(client, tokens):
    pm = tokens.headers("pm-1", "program_manager", org="DOST-HP")
    call = open_call(client, pm, budget=3 * AWARD)
    decided = client.post(
        f"/v1/applications/{reviewed_application(client, tokens, call['id'], 0)}/decision",
        headers=pm, json={"decision": "approve", "awarded_vnd": AWARD}).json()
    assert (decided["decision_no"], decided["decision_year"]) == ("1/QĐ-DOST-HP", 2026)
    grant = client.get(f"/v1/grants/{decided['grant_id']}", headers=pm).json()
    assert (grant["award_decision_no"], grant["decision_no"]) == ("1/QĐ-DOST-HP", None)

    r = client.post(f"/v1/grants/{grant['id']}/close", headers=pm, json={
        "outcome": "failed_in_good_faith", "justification": "the method failed",
        "procedures_followed": True})
    assert r.status_code == 200, r.text
    assert (r.json()["decision_no"], r.json()["decision_year"]) == ("2/QĐ-DOST-HP", 2026)
    history = client.get(f"/v1/grants/{grant['id']}/history", headers=pm).json()["items"]
    assert history[-1]["data"]["decision_no"] == "2/QĐ-DOST-HP"


def test_a_refused_closure_takes_no_number(client, tokens):
    pm = tokens.headers("pm-1", "program_manager", org="DOST-DN")
    call = open_call(client, pm, budget=3 * AWARD)
    decided = client.post(
        f"/v1/applications/{reviewed_application(client, tokens, call['id'], 0)}/decision",
        headers=pm, json={"decision": "approve", "awarded_vnd": AWARD}).json()
    refused = client.post(f"/v1/grants/{decided['grant_id']}/close", headers=pm,
                          json={"outcome": "completed", "justification": ""})
    assert refused.status_code == 409
    rejected = client.post(
        f"/v1/applications/{reviewed_application(client, tokens, call['id'], 1)}/decision",
        headers=pm, json={"decision": "reject", "reason": "weak"}).json()
    assert rejected["decision_no"] == "2/QĐ-DOST-DN"


def test_the_year_of_a_decision_is_vietnams_and_each_year_starts_at_one(client, tokens,
                                                                        clock):
    pm = tokens.headers("pm-1", "program_manager", org="DOST-CT")
    call = open_call(client, pm, budget=3 * AWARD)
    first = reviewed_application(client, tokens, call["id"], 0)
    second = reviewed_application(client, tokens, call["id"], 1)
    clock.set(datetime(2026, 12, 31, 16, 59, tzinfo=UTC))  # 23:59 in Hanoi
    old_year = client.post(f"/v1/applications/{first}/decision", headers=pm,
                           json={"decision": "reject", "reason": "weak"}).json()
    clock.set(datetime(2026, 12, 31, 17, 0, tzinfo=UTC))  # 00:00 on 1 January in Hanoi
    new_year = client.post(f"/v1/applications/{second}/decision", headers=pm,
                           json={"decision": "reject", "reason": "weak"}).json()
    assert (old_year["decision_no"], old_year["decision_year"]) == ("1/QĐ-DOST-CT", 2026)
    assert (new_year["decision_no"], new_year["decision_year"]) == ("1/QĐ-DOST-CT", 2027)
