"""A sandbox pilot's life on ``make stack`` as a user runs it: through the gateway's
proxy to the sandbox's own uvicorn workers (two, each with its scheduler) on PostgreSQL,
events on Kafka read by an independent consumer.

The firm applies, two reviewers assess, a third approves from today; the schedulers of
both workers race to start the pilot (one start, one event); a critical incident
suspends it, a report on it is refused; resumed, extended, exited with a certificate on
the public register, which the gateway serves with its ETag (304 on a repeat).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from devkit.testing import EventContract, GatewayUser, StackRun, distinct, wait_for
from servicekit.clock import SystemClock, business_date

pytestmark = pytest.mark.timeout(600)

CRITERIA = ("in_scope", "genuine_innovation", "consumer_benefit", "need_for_sandbox",
            "readiness", "risk_controls")
ASSESSMENT = {"criteria": {c: {"pass": True, "note": "ok"} for c in CRITERIA},
              "summary": "fit for a pilot"}


@pytest.fixture
def running_stack() -> Iterator[StackRun]:
    with StackRun.started({
            "GATEWAY_RATE_LIMIT_WRITE_PER_SUBJECT": "100/second",
            "GATEWAY_RATE_LIMIT_WRITE_PER_ADDRESS": "200/second",
            "SANDBOX_SCHEDULER_SECONDS": "1",
            "STACK_WORKERS_SANDBOX": "2", "STACK_WORKERS_GRANTS": "1",
            "STACK_WORKERS_IPSHARE": "1", "STACK_WORKERS_GATEWAY": "1"},
            up_timeout=420) as running:
        yield running


def test_a_pilot_lives_on_make_stack_from_application_to_the_register(
    running_stack: StackRun, event_contract: EventContract,
) -> None:
    settings = running_stack.settings()
    code = f"{uuid.uuid4().int % 10**10:010d}"
    today = business_date(SystemClock().now())
    with httpx.Client(base_url=settings["GATEWAY_URL"], timeout=60.0) as client:
        firm = GatewayUser(client, "firm-1", "sandbox_applicant", "fintech-1")
        reviewers = [GatewayUser(client, f"rev-{n}", "reviewer", org)
                     for n, org in ((1, "SBV"), (2, "MOST"), (3, "MOF"))]
        assert client.get("/sandbox/v1/sectors").status_code == 200
        proposal = {
            "firm_name": "Công ty Cổ phần Tài chính Số", "enterprise_code": code,
            "sector": "fintech", "technology": "P2P lending",
            "exemptions": [{"provision": "p2p_lending", "justification": "no licence"}],
            "scope": {"regions": ["HN", "HCM"], "max_participants": 5000,
                      "max_transaction_vnd": 50_000_000},
            "requested_months": 18, "safeguards": "escrow",
            "risk_assessment": "SECRET-RISK", "exit_plan": "wind down"}
        refused = client.post("/sandbox/v1/applications", json=proposal,
                              headers=reviewers[0].auth)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        draft = firm.post("/sandbox/v1/applications", proposal, 201, **{"Idempotency-Key": code})
        assert firm.post("/sandbox/v1/applications", proposal, 201,
                         **{"Idempotency-Key": code}) == draft
        app = f"/sandbox/v1/applications/{draft['id']}"
        firm.post(f"{app}/submit")
        for reviewer in reviewers[:2]:
            reviewer.post(f"{app}/assessments", ASSESSMENT, 201)
        decided = reviewers[2].post(f"{app}/decision", {
            "decision": "approve", "conditions": ["monthly escrow audit"],
            "limits": {"regions": ["HN"], "max_participants": 1000,
                       "max_transaction_vnd": 10_000_000},
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=300)).isoformat()})
        assert decided["decision_no"].endswith("/QĐ-TNKS-SBV")
        pilot = f"/sandbox/v1/pilots/{decided['pilot_id']}"

        # Both workers' schedulers run every second: the pilot starts once.
        started = wait_for(lambda: firm.read(pilot)["status"] == "active", 60, pause=0.5)
        assert started, firm.read(pilot)
        incident = firm.post(f"{pilot}/incidents", {"severity": "critical",
                                                    "description": "SECRET-INCIDENT"}, 201)
        assert firm.read(pilot)["suspension_incident_id"] == incident["id"]
        quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1) - timedelta(days=1)
        report = client.post(f"{pilot}/reports", headers=firm.auth, json={
            "period": f"{quarter.year}-Q{(quarter.month - 1) // 3 + 1}", "participants": 1,
            "transactions_vnd": 1, "largest_transaction_vnd": 1, "regions": ["HN"],
            "kpis": {}, "complaints": 0})
        assert report.status_code == 409 and "suspended" in report.json()["detail"]
        reviewers[0].post(f"{pilot}/resume", {"reason": "escrow restored"})
        reviewers[0].post(f"{pilot}/extend", {
            "ends_on": (today + timedelta(days=400)).isoformat(), "reason": "more data"})
        firm.post(f"{pilot}/exit", {"outcome": "graduate", "final_report": "met",
                                    "lessons": "escrow works"}, 201)
        exited = reviewers[1].post(f"{pilot}/exit/accept", {"note": "well run"})
        assert exited["status"] == "exited" and exited["certificate_no"]

        entry = client.get(f"/sandbox/v1/register/{decided['pilot_id']}")
        assert entry.status_code == 200
        assert entry.json()["certificate_no"] == exited["certificate_no"]
        assert "SECRET" not in entry.text
        again = client.get(f"/sandbox/v1/register/{decided['pilot_id']}",
                           headers={"If-None-Match": entry.headers["etag"]})
        assert again.status_code == 304

    # An independent consumer reads every topic the services wrote from its beginning:
    # each event on the contract; the application's two, then the pilot's life in order,
    # once each (the two schedulers started it once).
    events = distinct(event_contract.written(settings["KAFKA_BOOTSTRAP"], at_least=8))
    assert Counter(e["subject"] for e in events) == {draft["id"]: 2,
                                                     decided["pilot_id"]: 6}
    assert [short(e) for e in events if e["subject"] == draft["id"]] == [
        "application.submitted", "application.decided"]
    assert [short(e) for e in events if e["subject"] == decided["pilot_id"]] == [
        "pilot.started", "incident.reported", "pilot.suspended", "pilot.resumed",
        "pilot.extended", "pilot.exited"]
    assert {e["type"].split(".")[3] for e in events} == {"sandbox"}


def short(event: dict[str, Any]) -> str:
    """``vn.gov.most.sandbox.pilot.started.v1`` → ``pilot.started``."""
    return ".".join(event["type"].split(".")[4:6])
