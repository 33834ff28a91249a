"""Applications on PostgreSQL: every transition and role, the decision clock, assessment,
four eyes, decision numbers, and bad input refused with nothing changed."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from .world import PROPOSAL, World, approval, assessment

pytestmark = pytest.mark.postgres

TODAY = date(2026, 11, 23)  # conftest's NOW, in Hanoi
NUMBER = re.compile(r"([0-9]+)/QĐ-TNKS-SBV")


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


def apps_of(w: World, headers: dict, **query: str) -> list[dict]:
    return w.call("GET", "/v1/applications", headers, 200, None) if not query else \
        w.c.get("/v1/applications", headers=headers, params=query).json()


# --- drafting and editing ------------------------------------------------------------------

def test_a_firm_drafts_an_application_returned_whole(w: World) -> None:
    app = w.draft()
    assert app["status"] == "draft"
    assert app["supervising_agency"] == "SBV"
    assert app["scope"] == PROPOSAL["scope"]
    assert app["organisation_id"] == w.firm_org
    assert app["decision_due_on"] is None and app["overdue"] is False
    assert app["id"] and app["created_at"].endswith("Z") or "+00:00" in app["created_at"]


@pytest.mark.parametrize("who, status", [("researcher", 403), ("r1", 403), (None, 401)])
def test_only_a_firm_drafts(w: World, who, status) -> None:
    headers = getattr(w, who) if who else None
    problem = w.call("POST", "/v1/applications", headers, status, PROPOSAL)
    assert problem["status"] == status


@pytest.mark.parametrize("change, names", [
    ({"sector": "crypto"}, ["fintech", "telecom", "ai", "other"]),
    ({"enterprise_code": "12345"}, ["10-digit"]),
    ({"requested_months": 30}, ["24"]),
    ({"exemptions": [{"provision": "mining", "justification": "x"}]}, ["p2p_lending"]),
    ({"scope": {"regions": ["HN"], "max_participants": 10, "max_transaction_vnd": 1.5}},
     ["max_transaction_vnd"]),
    ({"scope": {"regions": ["HN"], "max_participant": 10}}, ["max_participant"]),
])
def test_bad_input_is_a_422_naming_the_rule_and_nothing_is_stored(w: World, change,
                                                                  names) -> None:
    body = {**PROPOSAL, **change}
    response = w.c.post("/v1/applications", headers=w.owner, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    text = response.text
    assert all(name in text for name in names), text
    assert w.c.get("/v1/applications", headers=w.owner).json()["items"] == []


def test_the_owner_edits_a_draft_and_nobody_else_can(w: World) -> None:
    app = w.draft()
    edited = w.call("PUT", f"/v1/applications/{app['id']}", w.owner, 200,
                    {**PROPOSAL, "technology": "Open-banking credit scoring",
                     "exemptions": [{"provision": "credit_scoring", "justification": "x"}]})
    assert edited["technology"] == "Open-banking credit scoring"
    w.call("PUT", f"/v1/applications/{app['id']}", w.other_firm, 404, PROPOSAL)
    w.call("GET", f"/v1/applications/{app['id']}", w.other_firm, 404)


def test_a_submitted_application_is_not_edited(w: World) -> None:
    app = w.submitted()
    problem = w.call("PUT", f"/v1/applications/{app['id']}", w.owner, 409, PROPOSAL)
    assert "draft" in problem["detail"]


# --- the decision clock --------------------------------------------------------------------

def test_submission_starts_the_sectors_decision_clock(w: World, clock) -> None:
    app = w.submitted()
    assert app["status"] == "submitted"
    assert app["decision_due_on"] == (TODAY + timedelta(days=90)).isoformat()
    assert app["overdue"] is False and app["decision_days_left"] == 90
    clock.advance(timedelta(days=91))
    later = w.call("GET", f"/v1/applications/{app['id']}", w.r1, 200)
    assert later["overdue"] is True and later["decision_days_left"] == -1


def test_the_clock_stops_while_changes_are_requested(w: World, clock) -> None:
    app = w.submitted()
    clock.advance(timedelta(days=10))
    back = w.call("POST", f"/v1/applications/{app['id']}/request-changes", w.r1, 200,
                  {"reasons": ["explain the escrow"]})
    assert back["status"] == "changes_requested"
    assert back["decision_due_on"] is None and back["decision_days_left"] == 80
    assert back["changes_requested"] == ["explain the escrow"]
    clock.advance(timedelta(days=200))
    w.call("PUT", f"/v1/applications/{app['id']}", w.owner, 200,
           {**PROPOSAL, "safeguards": "escrow and insurance"})
    again = w.call("POST", f"/v1/applications/{app['id']}/submit", w.owner, 200)
    assert again["decision_due_on"] == (TODAY + timedelta(days=210 + 80)).isoformat()
    assert again["submission"] == 2 and again["overdue"] is False


def test_the_owner_withdraws_before_the_decision_with_a_reason(w: World) -> None:
    app = w.submitted()
    w.call("POST", f"/v1/applications/{app['id']}/withdraw", w.owner, 422, {"reason": " "})
    done = w.call("POST", f"/v1/applications/{app['id']}/withdraw", w.owner, 200,
                  {"reason": "plans changed"})
    assert done["status"] == "withdrawn" and done["withdraw_reason"] == "plans changed"
    w.call("POST", f"/v1/applications/{app['id']}/withdraw", w.owner, 409,
           {"reason": "again"})


# --- assessment ----------------------------------------------------------------------------

def test_an_assessment_judges_six_criteria_once_per_reviewer(w: World) -> None:
    app = w.submitted()
    made = w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r1, 201,
                  assessment(failed=("readiness",)))
    assert made["passed"] is False and made["failed"] == ["readiness"]
    assert made["criteria"]["in_scope"]["pass"] is True
    again = w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r1, 409,
                   assessment())
    assert "one assessment per reviewer" in again["detail"]
    after = w.call("GET", f"/v1/applications/{app['id']}", w.owner, 200)
    assert after["status"] == "under_assessment" and after["assessments_count"] == 1


def test_a_reviewer_of_the_applicants_organisation_is_refused_as_a_conflict(w: World) -> None:
    app = w.submitted()
    problem = w.call("POST", f"/v1/applications/{app['id']}/assessments", w.conflicted, 409,
                     assessment())
    assert problem["type"].endswith("conflict-of-interest")
    assert w.call("GET", f"/v1/applications/{app['id']}", w.owner,
                  200)["assessments_count"] == 0


def test_an_assessment_missing_a_criterion_is_a_422(w: World) -> None:
    app = w.submitted()
    body = assessment()
    del body["criteria"]["readiness"]
    problem = w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r1, 422, body)
    assert "readiness" in problem["detail"]


def test_a_draft_is_the_firms_own(w: World) -> None:
    app = w.draft()
    w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r1, 404, assessment())
    w.call("GET", f"/v1/applications/{app['id']}", w.pm, 404)
    assert w.call("GET", f"/v1/applications/{app['id']}", w.auditor, 200)["status"] == "draft"


def test_only_reviewers_assess_request_changes_and_decide(w: World) -> None:
    app = w.submitted()
    for path, body in (("assessments", assessment()), ("request-changes", {"reasons": ["x"]}),
                       ("decision", {"decision": "reject", "reasons": ["x"]})):
        for who in (w.owner, w.pm, w.auditor):
            w.call("POST", f"/v1/applications/{app['id']}/{path}", who, 403, body)


# --- four eyes and the decision ------------------------------------------------------------

def test_approval_needs_two_assessments_by_two_other_reviewers(w: World) -> None:
    app = w.submitted()
    w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r1, 201, assessment())
    problem = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 409,
                     approval(TODAY))
    assert "four eyes" in problem["detail"]
    w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r2, 201, assessment())
    own = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r2, 409, approval(TODAY))
    assert own["type"].endswith("conflict-of-interest") and "four eyes" in own["detail"]
    conflicted = w.call("POST", f"/v1/applications/{app['id']}/decision", w.conflicted, 409,
                        approval(TODAY))
    assert conflicted["type"].endswith("conflict-of-interest")
    assert w.call("GET", f"/v1/applications/{app['id']}", w.owner,
                  200)["status"] == "under_assessment"


def test_approval_states_terms_numbers_the_decision_and_creates_the_pilot(w: World) -> None:
    app = w.assessed()
    decided = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 200,
                     approval(TODAY))
    assert decided["status"] == "approved" and decided["decision"] == "approve"
    assert NUMBER.fullmatch(decided["decision_no"]) and decided["decision_year"] == 2026
    assert decided["limits"] == {"regions": ["HN"], "max_participants": 1000,
                                 "max_transaction_vnd": 10_000_000}
    assert decided["decision_due_on"] is None and decided["overdue"] is False
    pilot = w.call("GET", f"/v1/pilots/{decided['pilot_id']}", w.owner, 200)
    assert pilot["status"] == "approved"
    assert pilot["decision_no"] == decided["decision_no"]
    assert pilot["decisions"] == [{"kind": "approval", "decision_no": decided["decision_no"],
                                   "decision_year": 2026, "decided_on": TODAY.isoformat()}]
    assert pilot["requested_scope"] == PROPOSAL["scope"]
    assert pilot["reports"] == [] and pilot["incidents"] == []


def test_a_pilot_starting_on_the_day_of_approval_is_active_at_once(w: World) -> None:
    app = w.assessed()
    decided = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 200,
                     approval(TODAY, starts_on=TODAY.isoformat()))
    pilot = w.call("GET", f"/v1/pilots/{decided['pilot_id']}", w.pm, 200)
    assert pilot["status"] == "active" and pilot["started_on"] == TODAY.isoformat()
    assert pilot["next_report_due_on"] == "2027-01-15"  # 2026-Q4 plus 15 days


@pytest.mark.parametrize("change, field", [
    ({"limits": {"regions": ["HN", "DN"], "max_participants": 10}}, "limits"),
    ({"limits": {"regions": ["HN"], "max_participants": 5001,
                 "max_transaction_vnd": 1}}, "limits"),
    ({"limits": {"regions": ["HN"], "max_participants": 10}}, "limits"),  # no cap: wider
    ({"starts_on": (TODAY - timedelta(days=1)).isoformat()}, "starts_on"),
    ({"starts_on": (TODAY + timedelta(days=91)).isoformat()}, "starts_on"),
    ({"ends_on": (TODAY + timedelta(days=30)).isoformat()}, "ends_on"),
    ({"ends_on": "2028-06-23"}, "ends_on"),  # 18 months from 2026-12-23 end on 06-22
    ({"conditions": []}, "conditions"),
])
def test_approval_beyond_the_rules_is_refused_with_nothing_changed(w: World, change,
                                                                  field) -> None:
    app = w.assessed()
    problem = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 422,
                     approval(TODAY, **change))
    assert field in str(problem["errors"]) or field in problem["detail"]
    after = w.call("GET", f"/v1/applications/{app['id']}", w.owner, 200)
    assert after["status"] == "under_assessment" and after["decision_no"] is None
    assert w.call("GET", "/v1/pilots", w.owner, 200)["items"] == []


def test_a_failed_criterion_bars_approval_and_a_rejection_is_numbered_with_reasons(
        w: World) -> None:
    app = w.submitted()
    w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r1, 201, assessment())
    w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r2, 201,
           assessment(failed=("need_for_sandbox",)))
    refused = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 409,
                     approval(TODAY))
    assert "need_for_sandbox" in refused["detail"]
    rejected = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 200,
                      {"decision": "reject", "reasons": ["existing rules suffice"]})
    assert rejected["status"] == "rejected" and rejected["reasons"] == [
        "existing rules suffice"]
    assert NUMBER.fullmatch(rejected["decision_no"]) and rejected["pilot_id"] is None
    w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 409,
           {"decision": "reject", "reasons": ["again"]})


def test_decisions_of_one_register_are_numbered_one_after_another(w: World) -> None:
    first = w.approved(TODAY)
    second = w.approved(TODAY)
    n1 = int(NUMBER.fullmatch(first["decision_no"])[1])
    assert second["decision_no"] == f"{n1 + 1}/QĐ-TNKS-SBV"


def test_assessments_are_the_ministrys_working_papers(w: World) -> None:
    app = w.assessed()
    page = w.call("GET", f"/v1/applications/{app['id']}/assessments", w.pm, 200)
    assert len(page["items"]) == 2
    w.call("GET", f"/v1/applications/{app['id']}/assessments", w.owner, 403)


# --- lists and history ---------------------------------------------------------------------

def test_a_firm_lists_its_own_applications_and_the_ministry_the_submitted_ones(
        w: World, client, tokens) -> None:
    draft = w.draft()
    sent = w.submitted(sector="ai", exemptions=[{"provision": "x", "justification": "y"}])
    own = {a["id"] for a in client.get("/v1/applications", headers=w.owner).json()["items"]}
    assert {draft["id"], sent["id"]} <= own
    other = client.get("/v1/applications", headers=w.other_firm).json()["items"]
    assert not {a["id"] for a in other} & own
    desk = client.get("/v1/applications", headers=w.pm,
                      params={"sector": "ai", "status": "submitted"}).json()["items"]
    assert sent["id"] in {a["id"] for a in desk} and draft["id"] not in {
        a["id"] for a in desk}
    assert all(a["sector"] == "ai" and a["status"] == "submitted" for a in desk)
    conflicted = client.get("/v1/applications", headers=w.conflicted).json()["items"]
    assert sent["id"] not in {a["id"] for a in conflicted}
    bad = client.get("/v1/applications", headers=w.pm, params={"sector": "crypto"})
    assert bad.status_code == 422 and "fintech" in bad.json()["detail"]
    assert client.get("/v1/applications", headers=w.researcher).status_code == 403


def test_lists_page_with_a_cursor(w: World, client) -> None:
    ids = {w.draft()["id"] for _ in range(3)}
    first = client.get("/v1/applications", headers=w.owner, params={"limit": 2}).json()
    second = client.get("/v1/applications", headers=w.owner,
                        params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert {a["id"] for a in first["items"] + second["items"]} == ids
    assert second["next_cursor"] is None


def test_the_history_tells_every_step_and_keeps_assessors_blind_to_the_firm(w: World) -> None:
    app = w.approved(TODAY)
    trail = w.call("GET", f"/v1/applications/{app['id']}/history", w.pm, 200)["items"]
    assert [e["action"] for e in trail] == ["draft", "submit", "assess", "assess", "decide"]
    assert trail[-1]["from_status"] == "under_assessment"
    assert trail[-1]["to_status"] == "approved" and trail[-1]["role"] == "reviewer"
    firm_view = w.call("GET", f"/v1/applications/{app['id']}/history", w.owner, 200)["items"]
    assert {e["actor"] for e in firm_view if e["action"] == "assess"} == {"(reviewer)"}
    pilot_trail = w.call("GET", f"/v1/pilots/{app['pilot_id']}/history", w.owner, 200)
    assert [e["action"] for e in pilot_trail["items"]] == ["approve"]


def test_a_post_with_an_idempotency_key_is_replayed(w: World, client) -> None:
    headers = {**w.owner, "Idempotency-Key": "draft-1"}
    first = client.post("/v1/applications", headers=headers, json=PROPOSAL)
    again = client.post("/v1/applications", headers=headers, json=PROPOSAL)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert len(client.get("/v1/applications", headers=w.owner).json()["items"]) == 1
