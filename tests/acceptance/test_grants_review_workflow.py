"""Issue 18's review workflow through the gateway of ``make run``: a call reviewed by
assignment, with review tiers and endorsement; a draft edited, endorsed, submitted;
reviewers assigned (the conflicted refused), reading a summary until they declare, then
the whole application; reviews; a numbered decision; withdrawal; finance reading the
grant."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .desk import (
    EVENT_TYPE,
    System,
    assert_created,
    assert_history,
    key,
    ok,
    problem,
    short,
    undocumented_events,
)
from .grants_world import (
    REVIEW,
    Cast,
    application_body,
    assignment_body,
    call_body,
    open_call,
    submitted,
)

TIERS = [{"up_to_vnd": 1_000_000_000, "min_reviews": 2},
         {"up_to_vnd": 3_000_000_000, "min_reviews": 3}]
SUMMARY_FIELDS = {"id", "call_id", "title", "institution_id", "team"}
FULL_ONLY = {"abstract", "requested_vnd", "milestones", "risk_level", "applicant_id"}


@pytest.fixture(scope="module")
def cast(system: System) -> Cast:
    return Cast(system)


def test_an_assigned_call_runs_from_draft_to_a_numbered_award(system: System,
                                                              cast: Cast) -> None:
    pm, lead, office = cast.pm, cast.lead, cast.office
    due = (system.today + timedelta(days=14)).isoformat()

    # The programme manager drafts a call reviewed by assignment, with tiers and
    # endorsement, and opens it.
    call_key = key()
    drafted = ok(pm.post("/grants/v1/calls", call_body(
        review_mode="assigned", review_tiers=TIERS, requires_endorsement=True,
        min_reviews=2), key=call_key), 201)
    assert_created(drafted)
    assert ok(pm.post("/grants/v1/calls", call_body(
        review_mode="assigned", review_tiers=TIERS, requires_endorsement=True,
        min_reviews=2), key=call_key), 201) == drafted
    assert (drafted["review_mode"], drafted["review_tiers"], drafted["requires_endorsement"],
            drafted["agency_id"], drafted["status"]) == ("assigned", TIERS, True, "MOST",
                                                         "draft")
    call = ok(pm.post(f"/grants/v1/calls/{drafted['id']}/open"))
    assert call["status"] == "open"

    # The researcher drafts and edits; the history keeps each version's changes.
    draft = ok(lead.post("/grants/v1/applications", application_body(call["id"]), key=key()),
               201)
    assert_created(draft, call_id=call["id"])
    path = f"/grants/v1/applications/{draft['id']}"
    assert draft["reviews_needed"] == 3  # 1.5 bn: the 3-review tier
    edited = ok(lead.put(path, application_body(call["id"], title="Salinity forecasts")))
    assert edited["title"] == "Salinity forecasts"
    problem(lead.put(path, application_body(call["id"], institution_id="VNU")), 422,
            "institution_id")

    # Endorsement: required, by the host institution only; an edit voids it.
    problem(lead.post(f"{path}/submit"), 409, "endors")
    problem(cast.other_office.post(f"{path}/endorse"), 404)  # not theirs: private
    endorsed = ok(office.post(f"{path}/endorse", key=key()))
    assert endorsed["endorsed_by"] == "off-1"
    voided = ok(lead.put(path, application_body(call["id"], title="Salinity forecasting")))
    assert voided["endorsed_by"] is None
    problem(lead.post(f"{path}/submit"), 409, "endors")
    ok(office.post(f"{path}/endorse"))
    app = ok(lead.post(f"{path}/submit", key=key()))
    assert app["status"] == "submitted"
    assert app["needs_reviewers"] is True
    assert app["reviews_needed"] == 3 and app["reviews_count"] == 0

    # Assignment: the conflicted are refused with the reason (409).
    assignments = f"{path}/assignments"
    problem(pm.post(assignments, assignment_body("rev-hust", "HUST", due)), 409,
            "institution")
    problem(pm.post(assignments, assignment_body("r-member", "VAST", due)), 409, "team")
    problem(cast.other_pm.post(assignments, assignment_body("rev-1", "VAST", due)), 404)
    made = {}
    for n in (1, 2, 3, 4):
        rev = cast.rev[n]
        made[n] = ok(pm.post(assignments, assignment_body(rev.sub, rev.org, due), key=key()),
                     201)
        assert_created(made[n], application_id=draft["id"])
        assert made[n]["status"] == "assigned" and made[n]["overdue"] is False
        assert {"reviewer_id", "reviewer_org", "name", "due_on"} <= made[n].keys()
    queue = ok(cast.rev[1].get("/grants/v1/assignments", status="assigned"))["items"]
    assert [a["id"] for a in queue] == [made[1]["id"]]

    # Before the declaration: the summary only; no review.
    summary = ok(cast.rev[1].get(path))
    assert summary.keys() >= SUMMARY_FIELDS
    assert not FULL_ONLY & summary.keys()
    assert "SECRET-ABSTRACT" not in str(summary)
    assert summary["team"] == [{"name": "Lead", "role": "PI"},
                               {"name": "Member", "role": "member"}]
    problem(cast.rev[1].post(f"{path}/reviews", REVIEW), 409, "declar")
    problem(cast.rev[5].get(path), 404)  # not assigned: it does not exist for them
    problem(cast.rev[5].post(f"{path}/reviews", REVIEW), 404)

    # The declaration: once; a conflict releases the assignment; declining needs a reason.
    declared = ok(cast.rev[1].post(f"/grants/v1/assignments/{made[1]['id']}/declaration",
                                   {"conflict_of_interest": False,
                                    "statement": "no ties to HUST"}, key=key()))
    assert declared["status"] == "accepted"
    problem(cast.rev[1].post(f"/grants/v1/assignments/{made[1]['id']}/declaration",
                             {"conflict_of_interest": False, "statement": "again"}), 409)
    full = ok(cast.rev[1].get(path))
    assert full.keys() >= FULL_ONLY
    conflicted = ok(cast.rev[4].post(f"/grants/v1/assignments/{made[4]['id']}/declaration",
                                     {"conflict_of_interest": True,
                                      "statement": "co-author of the lead"}))
    assert conflicted["status"] == "conflict"
    problem(cast.rev[4].get(path), 404)
    problem(pm.post(assignments, assignment_body("rev-4", "VNU", due)), 409, "conflict")
    problem(cast.rev[2].post(f"/grants/v1/assignments/{made[2]['id']}/decline", {}), 422)
    declined = ok(cast.rev[2].post(f"/grants/v1/assignments/{made[2]['id']}/decline",
                                   {"reason": "on leave"}))
    assert declined["status"] == "declined"
    lacking = ok(pm.get("/grants/v1/applications", needs_reviewers="true"))["items"]
    assert draft["id"] in [a["id"] for a in lacking]
    made[5] = ok(pm.post(assignments, assignment_body("rev-5", "IOIT", due)), 201)
    trail = ok(cast.auditor.get(f"/grants/v1/assignments/{made[4]['id']}/history"))["items"]
    assert_history(trail, [("assign", "assigned"), ("declare", "conflict")])
    assert trail[-1]["actor"] == "rev-4" and trail[-1]["reason"] == "co-author of the lead"

    # Reviews by three declared assignees; the decision needs the tier's three.
    for n in (1, 3, 5):
        if n != 1:
            ok(cast.rev[n].post(f"/grants/v1/assignments/{made[n]['id']}/declaration",
                                {"conflict_of_interest": False, "statement": "none"}))
        review = ok(cast.rev[n].post(f"{path}/reviews", REVIEW, key=key()), 201)
        assert_created(review, application_id=draft["id"])
        if n == 3:
            problem(pm.post(f"{path}/decision",
                            {"decision": "approve", "awarded_vnd": 1_200_000_000}), 409, "3")
    assert ok(cast.rev[1].get(f"/grants/v1/assignments/{made[1]['id']}"))["status"] == \
        "reviewed"
    problem(cast.rev[1].post(f"{path}/reviews", REVIEW), 409)

    decided = ok(pm.post(f"{path}/decision",
                         {"decision": "approve", "awarded_vnd": 1_200_000_000}, key=key()))
    assert decided["status"] == "approved"
    assert decided["decision_no"] == "1/QĐ-MOST"
    assert decided["decision_year"] == system.today.year
    assert decided["grant_id"]

    # Finance reads the grant to reconcile its payments.
    grant = ok(cast.finance.get(f"/grants/v1/grants/{decided['grant_id']}"))
    assert {"id", "application_id", "call_id", "agency_id", "institution_id", "awarded_vnd",
            "disbursed_vnd", "status", "milestones"} <= grant.keys()
    assert (grant["awarded_vnd"], grant["disbursed_vnd"]) == (1_200_000_000, 0)
    assert [m["tranche_vnd"] for m in grant["milestones"]] == [480_000_000, 720_000_000]
    for milestone in grant["milestones"]:
        assert {"id", "title", "tranche_bp", "tranche_vnd", "due_date", "status",
                "overdue"} <= milestone.keys()
    problem(cast.finance.get(path), 403)

    # The trail: who did what, from which status to which, and why.
    trail = ok(pm.get(f"{path}/history"))["items"]
    assert_history(trail, [("review", "under_review")] * 3 + [("decide", "approved")])
    actions = [e["action"] for e in trail]
    assert actions[:6] == ["draft", "edit", "endorse", "edit", "endorse", "submit"]
    first_edit = trail[1]
    assert first_edit["actor"] == "r-lead" and first_edit["data"]["version"] == 2
    assert "Salinity forecasts" in str(first_edit["data"]["changes"])
    assert trail[-1]["actor"] == "pm-1" and trail[-1]["role"] == "program_manager"

    events = system.events("grants", draft["id"], expect=[
        "application.submitted", "application.decided"])
    awarded = system.events("grants", decided["grant_id"], expect=["grant.awarded"])
    opened = system.events("grants", call["id"], expect=["call.opened"])
    for event in events + awarded + opened:
        assert EVENT_TYPE.match(event["type"]), event["type"]
        assert event["source"] == "/grants"
    decision = next(e for e in events if short(e) == "application.decided")
    assert decision["data"]["decision_no"] == "1/QĐ-MOST"


def test_the_owner_withdraws_before_the_decision_and_open_assignments_are_released(
        system: System, cast: Cast) -> None:
    call = open_call(cast, review_mode="assigned")
    app = submitted(cast, call)
    path = f"/grants/v1/applications/{app['id']}"
    due = (system.today + timedelta(days=7)).isoformat()
    assignment = ok(cast.pm.post(f"{path}/assignments", assignment_body("rev-1", "VAST", due)),
                    201)
    problem(cast.member.post(f"{path}/withdraw", {"reason": "not mine"}), 403)
    problem(cast.lead.post(f"{path}/withdraw", {}), 422, "reason")
    withdrawn = ok(cast.lead.post(f"{path}/withdraw", {"reason": "funded elsewhere"},
                                  key=key()))
    assert withdrawn["status"] == "withdrawn"
    released = ok(cast.pm.get(f"/grants/v1/assignments/{assignment['id']}"))
    assert released["status"] not in ("assigned", "accepted")
    problem(cast.lead.post(f"{path}/withdraw", {"reason": "again"}), 409)
    trail = ok(cast.lead.get(f"{path}/history"))["items"]
    assert_history(trail, [("withdraw", "withdrawn")])
    assert trail[-1]["reason"] == "funded elsewhere"
    system.events("grants", app["id"], expect=["application.withdrawn"])


def test_a_decided_application_cannot_be_withdrawn_and_a_rejection_is_numbered(
        system: System, cast: Cast) -> None:
    pm = system.caller("pm-hcm", "program_manager", "DOST-HCM")
    call = ok(pm.post("/grants/v1/calls", call_body()), 201)
    ok(pm.post(f"/grants/v1/calls/{call['id']}/open"))
    assert call["review_mode"] == "open" and call["review_tiers"] == []
    assert call["requires_endorsement"] is False and call["min_reviews"] == 2
    app = ok(cast.lead.post("/grants/v1/applications",
                            application_body(call["id"], requested_vnd=900_000_000)), 201)
    path = f"/grants/v1/applications/{app['id']}"
    ok(cast.lead.post(f"{path}/submit"))
    for n in (1, 2):  # an open call: any reviewer without a conflict
        ok(cast.rev[n].post(f"{path}/reviews", REVIEW), 201)
    rejected = ok(pm.post(f"{path}/decision", {"decision": "reject", "reason": "too early"}))
    assert rejected["status"] == "rejected"
    assert rejected["decision_no"] == "1/QĐ-DOST-HCM"
    assert rejected["decision_year"] == system.today.year
    problem(cast.lead.post(f"{path}/withdraw", {"reason": "late"}), 409)


def test_a_cancelled_calls_applications_are_no_longer_assigned_or_reviewed(
        system: System, cast: Cast) -> None:
    due = (system.today + timedelta(days=7)).isoformat()
    assigned_call = open_call(cast, review_mode="assigned")
    waiting = submitted(cast, assigned_call)
    path = f"/grants/v1/applications/{waiting['id']}"
    ok(cast.pm.post(f"{path}/assignments", assignment_body("rev-1", "VAST", due)), 201)
    open_one = open_call(cast)
    reviewed = submitted(cast, open_one)
    ok(cast.rev[1].post(f"/grants/v1/applications/{reviewed['id']}/reviews", REVIEW), 201)
    for call in (assigned_call, open_one):
        cancelled = ok(cast.pm.post(f"/grants/v1/calls/{call['id']}/cancel",
                                    {"reason": "the programme was merged"}, key=key()))
        assert cancelled["status"] == "cancelled"
    problem(cast.pm.post(f"{path}/assignments", assignment_body("rev-2", "NAFOSTED", due)),
            409, "cancelled")
    assert ok(cast.pm.get(path))["needs_reviewers"] is False
    lacking = ok(cast.pm.get("/grants/v1/applications", needs_reviewers="true"))["items"]
    assert waiting["id"] not in [a["id"] for a in lacking]
    before = ok(cast.pm.get(f"/grants/v1/applications/{reviewed['id']}"))
    problem(cast.rev[2].post(f"/grants/v1/applications/{reviewed['id']}/reviews", REVIEW),
            409, "cancelled")
    problem(cast.pm.post(f"/grants/v1/applications/{reviewed['id']}/decision",
                         {"decision": "reject", "reason": "x"}), 409, "cancelled")
    assert ok(cast.pm.get(f"/grants/v1/applications/{reviewed['id']}")) == before
    withdrawn = ok(cast.lead.post(f"/grants/v1/applications/{reviewed['id']}/withdraw",
                                  {"reason": "the call was cancelled"}))
    assert withdrawn["status"] == "withdrawn"


@pytest.mark.parametrize("tiers", [
    [{"up_to_vnd": 3_000_000_000, "min_reviews": 3},
     {"up_to_vnd": 1_000_000_000, "min_reviews": 2}],              # out of order
    [{"up_to_vnd": 1_000_000_000, "min_reviews": 2},
     {"up_to_vnd": 1_000_000_000, "min_reviews": 3}],              # overlapping
    [{"up_to_vnd": 1_000_000_000, "min_reviews": 4},
     {"up_to_vnd": 3_000_000_000, "min_reviews": 3}],              # fewer reviews for more
    [{"up_to_vnd": 1_000_000_000, "min_reviews": 1}],              # below the call's 2
], ids=["out-of-order", "overlapping", "decreasing", "below-min-reviews"])
def test_review_tiers_out_of_order_or_overlapping_are_refused(cast: Cast,
                                                              tiers: list) -> None:
    problem(cast.pm.post("/grants/v1/calls", call_body(review_tiers=tiers)), 422, "tier")


def test_each_desk_refuses_the_wrong_role(system: System, cast: Cast) -> None:
    call = open_call(cast)
    app = submitted(cast, call)
    path = f"/grants/v1/applications/{app['id']}"
    problem(system.client.post("/grants/v1/calls", json=call_body()), 401)
    problem(cast.rev[1].post("/grants/v1/calls", call_body()), 403)
    problem(cast.lead.post(f"{path}/assignments",
                           assignment_body("rev-1", "VAST", "2099-01-01")), 403)
    problem(cast.office.post(f"{path}/reviews", REVIEW), 403)
    problem(cast.rev[1].post(f"{path}/decision", {"decision": "reject", "reason": "x"}), 403)
    problem(cast.firm.get(path), 403)
    problem(cast.finance.get("/grants/v1/assignments"), 403)
    problem(cast.lead.get("/grants/v1/assignments"), 403)
    problem(cast.rev[1].post(f"{path}/endorse"), 403)
    problem(cast.office.post(f"{path}/withdraw", {"reason": "x"}), 403)


def test_assignment_queues_page_and_filter(system: System, cast: Cast) -> None:
    call = open_call(cast, review_mode="assigned")
    due = (system.today + timedelta(days=3)).isoformat()
    for _ in range(3):
        app = submitted(cast, call)
        ok(cast.pm.post(f"/grants/v1/applications/{app['id']}/assignments",
                        assignment_body("rev-3", "SBV", due)), 201)
    seen, cursor = [], None
    while True:
        page = ok(cast.rev[3].get("/grants/v1/assignments", limit=2,
                                  **({"cursor": cursor} if cursor else {})))
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) >= 3 and len({a["id"] for a in seen}) == len(seen)
    assert {a["reviewer_id"] for a in seen} == {"rev-3"}
    agency = ok(cast.pm.get("/grants/v1/assignments", status="assigned", limit=100))["items"]
    assert {a["id"] for a in seen if a["status"] == "assigned"} <= {a["id"] for a in agency}
    assert ok(cast.other_pm.get("/grants/v1/assignments"))["items"] == []
    assert len(ok(cast.auditor.get("/grants/v1/assignments", limit=100))["items"]) >= 3
    system.clock.advance(timedelta(days=4))
    late = ok(cast.rev[3].get("/grants/v1/assignments", status="assigned"))["items"]
    assert late and all(a["overdue"] for a in late)
    problem(cast.rev[3].get("/grants/v1/assignments", status="bogus"), 422)
    problem(cast.rev[3].get("/grants/v1/assignments", cursor="garbage"), 422)


def test_every_answer_above_is_declared_in_the_openapi_document(system: System) -> None:
    """Runs last in the module: each status the scenarios got is one the merged OpenAPI
    document (GET /openapi.json at the gateway) declares for that operation."""
    assert system.undeclared("/grants/") == []


def test_every_event_above_is_documented_in_asyncapi(system: System) -> None:
    """Runs last in the module: each event the scenarios caused validates against its
    message's schema in docs/asyncapi.yaml."""
    assert undocumented_events(system, "grants") == []
