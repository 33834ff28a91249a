"""``make stack`` as a user runs it: brought up, used end to end through its gateway with
the development issuer's tokens, a service worker killed on the way, then stopped with
nothing left running.

The launcher is started as ``make stack`` starts it (``python -m devkit.stack up``), on
ports of its own so that a developer's stack on the default ports is left alone. It
starts its own PostgreSQL and Kafka; every request goes through the gateway (edge
authentication, route table, rate limits), from a call to an income distribution:
call → open → application → submit → reviews → decision → grant → milestone report →
accept → result → (grants.result.registered over Kafka) ipshare asset → agreement →
income → distribution. Then an independent consumer reads every topic the services
wrote from its beginning: each event is on the contract, and there are exactly the
events the scenario causes, none missing, none doubled (the kill included: a relay
killed after the broker's ack publishes that event again under the same id, which
consumers skip, and is counted once).
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from devkit import stack
from devkit.testing import EventContract, GatewayUser, StackRun, distinct, wait_for

# Starting PostgreSQL, Kafka and five workers, using them, stopping: ~60 s on an idle
# 2-core machine; the bound leaves room for a loaded one.
pytestmark = pytest.mark.timeout(600)

UP_TIMEOUT_S = 420
KAFKA_HOP_TIMEOUT_S = 60
# One of each: the call opens; the application is submitted, decided and becomes a
# grant; its one milestone's acceptance releases its one tranche (100 %); the result is
# registered, ipshare registers it as an asset, signs an agreement and posts the
# income's distribution.
SCENARIO_EVENTS = Counter({f"vn.gov.most.{name}.v1": 1 for name in (
    "grants.call.opened", "grants.application.submitted", "grants.application.decided",
    "grants.grant.awarded", "grants.tranche.released", "grants.result.registered",
    "ipshare.asset.registered", "ipshare.agreement.signed",
    "ipshare.distribution.posted")})


@pytest.fixture
def running_stack() -> Iterator[StackRun]:
    # As the benchmarks do, the test sets the gateway's limits itself: its scripted
    # users write faster than the defaults allow a person to.
    with StackRun.started({
            "GATEWAY_RATE_LIMIT_WRITE_PER_SUBJECT": "100/second",
            "GATEWAY_RATE_LIMIT_WRITE_PER_ADDRESS": "200/second",
            "STACK_WORKERS_IPSHARE": "2", "STACK_WORKERS_GRANTS": "1",
            "STACK_WORKERS_SANDBOX": "1", "STACK_WORKERS_GATEWAY": "1"},
            up_timeout=UP_TIMEOUT_S) as running:
        yield running


def test_make_stack_serves_a_grant_to_an_income_distribution_through_its_gateway(
    running_stack: StackRun, event_contract: EventContract,
) -> None:
    settings = running_stack.settings()
    run = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=settings["GATEWAY_URL"], timeout=60.0) as client:
        assert client.get("/ready").json()["status"] == "ready"
        pm = GatewayUser(client, "pm-1", "program_manager", "MOST")
        lead = GatewayUser(client, "r-lead", "researcher", "HUST")
        office = GatewayUser(client, "tto-1", "institution", "HUST")
        # The edge refuses what the route table does not allow, before any service.
        refused = client.post("/grants/v1/calls", json={}, headers=lead.auth)
        assert refused.status_code == 403, refused.text

        call = pm.post("/grants/v1/calls", {
            "title": "Mekong salinity", "budget_vnd": 5_000_000_000,
            "max_award_vnd": 1_000_000_000, "opens_at": "2026-01-01T00:00:00Z",
            "closes_at": "2030-01-01T00:00:00Z"}, expect=201)
        pm.post(f"/grants/v1/calls/{call['id']}/open")
        assert any(c["id"] == call["id"] for c in client.get("/grants/v1/calls").json()["items"])
        application = lead.post("/grants/v1/applications", {
            "call_id": call["id"], "title": "Salinity sensors", "abstract": "",
            "institution_id": "HUST", "requested_vnd": 1_000_000_000, "risk_level": "high",
            "team": [{"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                      "contribution_bp": 7000},
                     {"researcher_id": "r-two", "name": "Two", "role": "engineer",
                      "contribution_bp": 3000}],
            "milestones": [{"title": "Prototype", "deliverable": "D", "verification": "V",
                            "due_date": "2029-01-01", "tranche_bp": 10000}]}, expect=201)
        lead.post(f"/grants/v1/applications/{application['id']}/submit")
        for reviewer, org in (("rev-1", "VAST"), ("rev-2", "NAFOSTED")):
            GatewayUser(client, reviewer, "reviewer", org).post(
                f"/grants/v1/applications/{application['id']}/reviews",
                {"scores": {"merit": 5}, "recommendation": "fund", "comment": "",
                 "conflict_of_interest": False}, expect=201)
        decided = pm.post(f"/grants/v1/applications/{application['id']}/decision",
                          {"decision": "approve", "awarded_vnd": 1_000_000_000})

        # kill -9 the grants worker: the supervisor starts another on the same port, and
        # the next request through the gateway waits for it rather than failing.
        [worker] = running_stack.workers("grants")
        os.kill(worker["pid"], signal.SIGKILL)
        grant = pm.get(f"/grants/v1/grants/{decided['grant_id']}")
        assert grant.status_code == 200, grant.text
        grant = grant.json()
        [restarted] = running_stack.workers("grants")
        assert restarted["pid"] != worker["pid"] and restarted["restarts"] == 1

        milestone = grant["milestones"][0]
        lead.post(f"/grants/v1/grants/{grant['id']}/milestones/{milestone['id']}/report",
                  {"summary": "sensors deployed",
                   "evidence": [{"kind": "dataset", "ref": "doi:10.5281/zenodo.1"}]})
        accepted = pm.post(f"/grants/v1/grants/{grant['id']}/milestones/{milestone['id']}"
                           "/accept")
        assert [m["status"] for m in accepted["milestones"]] == ["accepted"]
        result = lead.post(f"/grants/v1/grants/{grant['id']}/results", {
            "kind": "patent", "title": "Low-cost salinity sensor",
            "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
                        {"researcher_id": "r-two", "name": "Two", "contribution_bp": 3000}]},
            expect=201)

        # grants → Kafka → ipshare: the result becomes an asset of the institution.
        assets = wait_for(lambda: office.get("/ipshare/v1/assets",
                                             source_grant_id=grant["id"]).json()["items"],
                          KAFKA_HOP_TIMEOUT_S, pause=0.3)
        assert [a["source_result_id"] for a in assets] == [result["id"]], \
            "grants.result.registered did not become an ipshare asset"
        agreement = office.post(f"/ipshare/v1/assets/{assets[0]['id']}/agreements", {
            "kind": "licence", "counterparty": "Mekong Sensors JSC",
            "signed_on": "2026-11-01", "terms": "5 years"}, expect=201)
        posted = office.post(f"/ipshare/v1/agreements/{agreement['id']}/income", {
            "period": "2026-Q4", "gross_vnd": 1_000_000_007, "costs_vnd": 0,
            "reference": f"INV-{run}"}, expect=201, **{"Idempotency-Key": f"inv-{run}"})
        distribution = office.get(f"/ipshare/v1/distributions/{posted['id']}")
        assert distribution.status_code == 200, distribution.text
        lines = [(ln["payee_id"], ln["amount_vnd"]) for ln in distribution.json()["lines"]]
        assert lines == [("r-lead", 210_000_002), ("r-two", 90_000_001), ("HUST", 700_000_004)]
        assert distribution.json()["source_grant_id"] == grant["id"]

    events = distinct(event_contract.written(settings["KAFKA_BOOTSTRAP"],
                                             at_least=SCENARIO_EVENTS.total()))
    assert Counter(e["type"] for e in events) == SCENARIO_EVENTS
    by_type = {e["type"].split(".", 3)[3]: e for e in events}
    assert by_type["ipshare.distribution.posted.v1"]["subject"] == posted["id"]
    assert [(ln["payee_id"], ln["amount_vnd"]) for ln in
            by_type["ipshare.distribution.posted.v1"]["data"]["lines"]] == lines
    assert by_type["grants.tranche.released.v1"]["subject"] == grant["id"]

    status = running_stack.run("status", 60)
    assert status.returncode == 0, status.stdout
    assert "1 restart" in status.stdout

    recorded = [int(p["pid"]) for p in stack.State.load(running_stack.layout).processes]
    started = json.loads(running_stack.layout.supervisor_state.read_text())["started_pids"]
    down = running_stack.run("down", 120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [pid for pid in recorded + started if stack._alive(pid)]
    assert running_stack.processes_left() == []
    for port in (settings["GATEWAY_URL"], *(settings[f"{s}_URL"] for s in
                                            ("GRANTS", "SANDBOX", "IPSHARE"))):
        assert stack._port_free(int(port.rsplit(":", 1)[1])), f"{port} still listening"
