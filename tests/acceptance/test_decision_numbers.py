"""Formal decisions are numbered from 1 each calendar year in the issuing agency's
register, the year being Vietnam's (UTC+7): a decision at 00:30 on 1 January in Hanoi
(17:30 UTC on 31 December) opens the new year's register. Refused decisions never take
a number; each agency and each service keeps its own register."""

from __future__ import annotations

from datetime import UTC, datetime

from . import grants_world as gw
from . import sandbox_world as sw
from .desk import System, days, ok, problem, undocumented_events


def grants_decision(system: System, cast: gw.Cast, pm, call: dict, body: dict) -> dict:
    app = gw.submitted(cast, call, requested_vnd=900_000_000)
    for n in (2, 3):
        ok(cast.rev[n].post(f"/grants/v1/applications/{app['id']}/reviews", gw.REVIEW), 201)
    return pm.post(f"/grants/v1/applications/{app['id']}/decision", body)


def test_grants_and_sandbox_registers_turn_over_on_vietnams_new_year(system: System) -> None:
    grants, sandbox = gw.Cast(system), sw.Cast(system)
    pm = system.caller("pm-dn", "program_manager", "DOST-DN")
    call = ok(pm.post("/grants/v1/calls", gw.call_body(budget_vnd=2_000_000_000,
                                                       max_award_vnd=1_000_000_000)), 201)
    ok(pm.post(f"/grants/v1/calls/{call['id']}/open"))
    reject = {"decision": "reject", "reason": "not this year"}

    system.clock.set(datetime(2026, 12, 31, 16, 59, tzinfo=UTC))  # 23:59 in Hanoi
    last = ok(grants_decision(system, grants, pm, call, reject))
    assert (last["decision_no"], last["decision_year"]) == ("1/QĐ-DOST-DN", 2026)
    app = sw.assessed(sandbox, sector="ai")
    today = system.today
    refused = sandbox.rev_3.post(f"/sandbox/v1/applications/{app['id']}/decision",
                                 sw.approval(today + days(1), today + days(30),
                                             max_participants=10**6))
    problem(refused, 422, "requested")
    approved = ok(sandbox.rev_3.post(f"/sandbox/v1/applications/{app['id']}/decision",
                                     sw.approval(today + days(1), today + days(300))))
    assert (approved["decision_no"], approved["decision_year"]) == ("1/QĐ-TNKS-MOST", 2026)

    system.clock.set(datetime(2026, 12, 31, 17, 30, tzinfo=UTC))  # 00:30 on 1 January
    assert system.today.isoformat() == "2027-01-01"
    over = grants_decision(system, grants, pm, call,
                           {"decision": "approve", "awarded_vnd": 1_500_000_000})
    problem(over, 422, "awarded_vnd")
    first = ok(grants_decision(system, grants, pm, call,
                               {"decision": "approve", "awarded_vnd": 900_000_000}))
    assert (first["decision_no"], first["decision_year"]) == ("1/QĐ-DOST-DN", 2027)
    second = ok(grants_decision(system, grants, pm, call, reject))
    assert (second["decision_no"], second["decision_year"]) == ("2/QĐ-DOST-DN", 2027)
    other = ok(grants_decision(system, grants, grants.pm, gw.open_call(grants), reject))
    assert (other["decision_no"], other["decision_year"]) == ("1/QĐ-MOST", 2027)
    pilot = f"/sandbox/v1/pilots/{approved['pilot_id']}"
    terminated = ok(sandbox.rev_1.post(f"{pilot}/terminate", {"reason": "never started"}))
    assert [(d["kind"], d["decision_no"], d["decision_year"])
            for d in terminated["decisions"]] == [
        ("approval", "1/QĐ-TNKS-MOST", 2026), ("termination", "1/QĐ-TNKS-MOST", 2027)]
    register = ok(system.client.get(f"/sandbox/v1/register/{approved['pilot_id']}"))
    assert register["status"] == "terminated"
    assert [d["decision_no"] for d in register["decisions"]] == ["1/QĐ-TNKS-MOST"] * 2

    # The grant's closure is the agency's next decision of the year.
    grant = f"/grants/v1/grants/{first['grant_id']}"
    closed = ok(pm.post(f"{grant}/close", {
        "outcome": "failed_in_good_faith", "justification": "the sensors failed",
        "procedures_followed": True}))
    assert (closed["decision_no"], closed["decision_year"]) == ("3/QĐ-DOST-DN", 2027)
    assert closed["award_decision_no"] == "1/QĐ-DOST-DN"
    events = system.events("grants", first["grant_id"], expect=["grant.closed"])
    assert [e["data"].get("decision_no") for e in events
            if e["type"].endswith("grant.closed.v1")] == ["3/QĐ-DOST-DN"]


def test_every_event_above_is_documented_in_asyncapi(system: System) -> None:
    assert undocumented_events(system, "grants") == []
    assert undocumented_events(system, "sandbox") == []
