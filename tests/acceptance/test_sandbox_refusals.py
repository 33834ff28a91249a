"""Every refusal issue 17 lists, through the gateway of ``make run``: a 4xx
problem+json naming the rule, and nothing changed (the resource and its trail read the
same afterwards)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from .desk import Caller, System, days, ok, problem, undocumented_events
from .sandbox_world import Cast, active_pilot, approval, assessed, assessment, proposal, submitted


@pytest.fixture(scope="module")
def cast(system: System) -> Cast:
    return Cast(system)


def unchanged(reader: Caller, path: str, refused: Callable[[], httpx.Response],
              status: int, *words: str) -> dict[str, Any]:
    """``refused()`` answers ``status`` naming ``words``; ``path`` and its history read
    the same before and after."""
    before = ok(reader.get(path)), ok(reader.get(f"{path}/history"))
    body = problem(refused(), status, *words)
    assert (ok(reader.get(path)), ok(reader.get(f"{path}/history"))) == before
    return body


def app_path(app: dict[str, Any]) -> str:
    return f"/sandbox/v1/applications/{app['id']}"


# --- approval terms ------------------------------------------------------------------------

@pytest.mark.parametrize("limits", [
    {"max_participants": 5001},                       # more people than requested
    {"regions": ["HN", "DN"]},                        # a region not requested
    {"max_transaction_vnd": 50_000_001},              # a larger transaction
    {"max_transaction_vnd": None},                    # no cap where one was requested
], ids=["participants", "region", "transaction", "uncapped"])
def test_an_approval_with_limits_wider_than_requested_is_refused(
    system: System, cast: Cast, limits: dict[str, Any],
) -> None:
    app = assessed(cast)
    today = system.today
    unchanged(cast.rev_3, app_path(app), lambda: cast.rev_3.post(
        f"{app_path(app)}/decision", approval(today + days(1), today + days(300), **limits)),
        422, "requested")


@pytest.mark.parametrize(("starts", "ends", "words"), [
    (30, 20, ("after",)),                 # ends before it starts
    (-1, 200, ("start",)),                # starts in the past
    (91, 300, ("90",)),                   # later than fintech's start deadline
    (1, 1 + 18 * 31 + 5, ("month",)),     # longer than the 18 months requested
], ids=["ends-before-start", "starts-in-the-past", "start-deadline", "past-requested-months"])
def test_an_approval_with_dates_out_of_order_or_beyond_the_maximum_is_refused(
    system: System, cast: Cast, starts: int, ends: int, words: tuple[str, ...],
) -> None:
    app = assessed(cast)
    today = system.today
    unchanged(cast.rev_3, app_path(app), lambda: cast.rev_3.post(
        f"{app_path(app)}/decision", approval(today + days(starts), today + days(ends))),
        422, *words)


def test_requested_months_beyond_the_sectors_initial_maximum_are_refused(
        cast: Cast) -> None:
    problem(cast.firm.post("/sandbox/v1/applications", proposal(requested_months=25)), 422,
            "24")


# --- four eyes and conflicts ---------------------------------------------------------------

def test_the_same_reviewer_cannot_assess_twice(cast: Cast) -> None:
    app = submitted(cast)
    ok(cast.rev_1.post(f"{app_path(app)}/assessments", assessment()), 201)
    unchanged(cast.rev_1, app_path(app), lambda: cast.rev_1.post(
        f"{app_path(app)}/assessments", assessment()), 409, "already")


def test_a_reviewer_cannot_decide_on_their_own_assessment(system: System,
                                                          cast: Cast) -> None:
    app = assessed(cast)
    today = system.today
    unchanged(cast.rev_1, app_path(app), lambda: cast.rev_1.post(
        f"{app_path(app)}/decision", approval(today + days(1), today + days(300))),
        409, "four eyes")


def test_one_assessment_is_not_enough_to_approve(system: System, cast: Cast) -> None:
    app = submitted(cast)
    ok(cast.rev_1.post(f"{app_path(app)}/assessments", assessment()), 201)
    today = system.today
    unchanged(cast.rev_3, app_path(app), lambda: cast.rev_3.post(
        f"{app_path(app)}/decision", approval(today + days(1), today + days(300))),
        409, "two")


def test_a_failed_criterion_bars_approval_but_not_rejection(system: System,
                                                             cast: Cast) -> None:
    app = submitted(cast)
    ok(cast.rev_1.post(f"{app_path(app)}/assessments", assessment()), 201)
    ok(cast.rev_2.post(f"{app_path(app)}/assessments", assessment(failed=("readiness",))),
       201)
    today = system.today
    unchanged(cast.rev_3, app_path(app), lambda: cast.rev_3.post(
        f"{app_path(app)}/decision", approval(today + days(1), today + days(300))),
        409, "readiness")
    rejected = ok(cast.rev_3.post(f"{app_path(app)}/decision",
                                  {"decision": "reject", "reasons": ["not ready"]}))
    assert rejected["status"] == "rejected"
    assert rejected["decision_no"].endswith("/QĐ-TNKS-SBV")


def test_a_reviewer_of_the_applicants_organisation_cannot_assess(cast: Cast) -> None:
    app = submitted(cast)
    unchanged(cast.rev_1, app_path(app), lambda: cast.rev_firm.post(
        f"{app_path(app)}/assessments", assessment()), 409, "organisation")


# --- supervision ---------------------------------------------------------------------------

def report(period: str, **change: Any) -> dict[str, Any]:
    return {"period": period, "participants": 10, "transactions_vnd": 1_000_000,
            "largest_transaction_vnd": 100_000, "regions": ["HN"], "kpis": {},
            "complaints": 0, **change}


def test_no_report_is_filed_on_a_suspended_pilot(system: System, cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    suspended = ok(cast.rev_1.post(f"{path}/suspend", {"reason": "audit"}))
    assert suspended["status"] == "suspended"
    assert suspended["decisions"][-1]["kind"] == "suspension"
    last_month = system.today.replace(day=1) - days(1)
    unchanged(cast.firm, path, lambda: cast.firm.post(
        f"{path}/reports", report(f"{last_month.year}-Q{(last_month.month - 1) // 3 + 1}")),
        409, "suspended")


def test_a_terminated_pilot_is_never_resumed(system: System, cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    terminated = ok(cast.rev_1.post(f"{path}/terminate", {"reason": "fraud found"}))
    assert terminated["status"] == "terminated"
    assert terminated["decisions"][-1]["kind"] == "termination"
    unchanged(cast.firm, path, lambda: cast.rev_1.post(f"{path}/resume", {"reason": "oops"}),
              409, "terminated")
    unchanged(cast.firm, path, lambda: cast.firm.post(f"{path}/incidents", {
        "severity": "low", "description": "after the end"}), 409, "terminated")


def test_an_extension_past_the_profile_is_refused(system: System, cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    ends_on = date.fromisoformat(pilot["ends_on"])
    unchanged(cast.firm, path, lambda: cast.rev_1.post(f"{path}/extend", {
        "ends_on": (ends_on + days(400)).isoformat(), "reason": "longer"}), 422, "12")
    unchanged(cast.firm, path, lambda: cast.rev_1.post(f"{path}/extend", {
        "ends_on": (ends_on - days(1)).isoformat(), "reason": "shorter"}), 422, "after")
    for extension in (1, 2):  # fintech allows two
        ok(cast.rev_1.post(f"{path}/extend", {
            "ends_on": (ends_on + days(30 * extension)).isoformat(), "reason": "more"}))
    unchanged(cast.firm, path, lambda: cast.rev_1.post(f"{path}/extend", {
        "ends_on": (ends_on + days(90)).isoformat(), "reason": "a third"}), 409, "2")


def test_an_adjustment_never_widens_the_limits_beyond_the_request(
        system: System, cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    path = f"/sandbox/v1/pilots/{pilot['id']}"
    unchanged(cast.firm, path, lambda: cast.rev_1.post(f"{path}/adjust", {
        "limits": {"regions": ["HN"], "max_participants": 9999,
                   "max_transaction_vnd": 10_000_000},
        "reason": "more people"}), 422, "requested")
    adjusted = ok(cast.rev_1.post(f"{path}/adjust", {
        "limits": {"regions": ["HN", "HCM"], "max_participants": 5000,
                   "max_transaction_vnd": 50_000_000}, "reason": "going well"}))
    assert adjusted["limits"]["regions"] == ["HN", "HCM"]


def test_an_unknown_sector_is_refused_naming_the_known_ones(cast: Cast) -> None:
    body = problem(cast.firm.post("/sandbox/v1/applications", proposal(sector="crypto")),
                   422, "crypto", "fintech", "telecom", "other")
    assert body["errors"]
    problem(cast.rev_1.get("/sandbox/v1/pilots", sector="crypto"), 422, "fintech")
    problem(cast.rev_1.get("/sandbox/v1/applications", sector="crypto"), 422, "fintech")


def test_an_enterprise_code_is_ten_digits(cast: Cast) -> None:
    for code in ("01012345", "01012345678", "01O1234567"):
        problem(cast.firm.post("/sandbox/v1/applications", proposal(enterprise_code=code)),
                422, "enterprise_code")


# --- roles at the gateway's edge, privacy between firms -----------------------------------

def test_each_desk_refuses_the_wrong_role(system: System, cast: Cast) -> None:
    app = submitted(cast)
    path = app_path(app)
    anonymous = system.client
    problem(anonymous.post("/sandbox/v1/applications", json=proposal()), 401)
    problem(cast.researcher.post("/sandbox/v1/applications", proposal()), 403)
    problem(cast.pm.post("/sandbox/v1/applications", proposal()), 403)
    problem(cast.firm.post(f"{path}/assessments", assessment()), 403)
    problem(cast.firm.post(f"{path}/decision", {"decision": "reject", "reasons": ["x"]}),
            403)
    problem(cast.pm.post(f"{path}/decision", {"decision": "reject", "reasons": ["x"]}), 403)
    problem(cast.rev_1.post(f"{path}/submit"), 403)
    problem(cast.researcher.get(path), 403)
    problem(anonymous.get("/sandbox/v1/pilots"), 401)


def test_a_firm_never_sees_another_firms_application_or_pilot(system: System,
                                                              cast: Cast) -> None:
    pilot = active_pilot(system, cast)
    other = system.caller("firm-2", "sandbox_applicant", "fintech-2")
    problem(other.get(f"/sandbox/v1/pilots/{pilot['id']}"), 404)
    problem(other.get(f"/sandbox/v1/applications/{pilot['application_id']}"), 404)
    problem(other.post(f"/sandbox/v1/pilots/{pilot['id']}/exit", {
        "outcome": "discontinue", "final_report": "x", "lessons": "y"}), 404)
    assert ok(other.get("/sandbox/v1/pilots"))["items"] == []
    assert ok(other.get("/sandbox/v1/applications"))["items"] == []


def test_every_answer_above_is_declared_in_the_openapi_document(system: System) -> None:
    """Runs last in the module: each status the scenarios got is one the merged OpenAPI
    document (GET /openapi.json at the gateway) declares for that operation."""
    assert system.undeclared("/sandbox/") == []


def test_every_event_above_is_documented_in_asyncapi(system: System) -> None:
    """Runs last in the module: each event the scenarios caused validates against its
    message's schema in docs/asyncapi.yaml."""
    assert undocumented_events(system, "sandbox") == []
