"""A sandbox pilot's whole life through the gateway of ``make run``, as the contract
tells a firm and the ministry's reviewers to drive it: sectors → draft → submit → two
assessments → approval numbered in SBV's sandbox register → started → a report over a
limit (a breach) → a critical incident (suspended) → resumed → extended → exit filed and
accepted → exited, on the public register with its certificate."""

from __future__ import annotations

from datetime import UTC, date, datetime

from .desk import (
    EVENT_TYPE,
    System,
    assert_created,
    assert_history,
    days,
    key,
    ok,
    problem,
    short,
    undocumented_events,
)
from .sandbox_world import Cast, approval, assessment, proposal

CONFIDENTIAL = ("SECRET-RISK", "SECRET-NOTE", "SECRET-INCIDENT", "SECRET-REPORT",
                "SECRET-LESSON")


def test_a_fintech_pilot_lives_from_application_to_exit_on_the_public_register(
    system: System,
) -> None:
    cast = Cast(system)
    firm, rev_1, rev_2, rev_3 = cast.firm, cast.rev_1, cast.rev_2, cast.rev_3
    anonymous = system.client

    # The sector profiles are public; fintech is SBV's, with its decree's numbers.
    sectors = ok(anonymous.get("/sandbox/v1/sectors"))["items"]
    fintech = next(s for s in sectors if s["sector"] == "fintech")
    assert {s["sector"] for s in sectors} >= {"fintech", "telecom", "ai", "health", "energy",
                                               "transport", "other"}
    assert (fintech["supervising_agency"], fintech["max_initial_months"],
            fintech["max_extensions"], fintech["max_extension_months"],
            fintech["decision_deadline_days"], fintech["start_deadline_days"]) == (
        "SBV", 24, 2, 12, 90, 90)

    # The firm drafts (Idempotency-Key replays the same answer), edits, submits.
    draft_key = key()
    draft = ok(firm.post("/sandbox/v1/applications", proposal(), key=draft_key), 201)
    assert_created(draft)
    assert draft["status"] == "draft"
    replay = ok(firm.post("/sandbox/v1/applications", proposal(), key=draft_key), 201)
    assert replay == draft
    problem(firm.post("/sandbox/v1/applications", proposal(requested_months=12),
                      key=draft_key), 422, "idempotency")
    app_path = f"/sandbox/v1/applications/{draft['id']}"
    edited = ok(firm.put(app_path, proposal(technology="P2P lending with e-KYC")))
    assert edited["technology"] == "P2P lending with e-KYC"
    submitted = ok(firm.post(f"{app_path}/submit", key=key()))
    assert submitted["status"] == "submitted"
    assert submitted["decision_due_on"] == (system.today + days(90)).isoformat()
    assert submitted["overdue"] is False

    # Two reviewers of other organisations assess; a third decides (four eyes).
    for reviewer in (rev_1, rev_2):
        made = ok(reviewer.post(f"{app_path}/assessments", assessment(), key=key()), 201)
        assert_created(made, application_id=draft["id"])
    starts_on, ends_on = system.today + days(28), system.today + days(28 + 364)
    decided = ok(rev_3.post(f"{app_path}/decision", approval(starts_on, ends_on), key=key()))
    assert decided["status"] == "approved"
    year = system.today.year
    assert decided["decision_no"] == "1/QĐ-TNKS-SBV"
    assert decided["decision_year"] == year
    pilot_path = f"/sandbox/v1/pilots/{decided['pilot_id']}"
    pilot = ok(firm.get(pilot_path))
    assert pilot["status"] == "approved"
    assert pilot["application_id"] == draft["id"]
    assert pilot["limits"] == {"regions": ["HN"], "max_participants": 1000,
                               "max_transaction_vnd": 10_000_000}
    assert pilot["conditions"] == ["monthly escrow audit"]
    assert (pilot["starts_on"], pilot["ends_on"]) == (starts_on.isoformat(),
                                                      ends_on.isoformat())

    # The start date comes: supervision starts the pilot by itself.
    system.travel_to(datetime.combine(starts_on, datetime.min.time(), UTC) + days(0))
    system.supervise()
    pilot = ok(firm.get(pilot_path))
    assert pilot["status"] == "active"
    assert pilot["next_report_due_on"] is not None
    assert pilot["report_overdue"] is False
    listed = ok(rev_1.get("/sandbox/v1/pilots", status="active", sector="fintech"))
    assert pilot["id"] in [p["id"] for p in listed["items"]]

    # A quarter later the firm reports more participants than allowed: a breach.
    quarter = f"{starts_on.year}-Q{(starts_on.month - 1) // 3 + 1}"
    quarter_ends = date(starts_on.year, ((starts_on.month - 1) // 3 + 1) * 3 % 12 + 1, 1) \
        if starts_on.month < 10 else date(starts_on.year + 1, 1, 1)
    system.travel_to(datetime.combine(quarter_ends, datetime.min.time(), UTC) + days(1))
    report = ok(firm.post(f"{pilot_path}/reports", {
        "period": quarter, "participants": 1200, "transactions_vnd": 4_100_000_000,
        "largest_transaction_vnd": 9_500_000, "regions": ["HN"],
        "kpis": {"default_rate_pct": 1.2}, "complaints": 3}, key=key()), 201)
    assert_created(report, pilot_id=pilot["id"])
    assert report["breaches"] == [{"limit": "max_participants", "allowed": 1000,
                                   "reported": 1200}]

    # A critical incident suspends the pilot at once; no report while suspended.
    incident = ok(firm.post(f"{pilot_path}/incidents", {
        "severity": "critical", "description": "SECRET-INCIDENT escrow bank outage",
        "occurred_at": (system.clock.now() - days(0)).isoformat()}, key=key()), 201)
    assert_created(incident, pilot_id=pilot["id"])
    assert incident["reported_in_time"] is True
    datetime.fromisoformat(incident["reported_at"])
    pilot = ok(firm.get(pilot_path))
    assert pilot["status"] == "suspended"
    assert pilot["suspension_incident_id"] == incident["id"]

    # A reviewer resumes it, extends it within fintech's profile.
    resumed = ok(rev_1.post(f"{pilot_path}/resume", {"reason": "escrow restored"},
                            key=key()))
    assert resumed["status"] == "active"
    new_end = ends_on + days(180)
    extended = ok(rev_1.post(f"{pilot_path}/extend",
                             {"ends_on": new_end.isoformat(), "reason": "more data"},
                             key=key()))
    assert extended["status"] == "active"
    assert extended["ends_on"] == new_end.isoformat()

    # The firm files its exit report; a reviewer accepts it: exited, certificate.
    exit_report = ok(firm.post(f"{pilot_path}/exit", {
        "outcome": "graduate", "final_report": "SECRET-REPORT all KPIs met",
        "lessons": "SECRET-LESSON escrow works", "recommendations": ["licence P2P lending"]},
        key=key()), 201)
    assert_created(exit_report, pilot_id=pilot["id"])
    accepted = ok(rev_2.post(f"{pilot_path}/exit/accept", {"note": "well run"}, key=key()))
    assert accepted["status"] == "exited"
    assert accepted["certificate_no"]
    # Approved this year, accepted next year: each the first of its year's register.
    assert [(d["kind"], d["decision_no"], d["decision_year"])
            for d in accepted["decisions"]] == [
        ("approval", "1/QĐ-TNKS-SBV", year), ("exit_acceptance", "1/QĐ-TNKS-SBV", year + 1)]

    # The public register shows it without a token, with the certificate, and none of
    # the confidential parts.
    entry = ok(anonymous.get(f"/sandbox/v1/register/{pilot['id']}"))
    assert entry["status"] == "exited"
    assert entry["certificate_no"] == accepted["certificate_no"]
    assert entry["firm_name"] == proposal()["firm_name"]
    assert entry["enterprise_code"] == "0101234567"
    assert entry["decision_no"] == "1/QĐ-TNKS-SBV"
    page = ok(anonymous.get("/sandbox/v1/register",
                            params={"sector": "fintech", "status": "exited"}))
    assert [e["pilot_id"] for e in page["items"]] == [pilot["id"]]
    assert "next_cursor" in page
    text = anonymous.get("/sandbox/v1/register").text + str(entry)
    for secret in CONFIDENTIAL:
        assert secret not in text
    assert not {"risk_assessment", "reports", "incidents", "owner_id"} & entry.keys()

    # The pilot's trail names who did what, from which status to which.
    trail = ok(rev_1.get(f"{pilot_path}/history"))["items"]
    assert_history(trail, [
        ("approve", "approved"), ("start", "active"), ("report", "active"),
        ("incident", "suspended"), ("resume", "active"), ("extend", "active"),
        ("file_exit", "active"), ("accept_exit", "exited")])
    by_action = {e["action"]: e for e in trail}
    assert by_action["resume"]["actor"] == "rev-1"
    assert by_action["resume"]["role"] == "reviewer"
    assert (by_action["resume"]["from_status"], by_action["resume"]["to_status"]) == (
        "suspended", "active")
    assert by_action["resume"]["reason"] == "escrow restored"
    assert (by_action["start"]["actor"], by_action["start"]["role"]) == (
        "system:scheduler", "system")
    assert by_action["incident"]["actor"] == firm.sub
    statuses = [e["to_status"] for e in trail if e["from_status"] != e["to_status"]]
    assert statuses == ["approved", "active", "suspended", "active", "exited"], trail
    app_trail = ok(firm.get(f"{app_path}/history"))["items"]
    assert [e["to_status"] for e in app_trail if e["action"] in
            ("create", "submit", "decide")][-1] == "approved"

    # Every step was published, typed vn.gov.most.sandbox.<aggregate>.<verb>.v1.
    expected = ["pilot.started", "pilot.report_filed", "pilot.breach_detected",
                "incident.reported", "pilot.suspended", "pilot.resumed", "pilot.extended",
                "pilot.exited"]
    events = system.events("sandbox", pilot["id"], expect=expected)
    assert [short(e) for e in events if short(e) in expected] == expected
    app_events = system.events("sandbox", draft["id"],
                               expect=["application.submitted", "application.decided"])
    for event in events + app_events:
        assert EVENT_TYPE.match(event["type"]), event["type"]
        assert event["source"] == "/sandbox"
        assert event["specversion"] == "1.0"


def test_every_answer_above_is_declared_in_the_openapi_document(system: System) -> None:
    """Runs last in the module: each status the scenarios got is one the merged OpenAPI
    document (GET /openapi.json at the gateway) declares for that operation."""
    assert system.undeclared("/sandbox/") == []


def test_every_event_above_is_documented_in_asyncapi(system: System) -> None:
    """Runs last in the module: each event the scenarios caused validates against its
    message's schema in docs/asyncapi.yaml."""
    assert undocumented_events(system, "sandbox") == []
