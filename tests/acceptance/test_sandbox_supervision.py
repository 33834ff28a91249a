"""Supervision, clocks and lists through the gateway of ``make run``: the decision clock
that stops while changes are requested, overdue reports and expiry flagged by the
scheduler, late incidents, Idempotency-Key on transitions, the register's caching and
cursor paging everywhere."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from .desk import System, assert_history, days, key, ok, problem, short, undocumented_events
from .sandbox_world import Cast, active_pilot, assessed, assessment, proposal, submitted


@pytest.fixture(scope="module")
def cast(system: System) -> Cast:
    return Cast(system, firm_org="energy-1")


def test_the_decision_clock_stops_while_changes_are_requested(system: System,
                                                              cast: Cast) -> None:
    app = submitted(cast)
    path = f"/sandbox/v1/applications/{app['id']}"
    first_due = date.fromisoformat(app["decision_due_on"])
    system.clock.advance(days(10))
    sent_back = ok(cast.rev_1.post(f"{path}/request-changes",
                                   {"reasons": ["describe the escrow bank"]}, key=key()))
    assert sent_back["status"] == "changes_requested"
    system.clock.advance(days(20))  # twenty days with the firm: not counted
    edited = ok(cast.firm.put(path, proposal(safeguards="escrow at a licensed bank")))
    assert edited["safeguards"] == "escrow at a licensed bank"
    resubmitted = ok(cast.firm.post(f"{path}/submit"))
    assert resubmitted["status"] in ("submitted", "under_assessment")
    assert date.fromisoformat(resubmitted["decision_due_on"]) == first_due + days(20)
    trail = ok(cast.firm.get(f"{path}/history"))["items"]
    assert_history(trail, [("request_changes", "changes_requested"),
                           ("edit", "changes_requested"), ("submit", "submitted")])
    events = system.events("sandbox", app["id"], expect=["application.submitted"] * 2)
    assert [short(e) for e in events].count("application.submitted") == 2


def test_an_application_past_its_decision_day_shows_overdue(system: System,
                                                             cast: Cast) -> None:
    app = submitted(cast)
    path = f"/sandbox/v1/applications/{app['id']}"
    system.clock.advance(days(91))
    late = ok(cast.rev_1.get(path))
    assert late["overdue"] is True
    assert late["decision_due_on"] < system.today.isoformat()
    system.supervise()
    system.supervise()  # flagged once
    flagged = system.events("sandbox", app["id"], expect=["application.decision_overdue"])
    assert [short(e) for e in flagged].count("application.decision_overdue") == 1
    withdrawn = ok(cast.firm.post(f"{path}/withdraw", {"reason": "market changed"}))
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["overdue"] is False
    problem(cast.firm.post(f"{path}/withdraw", {"reason": "again"}), 409)


def test_a_missed_report_is_flagged_and_a_late_pilot_expires(system: System,
                                                             cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    due = date.fromisoformat(pilot["next_report_due_on"])
    system.clock.set(system.clock.now() + (due - system.today) + days(1))
    system.supervise()
    overdue = ok(cast.rev_1.get(path))
    assert overdue["report_overdue"] is True
    system.supervise()  # a second run flags nothing more
    flagged = system.events("sandbox", pilot["id"], expect=["pilot.report_overdue"])
    assert [short(e) for e in flagged].count("pilot.report_overdue") == 1
    listed = ok(cast.rev_1.get("/sandbox/v1/pilots", status="active"))
    assert any(p["id"] == pilot["id"] and p["report_overdue"] for p in listed["items"])

    # Past its end date with no exit report: expired; the exit can still be accepted.
    ends_on = date.fromisoformat(pilot["ends_on"])
    system.clock.set(system.clock.now() + (ends_on - system.today) + days(1))
    system.supervise()
    expired = ok(cast.firm.get(path))
    assert expired["status"] == "expired"
    filed = ok(cast.firm.post(f"{path}/exit", {
        "outcome": "discontinue", "final_report": "late", "lessons": "report on time"}),
        201)
    assert filed["status"] == "filed"
    accepted = ok(cast.rev_2.post(f"{path}/exit/accept", {"note": "closed"}))
    assert accepted["status"] == "exited"
    assert accepted["certificate_no"] is None  # discontinued: no certificate
    system.events("sandbox", pilot["id"], expect=["pilot.expired", "pilot.exited"])
    entry = ok(system.client.get(f"/sandbox/v1/register/{pilot['id']}"))
    assert entry["status"] == "exited"


def test_an_incident_reported_after_the_sectors_deadline_says_so(system: System,
                                                                 cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    occurred = system.clock.now() - timedelta(hours=30)
    late = ok(cast.firm.post(f"{path}/incidents", {
        "severity": "high", "description": "data leak",
        "occurred_at": occurred.isoformat()}), 201)
    assert late["reported_in_time"] is False
    on_time = ok(cast.rev_1.post(f"{path}/incidents", {
        "severity": "low", "description": "slow app"}), 201)
    assert on_time["reported_in_time"] is True
    assert ok(cast.firm.get(path))["status"] == "active"
    problem(cast.firm.post(f"{path}/incidents", {
        "severity": "low", "description": "tomorrow",
        "occurred_at": (system.clock.now() + timedelta(days=1)).isoformat()}), 422)
    problem(cast.firm.post(f"{path}/incidents", {"severity": "apocalyptic",
                                                  "description": "x"}), 422, "severity")


def test_a_report_is_filed_once_per_period_and_only_once_the_period_is_over(
        system: System, cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    today = system.today
    current = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    body = {"period": current, "participants": 1, "transactions_vnd": 10,
            "largest_transaction_vnd": 10, "regions": ["HN"], "kpis": {}, "complaints": 0}
    problem(cast.firm.post(f"{path}/reports", body), 422, "over")
    problem(cast.firm.post(f"{path}/reports", {**body, "period": "2026-Q5"}), 422, "period")
    quarter_end = date(today.year + (today.month > 9), (((today.month - 1) // 3 + 1) * 3) % 12
                       + 1, 1)
    system.clock.set(system.clock.now() + (quarter_end - today) + days(1))
    filed = ok(cast.firm.post(f"{path}/reports", body, key="q-report"), 201)
    assert filed["breaches"] == []
    replay = ok(cast.firm.post(f"{path}/reports", body, key="q-report"), 201)
    assert replay == filed
    problem(cast.firm.post(f"{path}/reports", body), 409, "period")
    wide = ok(cast.firm.get(path))
    assert [r["period"] for r in wide["reports"]] == [current]


def test_a_region_and_a_transaction_over_the_limits_are_breaches(system: System,
                                                                 cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    today = system.today
    quarter_end = date(today.year + (today.month > 9), (((today.month - 1) // 3 + 1) * 3) % 12
                       + 1, 1)
    system.clock.set(system.clock.now() + (quarter_end - today) + days(1))
    report = ok(cast.firm.post(f"{path}/reports", {
        "period": f"{today.year}-Q{(today.month - 1) // 3 + 1}", "participants": 10,
        "transactions_vnd": 100_000_000, "largest_transaction_vnd": 20_000_000,
        "regions": ["HN", "DN"], "kpis": {}, "complaints": 0}), 201)
    assert sorted(b["limit"] for b in report["breaches"]) == ["max_transaction_vnd",
                                                               "regions"]
    events = system.events("sandbox", pilot["id"], expect=["pilot.breach_detected"])
    assert [short(e) for e in events].count("pilot.breach_detected") == 1


def test_a_transition_replays_with_its_idempotency_key(system: System, cast: Cast) -> None:
    app = assessed(cast)
    path = f"/sandbox/v1/applications/{app['id']}"
    body = {"decision": "reject", "reasons": ["no real need for an exemption"]}
    first = ok(cast.rev_3.post(f"{path}/decision", body, key="decide-once"))
    again = ok(cast.rev_3.post(f"{path}/decision", body, key="decide-once"))
    assert again == first
    problem(cast.rev_3.post(f"{path}/decision", {**body, "reasons": ["other"]},
                            key="decide-once"), 422)
    decisions = [e for e in ok(cast.rev_3.get(f"{path}/history"))["items"]
                 if e["action"] == "decide"]
    assert len(decisions) == 1
    assert decisions[0]["actor"] == "rev-3" and decisions[0]["role"] == "reviewer"
    assert (decisions[0]["from_status"], decisions[0]["to_status"]) == (
        "under_assessment", "rejected")
    assert decisions[0]["reason"]
    # Another caller's same key is theirs, not a replay of rev-3's decision.
    other = submitted(cast)
    ok(cast.firm.post(f"/sandbox/v1/applications/{other['id']}/withdraw",
                      {"reason": "later"}, key="decide-once"))


def test_the_register_is_cacheable_and_lists_only_approved_pilots(system: System,
                                                                  cast: Cast) -> None:
    active_pilot(system, cast)
    submitted(cast)  # never approved: never in the register
    client = system.client
    first = client.get("/sandbox/v1/register", params={"limit": 1})
    assert first.status_code == 200
    assert first.headers["cache-control"].startswith("public")
    etag = first.headers["etag"]
    again = client.get("/sandbox/v1/register", params={"limit": 1},
                       headers={"If-None-Match": etag})
    assert again.status_code == 304
    seen, cursor = [], None
    while True:
        page = ok(client.get("/sandbox/v1/register", params={
            "limit": 1, **({"cursor": cursor} if cursor else {})}))
        assert len(page["items"]) <= 1
        seen += [e["pilot_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everyone = ok(cast.rev_1.get("/sandbox/v1/pilots", limit=100))["items"]
    assert sorted(seen) == sorted(p["id"] for p in everyone)
    assert len(seen) == len(set(seen))
    problem(client.get("/sandbox/v1/register", params={"cursor": "garbage"}), 422)
    problem(client.get("/sandbox/v1/register", params={"limit": 0}), 422)
    problem(client.get("/sandbox/v1/register", params={"status": "draft"}), 422)
    problem(client.get("/sandbox/v1/register/nope"), 404)


def test_applications_list_by_status_and_sector_for_the_ministry(system: System,
                                                                 cast: Cast) -> None:
    draft = ok(cast.firm.post("/sandbox/v1/applications", proposal(sector="energy")), 201)
    sent = submitted(cast, sector="energy")
    mine = ok(cast.firm.get("/sandbox/v1/applications", status="draft"))["items"]
    assert draft["id"] in [a["id"] for a in mine]
    theirs = ok(cast.auditor.get("/sandbox/v1/applications", status="submitted",
                                 sector="energy"))["items"]
    assert sent["id"] in [a["id"] for a in theirs]
    assert all(a["status"] == "submitted" and a["sector"] == "energy" for a in theirs)
    assert ok(cast.rev_1.post(f"/sandbox/v1/applications/{sent['id']}/assessments",
                              assessment()), 201)
    problem(cast.rev_1.get("/sandbox/v1/applications", status="bogus"), 422)


def test_every_answer_above_is_declared_in_the_openapi_document(system: System) -> None:
    """Runs last in the module: each status the scenarios got is one the merged OpenAPI
    document (GET /openapi.json at the gateway) declares for that operation."""
    assert system.undeclared("/sandbox/") == []


def test_every_event_above_is_documented_in_asyncapi(system: System) -> None:
    """Runs last in the module: each event the scenarios caused validates against its
    message's schema in docs/asyncapi.yaml."""
    assert undocumented_events(system, "sandbox") == []
