"""Editing draft calls and applications, cancelling calls, endorsement, withdrawal and
finance reading grants, over HTTP on PostgreSQL: each role, each refusal."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.postgres


def loc_names(problem: dict, field: str) -> bool:
    return any(field in [str(p) for p in e["loc"]] for e in problem.get("errors") or [])


# --- calls ---------------------------------------------------------------------------------

def test_a_call_created_without_the_new_fields_reviews_openly_without_tiers(desk):
    call = desk.call()
    assert (call["review_mode"], call["review_tiers"], call["requires_endorsement"]) == (
        "open", [], False)
    app = desk.submitted(call["id"])
    assert (app["reviews_needed"], app["reviews_count"]) == (2, 0)
    desk.review(app["id"], desk.reviewer("rev-1"))
    assert desk.ok("GET", f"/v1/applications/{app['id']}", desk.pm)["reviews_count"] == 1


def test_a_programme_manager_edits_a_draft_call_and_the_history_keeps_the_change(desk):
    call = desk.call(open_=False)
    body = {"title": "Call, revised", "budget_vnd": 20_000_000_000,
            "max_award_vnd": 5_000_000_000, "opens_at": "2026-11-01T00:00:00Z",
            "closes_at": "2027-06-01T00:00:00Z", "min_reviews": 2, "review_mode": "assigned",
            "review_tiers": [{"up_to_vnd": 1_000_000_000, "min_reviews": 2},
                             {"up_to_vnd": 3_000_000_000, "min_reviews": 3}],
            "requires_endorsement": True}
    edited = desk.ok("PUT", f"/v1/calls/{call['id']}", desk.pm, json=body)
    assert (edited["title"], edited["budget_vnd"], edited["review_mode"]) == (
        "Call, revised", 20_000_000_000, "assigned")
    assert edited["review_tiers"] == body["review_tiers"] and edited["requires_endorsement"]
    step = desk.history(f"/v1/calls/{call['id']}", desk.pm)[-1]
    assert step["action"] == "edit" and step["actor"] == "pm-1"
    assert step["data"]["changes"]["budget_vnd"] == {"from": 10_000_000_000,
                                                     "to": 20_000_000_000}
    assert step["data"]["changes"]["review_mode"] == {"from": "open", "to": "assigned"}
    assert "max_award_vnd" not in step["data"]["changes"]


def test_editing_a_call_is_refused_once_open_for_other_agencies_and_other_roles(desk):
    draft = desk.call(open_=False)
    body = {"title": "x", "budget_vnd": 1_000, "max_award_vnd": 100,
            "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z"}
    desk.refused("PUT", f"/v1/calls/{draft['id']}", desk.pm_other, 404, json=body)
    desk.refused("PUT", f"/v1/calls/{draft['id']}", desk.lead, 403, json=body)
    opened = desk.call()
    problem = desk.refused("PUT", f"/v1/calls/{opened['id']}", desk.pm, 409, json=body)
    assert "only a draft call is edited" in problem["detail"]
    assert desk.ok("GET", f"/v1/calls/{opened['id']}", desk.pm)["title"] == "Call"


@pytest.mark.parametrize(("tiers", "rule"), [
    ([{"up_to_vnd": 2_000_000_000, "min_reviews": 3},
      {"up_to_vnd": 1_000_000_000, "min_reviews": 4}], "ascend without overlap"),
    ([{"up_to_vnd": 1_000_000_000, "min_reviews": 3},
      {"up_to_vnd": 1_000_000_000, "min_reviews": 4}], "ascend without overlap"),
    ([{"up_to_vnd": 1_000_000_000, "min_reviews": 4},
      {"up_to_vnd": 2_000_000_000, "min_reviews": 3}], "must not decrease"),
    ([{"up_to_vnd": 1_000_000_000, "min_reviews": 1}], "below the call's min_reviews"),
])
def test_tiers_out_of_order_or_overlapping_are_422_naming_the_rule(desk, tiers, rule):
    problem = desk.refused("POST", "/v1/calls", desk.pm, 422, json={
        "title": "t", "budget_vnd": 10_000_000_000, "max_award_vnd": 5_000_000_000,
        "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z",
        "min_reviews": 2, "review_tiers": tiers})
    assert rule in problem["detail"] and loc_names(problem, "review_tiers")
    draft = desk.call(open_=False)
    desk.refused("PUT", f"/v1/calls/{draft['id']}", desk.pm, 422, json={
        "title": "t", "budget_vnd": 10_000_000_000, "max_award_vnd": 5_000_000_000,
        "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z",
        "min_reviews": 2, "review_tiers": tiers})


def test_a_call_without_a_decision_is_cancelled_with_a_reason(desk):
    call = desk.call()
    app = desk.submitted(call["id"])
    desk.review(app["id"], desk.reviewer("rev-1"))
    desk.review(app["id"], desk.reviewer("rev-2"))
    desk.refused("POST", f"/v1/calls/{call['id']}/cancel", desk.pm, 422, json={"reason": ""})
    desk.refused("POST", f"/v1/calls/{call['id']}/cancel", desk.pm_other, 403,
                 json={"reason": "not yours"})
    desk.refused("POST", f"/v1/calls/{call['id']}/cancel", desk.lead, 403,
                 json={"reason": "not yours"})
    cancelled = desk.ok("POST", f"/v1/calls/{call['id']}/cancel", desk.pm,
                        json={"reason": "the programme was merged"})
    assert (cancelled["status"], cancelled["cancel_reason"]) == (
        "cancelled", "the programme was merged")
    assert [e["type"] for e in desk.events(call["id"])] == ["call.opened", "call.cancelled"]
    assert desk.events(call["id"])[-1]["data"]["from_status"] == "open"
    step = desk.history(f"/v1/calls/{call['id']}", desk.pm)[-1]
    assert (step["action"], step["from_status"], step["to_status"], step["reason"]) == (
        "cancel", "open", "cancelled", "the programme was merged")
    # Nothing more happens in a cancelled call.
    desk.refused("POST", f"/v1/calls/{call['id']}/cancel", desk.pm, 409,
                 json={"reason": "again"})
    assert "cancelled" in desk.review(app["id"], desk.reviewer("rev-3"), 409)["detail"]
    problem = desk.refused("POST", f"/v1/applications/{app['id']}/decision", desk.pm, 409,
                           json={"decision": "reject", "reason": "x"})
    assert "cancelled" in problem["detail"]
    desk.refused("POST", "/v1/applications", desk.lead, 409, json=desk.body(call["id"]))


def test_a_call_with_a_decision_cannot_be_cancelled(desk):
    call = desk.call()
    app = desk.submitted(call["id"])
    desk.review(app["id"], desk.reviewer("rev-1"))
    desk.review(app["id"], desk.reviewer("rev-2"))
    desk.ok("POST", f"/v1/applications/{app['id']}/decision", desk.pm,
            json={"decision": "reject", "reason": "weak"})
    problem = desk.refused("POST", f"/v1/calls/{call['id']}/cancel", desk.pm, 409,
                           json={"reason": "too late"})
    assert "decided" in problem["detail"]
    assert desk.ok("GET", f"/v1/calls/{call['id']}", desk.pm)["status"] == "open"


def test_a_draft_call_cancelled_before_it_opened_stays_private_and_announces_nothing(desk):
    call = desk.call(open_=False)
    desk.ok("POST", f"/v1/calls/{call['id']}/cancel", desk.pm, json={"reason": "dropped"})
    assert desk.c.get(f"/v1/calls/{call['id']}").status_code == 404
    assert call["id"] not in [c["id"] for c in desk.c.get("/v1/calls").json()["items"]]
    assert desk.ok("GET", f"/v1/calls/{call['id']}", desk.pm)["status"] == "cancelled"
    assert desk.events(call["id"]) == []


# --- editing a draft application ------------------------------------------------------------

def test_the_owner_edits_a_draft_and_the_history_keeps_each_versions_changes(desk):
    call = desk.call()
    app = desk.draft(call["id"])
    assert app["version"] == 1
    v2 = desk.ok("PUT", f"/v1/applications/{app['id']}", desk.lead,
                 json=desk.body(call["id"], title="Rice yield, v2", requested_vnd=900_000_000))
    assert (v2["version"], v2["title"], v2["requested_vnd"]) == (2, "Rice yield, v2",
                                                                 900_000_000)
    team = [{"researcher_id": "r-lead", "name": "Lead", "role": "PI", "contribution_bp": 10000}]
    v3 = desk.ok("PUT", f"/v1/applications/{app['id']}", desk.lead,
                 json=desk.body(call["id"], title="Rice yield, v2", requested_vnd=900_000_000,
                                team=team))
    assert v3["version"] == 3 and [t["researcher_id"] for t in v3["team"]] == ["r-lead"]
    assert desk.ok("GET", f"/v1/applications/{app['id']}", desk.lead)["team"] == v3["team"]
    edits = [e for e in desk.history(f"/v1/applications/{app['id']}", desk.lead)
             if e["action"] == "edit"]
    assert [e["data"]["version"] for e in edits] == [2, 3]
    assert edits[0]["data"]["changes"]["title"] == {"from": "Rice yield forecasting",
                                                    "to": "Rice yield, v2"}
    assert set(edits[0]["data"]["changes"]) == {"title", "requested_vnd"}
    assert set(edits[1]["data"]["changes"]) == {"team"}
    assert len(edits[1]["data"]["changes"]["team"]["from"]) == 2


def test_a_draft_edit_is_validated_like_its_creation_and_keeps_call_and_institution(desk):
    call = desk.call()
    other_call = desk.call()
    app = desk.draft(call["id"])
    path = f"/v1/applications/{app['id']}"
    for overrides, field in [({"call_id": other_call["id"]}, "call_id"),
                             ({"institution_id": "VNU"}, "institution_id"),
                             ({"requested_vnd": 6_000_000_000}, "requested_vnd"),
                             ({"risk_level": "extreme"}, "risk_level")]:
        problem = desk.refused("PUT", path, desk.lead, 422,
                               json={**desk.body(call["id"]), **overrides})
        assert loc_names(problem, field), (field, problem)
    bad_shares = desk.body(call["id"])
    bad_shares["team"][0]["contribution_bp"] = 6999
    assert loc_names(desk.refused("PUT", path, desk.lead, 422, json=bad_shares),
                     "contribution_bp")
    assert desk.ok("GET", path, desk.lead)["version"] == 1


def test_only_the_owner_edits_and_only_while_draft(desk):
    call = desk.call()
    app = desk.draft(call["id"])
    path = f"/v1/applications/{app['id']}"
    desk.refused("PUT", path, desk.member, 403, json=desk.body(call["id"]))
    desk.refused("PUT", path, desk.outsider, 404, json=desk.body(call["id"]))
    desk.refused("PUT", path, desk.office, 403, json=desk.body(call["id"]))
    desk.ok("POST", f"{path}/submit", desk.lead)
    problem = desk.refused("PUT", path, desk.lead, 409, json=desk.body(call["id"], title="x"))
    assert "only a draft is edited" in problem["detail"]


# --- endorsement -----------------------------------------------------------------------------

def test_a_call_requiring_endorsement_takes_only_endorsed_drafts(desk):
    call = desk.call(requires_endorsement=True)
    app = desk.draft(call["id"])
    path = f"/v1/applications/{app['id']}"
    problem = desk.refused("POST", f"{path}/submit", desk.lead, 409)
    assert "endorsement" in problem["detail"]
    endorsed = desk.ok("POST", f"{path}/endorse", desk.office)
    assert (endorsed["endorsed_by"], endorsed["status"]) == ("off-1", "draft")
    assert endorsed["endorsed_at"] is not None
    assert desk.ok("POST", f"{path}/submit", desk.lead)["status"] == "submitted"
    assert [e["type"] for e in desk.events(app["id"])] == ["application.endorsed",
                                                          "application.submitted"]
    step = [e for e in desk.history(path, desk.lead) if e["action"] == "endorse"][0]
    assert (step["actor"], step["role"], step["org"]) == ("off-1", "institution", "HUST")


def test_editing_an_endorsed_draft_voids_the_endorsement(desk):
    call = desk.call(requires_endorsement=True)
    app = desk.draft(call["id"])
    path = f"/v1/applications/{app['id']}"
    desk.ok("POST", f"{path}/endorse", desk.office)
    unchanged = desk.ok("PUT", path, desk.lead, json=desk.body(call["id"]))
    assert unchanged["endorsed_by"] == "off-1" and unchanged["version"] == 1
    edited = desk.ok("PUT", path, desk.lead, json=desk.body(call["id"], abstract="more ML"))
    assert edited["endorsed_by"] is None and edited["endorsed_at"] is None
    edit = desk.history(path, desk.lead)[-1]
    assert edit["data"]["changes"]["endorsement"]["to"] is None
    desk.refused("POST", f"{path}/submit", desk.lead, 409)
    desk.ok("POST", f"{path}/endorse", desk.office)
    desk.ok("POST", f"{path}/submit", desk.lead)


def test_endorsement_is_the_host_institutions_once_on_a_draft(desk):
    call = desk.call()
    app = desk.draft(call["id"])
    path = f"/v1/applications/{app['id']}/endorse"
    desk.refused("POST", path, desk.other_office, 404)
    desk.refused("POST", path, desk.lead, 403)
    desk.refused("POST", path, desk.pm, 403)
    on_team = desk.tokens.headers("r-member", "institution", org="HUST")
    assert "conflict of interest" in desk.refused("POST", path, on_team, 409)["detail"]
    desk.ok("POST", path, desk.office)
    assert "already endorsed" in desk.refused("POST", path, desk.office, 409)["detail"]
    submitted = desk.submitted(call["id"])
    desk.refused("POST", f"/v1/applications/{submitted['id']}/endorse", desk.office, 409)


def test_a_call_without_the_requirement_takes_unendorsed_drafts(desk):
    call = desk.call()
    assert desk.submitted(call["id"])["endorsed_by"] is None


# --- withdrawal -----------------------------------------------------------------------------

def test_the_owner_withdraws_before_the_decision_and_the_reviews_stay(desk):
    call = desk.call()
    app = desk.submitted(call["id"])
    path = f"/v1/applications/{app['id']}"
    desk.review(app["id"], desk.reviewer("rev-1"))
    desk.refused("POST", f"{path}/withdraw", desk.lead, 422, json={"reason": ""})
    desk.refused("POST", f"{path}/withdraw", desk.member, 403, json={"reason": "x"})
    desk.refused("POST", f"{path}/withdraw", desk.outsider, 404, json={"reason": "x"})
    desk.refused("POST", f"{path}/withdraw", desk.pm, 403, json={"reason": "x"})
    withdrawn = desk.ok("POST", f"{path}/withdraw", desk.lead,
                        json={"reason": "the PI moved abroad"})
    assert (withdrawn["status"], withdrawn["withdrawal_reason"]) == (
        "withdrawn", "the PI moved abroad")
    assert withdrawn["reviews_count"] == 1 and withdrawn["withdrawn_at"] is not None
    event = desk.events(app["id"])[-1]
    assert event["type"] == "application.withdrawn"
    assert (event["data"]["from_status"], event["data"]["reviews"]) == ("under_review", 1)
    actions = [e["action"] for e in desk.history(path, desk.pm)]
    assert actions == ["draft", "submit", "review", "withdraw"]
    assert len(desk.ok("GET", f"{path}/reviews", desk.pm)["items"]) == 1
    desk.review(app["id"], desk.reviewer("rev-2"), status=409)
    desk.refused("POST", f"{path}/decision", desk.pm, 409,
                 json={"decision": "reject", "reason": "x"})
    desk.refused("POST", f"{path}/withdraw", desk.lead, 409, json={"reason": "again"})


def test_a_draft_can_be_withdrawn_but_a_decided_application_cannot(desk):
    call = desk.call()
    draft = desk.draft(call["id"])
    desk.ok("POST", f"/v1/applications/{draft['id']}/withdraw", desk.lead,
            json={"reason": "not ready"})
    app = desk.submitted(call["id"])
    desk.review(app["id"], desk.reviewer("rev-1"))
    desk.review(app["id"], desk.reviewer("rev-2"))
    desk.ok("POST", f"/v1/applications/{app['id']}/decision", desk.pm,
            json={"decision": "approve", "awarded_vnd": 1_000_000_000})
    problem = desk.refused("POST", f"/v1/applications/{app['id']}/withdraw", desk.lead, 409,
                           json={"reason": "changed our minds"})
    assert "not yet decided" in problem["detail"]


# --- finance reads grants ---------------------------------------------------------------------

def test_finance_reads_and_lists_grants_and_nothing_else(desk):
    call = desk.call()
    app = desk.submitted(call["id"])
    desk.review(app["id"], desk.reviewer("rev-1"))
    desk.review(app["id"], desk.reviewer("rev-2"))
    decided = desk.ok("POST", f"/v1/applications/{app['id']}/decision", desk.pm,
                      json={"decision": "approve", "awarded_vnd": 1_000_000_000})
    grant = desk.ok("GET", f"/v1/grants/{decided['grant_id']}", desk.finance)
    assert grant["awarded_vnd"] == 1_000_000_000
    assert [m["tranche_vnd"] for m in grant["milestones"]] == [500_000_000, 500_000_000]
    assert desk.c.get(f"/v1/grants/{grant['id']}/history",
                      headers=desk.finance).status_code == 404
    assert desk.c.get(f"/v1/applications/{app['id']}", headers=desk.finance).status_code == 404
    listed = desk.ok("GET", "/v1/grants", desk.finance, params={"call_id": call["id"]})
    assert [g["id"] for g in listed["items"]] == [grant["id"]]


# --- review tiers ------------------------------------------------------------------------------

def test_an_application_shows_the_reviews_its_tier_needs_and_a_decision_waits_for_them(desk):
    call = desk.call(min_reviews=2, review_tiers=[
        {"up_to_vnd": 1_000_000_000, "min_reviews": 2},
        {"up_to_vnd": 3_000_000_000, "min_reviews": 3}])
    small = desk.submitted(call["id"], requested_vnd=1_000_000_000)
    large = desk.submitted(call["id"], requested_vnd=4_000_000_000)  # above every tier
    assert (small["reviews_needed"], large["reviews_needed"]) == (2, 3)
    for app in (small, large):
        desk.review(app["id"], desk.reviewer("rev-1"))
        desk.review(app["id"], desk.reviewer("rev-2"))
    desk.ok("POST", f"/v1/applications/{small['id']}/decision", desk.pm,
            json={"decision": "approve", "awarded_vnd": 1_000_000_000})
    problem = desk.refused("POST", f"/v1/applications/{large['id']}/decision", desk.pm, 409,
                           json={"decision": "approve", "awarded_vnd": 4_000_000_000})
    assert "at least 3 reviews" in problem["detail"]
    desk.review(large["id"], desk.reviewer("rev-3"))
    seen = desk.ok("GET", f"/v1/applications/{large['id']}", desk.lead)
    assert (seen["reviews_needed"], seen["reviews_count"]) == (3, 3)
    desk.ok("POST", f"/v1/applications/{large['id']}/decision", desk.pm,
            json={"decision": "approve", "awarded_vnd": 4_000_000_000})
