"""Concurrent approvals on a small budget never over-commit the call (PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, select

from grants.models import GrantRow

pytestmark = pytest.mark.postgres

APPROVALS = 8
AWARD = 300_000_000
BUDGET = 1_000_000_000  # room for three awards, not four


def test_concurrent_approvals_never_over_commit_the_call(client, tokens, grants_db):
    pm = tokens.headers("pm-1", "program_manager", org="MOST")
    lead = tokens.headers("r-lead", "researcher", org="HUST")
    call = client.post("/v1/calls", headers=pm, json={
        "title": "Small call", "budget_vnd": BUDGET, "max_award_vnd": 400_000_000,
        "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z",
        "min_reviews": 1}).json()
    client.post(f"/v1/calls/{call['id']}/open", headers=pm)
    app_ids = []
    for i in range(APPROVALS):
        app = client.post("/v1/applications", headers=lead, json={
            "call_id": call["id"], "title": f"A{i}", "abstract": "", "institution_id": "HUST",
            "requested_vnd": 400_000_000, "risk_level": "medium",
            "team": [{"researcher_id": "r-lead", "name": "L", "role": "PI",
                      "contribution_bp": 10000}],
            "milestones": [{"title": "M", "deliverable": "D", "verification": "V",
                            "due_date": "2027-05-01", "tranche_bp": 10000}]}).json()
        client.post(f"/v1/applications/{app['id']}/submit", headers=lead)
        client.post(f"/v1/applications/{app['id']}/reviews",
                    headers=tokens.headers("rev-1", "reviewer", org="VAST"),
                    json={"scores": {"merit": 4}, "recommendation": "fund", "comment": ""})
        app_ids.append(app["id"])

    start = threading.Barrier(APPROVALS)

    def approve(app_id: str) -> int:
        start.wait()
        return client.post(f"/v1/applications/{app_id}/decision", headers=pm,
                           json={"decision": "approve", "awarded_vnd": AWARD}).status_code

    with ThreadPoolExecutor(APPROVALS) as pool:
        statuses = list(pool.map(approve, app_ids))

    assert sorted(statuses) == [200] * 3 + [409] * (APPROVALS - 3)
    after = client.get(f"/v1/calls/{call['id']}").json()
    assert after["awarded_vnd"] == 3 * AWARD
    assert after["remaining_budget_vnd"] == BUDGET - 3 * AWARD
    engine = create_engine(grants_db)
    with engine.connect() as conn:
        grants = conn.execute(select(func.count(), func.sum(GrantRow.awarded_vnd))
                              .where(GrantRow.call_id == call["id"])).one()
    engine.dispose()
    assert tuple(grants) == (3, 3 * AWARD)
