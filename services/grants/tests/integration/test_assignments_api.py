"""Reviewer assignments, declarations before reading, declining and the reviewer's queue,
over HTTP on PostgreSQL: each role, each refusal, what an assignee reads when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.postgres

SUMMARY_FIELDS = {"id", "view", "call_id", "call_title", "title", "institution_id", "team"}
# What only the whole application shows: the proposal itself and the money.
FULL_ONLY = {"abstract", "requested_vnd", "risk_level", "milestones", "applicant_id",
             "reviews_count", "reviews_needed"}


def submitted_in_assigned_call(desk, **terms) -> dict:
    call = desk.call(review_mode="assigned", **terms)
    return desk.submitted(call["id"])


def assign(desk, app_id: str, sub: str = "rev-1", org: str = "VAST", *, status: int = 201,
           due_on: str = "2026-12-01", headers: dict | None = None) -> dict:
    body = {"reviewer_id": sub, "reviewer_org": org, "name": f"Dr {sub}", "due_on": due_on}
    if status != 201:
        return desk.refused("POST", f"/v1/applications/{app_id}/assignments",
                            headers or desk.pm, status, json=body)
    return desk.ok("POST", f"/v1/applications/{app_id}/assignments", headers or desk.pm, 201,
                   json=body)


def declare(desk, assignment: dict, conflict: bool, statement: str = "I have no link "
            "with the team or the institution", *, headers: dict | None = None) -> dict:
    who = headers or desk.reviewer(assignment["reviewer_id"], assignment["reviewer_org"])
    return desk.ok("POST", f"/v1/assignments/{assignment['id']}/declaration", who,
                   json={"conflict_of_interest": conflict, "statement": statement})


def assignee(desk, assignment: dict) -> dict:
    return desk.reviewer(assignment["reviewer_id"], assignment["reviewer_org"])


# --- assigning -------------------------------------------------------------------------------

def test_a_programme_manager_assigns_a_reviewer_with_a_due_date(desk):
    app = submitted_in_assigned_call(desk)
    a = assign(desk, app["id"])
    assert {k: a[k] for k in ("application_id", "reviewer_id", "reviewer_org", "name",
                              "due_on", "status", "overdue")} == {
        "application_id": app["id"], "reviewer_id": "rev-1", "reviewer_org": "VAST",
        "name": "Dr rev-1", "due_on": "2026-12-01", "status": "assigned", "overdue": False}
    assert a["conflict_of_interest"] is None and a["assigned_by"] == "pm-1"
    event = desk.events(a["id"])
    assert [e["type"] for e in event] == ["assignment.created"]
    assert event[0]["data"]["due_on"] == "2026-12-01"
    seen = desk.ok("GET", f"/v1/applications/{app['id']}", desk.pm)
    assert (seen["reviewers_assigned"], seen["needs_reviewers"]) == (1, True)
    assign(desk, app["id"], "rev-2", "NAFOSTED")
    seen = desk.ok("GET", f"/v1/applications/{app['id']}", desk.pm)
    assert (seen["reviewers_assigned"], seen["needs_reviewers"]) == (2, False)


@pytest.mark.parametrize(("sub", "org", "reason"), [
    ("rev-9", "HUST", "the reviewer's organisation is the applicant institution"),
    ("r-member", "VAST", "the reviewer is on the applicant team"),
])
def test_a_known_conflict_is_refused_with_its_reason(desk, sub, org, reason):
    app = submitted_in_assigned_call(desk)
    problem = assign(desk, app["id"], sub, org, status=409)
    assert problem["type"].endswith("conflict-of-interest") and reason in problem["detail"]


def test_assigning_is_refused_outside_its_rules_and_writes_nothing(desk):
    app = submitted_in_assigned_call(desk)
    assert "before today" in assign(desk, app["id"], due_on="2026-11-22", status=422)["detail"]
    assign(desk, app["id"], headers=desk.pm_other, status=404)
    assign(desk, app["id"], headers=desk.lead, status=403)
    assign(desk, app["id"], headers=desk.reviewer("rev-1"), status=403)
    assign(desk, app["id"])
    assert "already assigned" in assign(desk, app["id"], status=409)["detail"]
    open_call = desk.call()
    openly = desk.submitted(open_call["id"])
    assert "review_mode open" in assign(desk, openly["id"], status=409)["detail"]
    draft = desk.draft(desk.call(review_mode="assigned")["id"])
    assert "submitted application" in assign(desk, draft["id"], status=409)["detail"]
    on_team = desk.tokens.headers("r-lead", "program_manager", org="MOST")
    assert "conflict of interest" in assign(desk, app["id"], "rev-7", headers=on_team,
                                            status=409)["detail"]


def test_a_reviewer_who_declared_a_conflict_is_not_assigned_again(desk):
    app = submitted_in_assigned_call(desk)
    a = assign(desk, app["id"])
    declared = declare(desk, a, True, "I co-authored with the PI last year")
    assert (declared["status"], declared["conflict_of_interest"]) == ("conflict", True)
    assert [e["type"] for e in desk.events(a["id"])] == ["assignment.created",
                                                        "assignment.released"]
    seen = desk.ok("GET", f"/v1/applications/{app['id']}", desk.pm)
    assert (seen["reviewers_assigned"], seen["needs_reviewers"]) == (0, True)
    problem = assign(desk, app["id"], status=409)
    assert "declared a conflict" in problem["detail"]
    assert problem["type"].endswith("conflict-of-interest")


# --- what an assignee reads, before and after the declaration ------------------------------

def test_an_assignee_reads_only_the_summary_until_declaring_no_conflict(desk):
    app = submitted_in_assigned_call(desk)
    a = assign(desk, app["id"])
    me = assignee(desk, a)
    path = f"/v1/applications/{app['id']}"
    before = desk.ok("GET", path, me)
    assert set(before) == SUMMARY_FIELDS
    assert before["view"] == "summary" and before["call_title"] == "Call"
    assert before["team"] == [{"name": "Lead", "role": "PI"},
                              {"name": "Member", "role": "member"}]
    assert desk.c.get(f"{path}/reviews", headers=me).status_code == 403
    assert desk.c.get(f"{path}/history", headers=me).status_code == 403
    assert app["id"] not in [i["id"] for i in desk.ok("GET", "/v1/applications", me)["items"]]

    declare(desk, a, False)
    after = desk.ok("GET", path, me)
    assert set(after) >= FULL_ONLY and "view" not in after
    assert after["abstract"] == "ML" and len(after["milestones"]) == 2
    assert app["id"] in [i["id"] for i in desk.ok("GET", "/v1/applications", me)["items"]]
    assert desk.ok("GET", f"{path}/reviews", me)["items"] == []


def test_in_an_assigned_call_other_reviewers_get_404_as_for_a_draft(desk):
    app = submitted_in_assigned_call(desk)
    a = assign(desk, app["id"])
    stranger = desk.reviewer("rev-2", "NAFOSTED")
    same_sub_other_org = desk.reviewer("rev-1", "NAFOSTED")
    for who in (stranger, same_sub_other_org):
        assert desk.c.get(f"/v1/applications/{app['id']}", headers=who).status_code == 404
        desk.refused("POST", f"/v1/applications/{app['id']}/reviews", who, 404, json={
            "scores": {"merit": 4}, "recommendation": "fund", "comment": ""})
        desk.refused("POST", f"/v1/assignments/{a['id']}/declaration", who, 404,
                     json={"conflict_of_interest": False, "statement": "none"})
    listed = desk.ok("GET", "/v1/applications", stranger)["items"]
    assert app["id"] not in [i["id"] for i in listed]


# --- declarations --------------------------------------------------------------------------

def test_every_declaration_is_audited_and_made_once(desk, clock):
    app = submitted_in_assigned_call(desk)
    a = assign(desk, app["id"])
    desk.refused("POST", f"/v1/assignments/{a['id']}/declaration", assignee(desk, a), 422,
                 json={"conflict_of_interest": False, "statement": ""})
    desk.refused("POST", f"/v1/assignments/{a['id']}/declaration", assignee(desk, a), 422,
                 json={"conflict_of_interest": "no", "statement": "x"})
    desk.refused("POST", f"/v1/assignments/{a['id']}/declaration", desk.pm, 403,
                 json={"conflict_of_interest": False, "statement": "x"})
    declared = declare(desk, a, False, "No links with HUST or the team")
    assert (declared["status"], declared["conflict_of_interest"]) == ("accepted", False)
    assert declared["declared_at"].startswith("2026-11-23T09:00")
    again = desk.refused("POST", f"/v1/assignments/{a['id']}/declaration", assignee(desk, a),
                         409, json={"conflict_of_interest": True, "statement": "changed"})
    assert "made once" in again["detail"]
    for reader in (desk.auditor, desk.pm, assignee(desk, a)):
        steps = desk.history(f"/v1/assignments/{a['id']}", reader)
        assert [s["action"] for s in steps] == ["assign", "declare"]
        step = steps[-1]
        assert (step["actor"], step["role"], step["org"]) == ("rev-1", "reviewer", "VAST")
        assert (step["from_status"], step["to_status"]) == ("assigned", "accepted")
        assert step["time"].startswith("2026-11-23T09:00")
        assert step["data"]["conflict_of_interest"] is False
        assert step["data"]["statement"] == "No links with HUST or the team"
    for outsider in (desk.pm_other, desk.reviewer("rev-2", "NAFOSTED"), desk.lead):
        assert desk.c.get(f"/v1/assignments/{a['id']}/history",
                          headers=outsider).status_code in (403, 404)


# --- reviewing and declining ---------------------------------------------------------------

def test_only_an_assignee_who_declared_no_conflict_reviews(desk):
    app = submitted_in_assigned_call(desk)
    a = assign(desk, app["id"])
    problem = desk.refused("POST", f"/v1/applications/{app['id']}/reviews", assignee(desk, a),
                           409, json={"scores": {"merit": 4}, "recommendation": "fund",
                                      "comment": ""})
    assert "declare no conflict of interest before reviewing" in problem["detail"]
    declare(desk, a, False)
    desk.review(app["id"], assignee(desk, a))
    reviewed = desk.ok("GET", f"/v1/assignments/{a['id']}", assignee(desk, a))
    assert reviewed["status"] == "reviewed"
    desk.refused("POST", f"/v1/assignments/{a['id']}/decline", assignee(desk, a), 409,
                 json={"reason": "too late"})
    desk.review(app["id"], assignee(desk, a), status=409)


def test_declining_before_reviewing_needs_a_reason_and_frees_the_place(desk):
    app = submitted_in_assigned_call(desk)
    a = assign(desk, app["id"])
    declare(desk, a, False)
    desk.refused("POST", f"/v1/assignments/{a['id']}/decline", assignee(desk, a), 422,
                 json={"reason": ""})
    desk.refused("POST", f"/v1/assignments/{a['id']}/decline",
                 desk.reviewer("rev-2", "NAFOSTED"), 404, json={"reason": "not mine"})
    declined = desk.ok("POST", f"/v1/assignments/{a['id']}/decline", assignee(desk, a),
                       json={"reason": "on leave until March"})
    assert (declined["status"], declined["decline_reason"]) == ("declined",
                                                                "on leave until March")
    assert desk.events(a["id"])[-1]["data"]["status"] == "declined"
    assert desk.c.get(f"/v1/applications/{app['id']}",
                      headers=assignee(desk, a)).status_code == 404
    assert desk.ok("GET", f"/v1/applications/{app['id']}", desk.pm)["reviewers_assigned"] == 0
    assign(desk, app["id"])  # a reviewer who declined may be asked again


def test_a_decision_needs_reviews_from_assignees(desk):
    app = submitted_in_assigned_call(desk, min_reviews=2)
    first, second = assign(desk, app["id"]), assign(desk, app["id"], "rev-2", "NAFOSTED")
    for a in (first, second):
        declare(desk, a, False)
        desk.review(app["id"], assignee(desk, a))
    decided = desk.ok("POST", f"/v1/applications/{app['id']}/decision", desk.pm,
                      json={"decision": "approve", "awarded_vnd": 1_000_000_000})
    assert decided["status"] == "approved" and decided["reviews_count"] == 2


# --- releases ------------------------------------------------------------------------------

def test_withdrawing_an_application_releases_its_open_assignments(desk):
    app = submitted_in_assigned_call(desk)
    waiting, accepted = assign(desk, app["id"]), assign(desk, app["id"], "rev-2", "NAFOSTED")
    declare(desk, accepted, False)
    desk.ok("POST", f"/v1/applications/{app['id']}/withdraw", desk.lead,
            json={"reason": "the PI moved abroad"})
    for a in (waiting, accepted):
        seen = desk.ok("GET", f"/v1/assignments/{a['id']}", desk.pm)
        assert (seen["status"], seen["release_reason"]) == ("released",
                                                            "the application was withdrawn")
    assert desk.history(f"/v1/assignments/{waiting['id']}")[-1]["action"] == "release"


def test_a_decision_and_a_cancelled_call_release_open_assignments(desk):
    app = submitted_in_assigned_call(desk, min_reviews=1)
    reviewer, late = assign(desk, app["id"]), assign(desk, app["id"], "rev-2", "NAFOSTED")
    declare(desk, reviewer, False)
    desk.review(app["id"], assignee(desk, reviewer))
    desk.ok("POST", f"/v1/applications/{app['id']}/decision", desk.pm,
            json={"decision": "reject", "reason": "weak"})
    assert desk.ok("GET", f"/v1/assignments/{late['id']}", desk.pm)["status"] == "released"
    assert desk.ok("GET", f"/v1/assignments/{reviewer['id']}", desk.pm)["status"] == "reviewed"

    call = desk.call(review_mode="assigned")
    other = desk.submitted(call["id"])
    pending = assign(desk, other["id"])
    desk.ok("POST", f"/v1/calls/{call['id']}/cancel", desk.pm, json={"reason": "merged"})
    seen = desk.ok("GET", f"/v1/assignments/{pending['id']}", desk.pm)
    assert (seen["status"], seen["release_reason"]) == ("released", "the call was cancelled")
    # No reviewer is assigned again, and the application lacks none.
    problem = desk.refused("POST", f"/v1/applications/{other['id']}/assignments", desk.pm,
                           409, json={"reviewer_id": "rev-2", "reviewer_org": "NAFOSTED",
                                      "name": "Dr R", "due_on": "2099-01-01"})
    assert "cancelled" in problem["detail"]
    lacking = desk.ok("GET", "/v1/applications?needs_reviewers=true", desk.pm)["items"]
    assert other["id"] not in [a["id"] for a in lacking]
    assert desk.ok("GET", f"/v1/applications/{other['id']}", desk.pm)["needs_reviewers"] is False


# --- the queue -----------------------------------------------------------------------------

def test_the_reviewers_queue_shows_what_is_due_and_what_is_overdue(desk, clock):
    soon = submitted_in_assigned_call(desk)
    later = submitted_in_assigned_call(desk)
    me = desk.reviewer("rev-q", "VAST")
    a_soon = assign(desk, soon["id"], "rev-q", due_on="2026-12-01")
    a_later = assign(desk, later["id"], "rev-q", due_on="2027-01-15")
    someone_else = assign(desk, later["id"], "rev-2", "NAFOSTED")

    queue = desk.ok("GET", "/v1/assignments", me)["items"]
    assert {a["id"]: a["overdue"] for a in queue} == {a_soon["id"]: False,
                                                     a_later["id"]: False}

    clock.set(datetime(2026, 12, 1, 16, 59, tzinfo=UTC))  # 23:59 on 1 December in Hanoi
    assert desk.ok("GET", "/v1/assignments", me, params={"overdue": "true"})["items"] == []
    clock.set(datetime(2026, 12, 1, 17, 0, tzinfo=UTC))  # 2 December in Hanoi
    overdue = desk.ok("GET", "/v1/assignments", me, params={"overdue": "true"})["items"]
    assert [a["id"] for a in overdue] == [a_soon["id"]] and overdue[0]["overdue"]
    due = desk.ok("GET", "/v1/assignments", me, params={"overdue": "false"})["items"]
    assert [a["id"] for a in due] == [a_later["id"]]
    assert {a["id"] for a in desk.ok("GET", "/v1/assignments", me,
                                     params={"status": "assigned"})["items"]} == {
        a_soon["id"], a_later["id"]}

    # An overdue assignment is only flagged: the assignee still declares and reviews.
    declare(desk, a_soon, False)
    desk.review(soon["id"], me)
    assert not desk.ok("GET", f"/v1/assignments/{a_soon['id']}", me)["overdue"]

    agency = {a["id"] for a in desk.ok("GET", "/v1/assignments", desk.pm,
                                       params={"limit": 200})["items"]}
    assert {a_soon["id"], a_later["id"], someone_else["id"]} <= agency
    assert desk.ok("GET", "/v1/assignments", desk.pm_other)["items"] == []
    assert someone_else["id"] in {a["id"] for a in desk.ok(
        "GET", "/v1/assignments", desk.auditor, params={"limit": 200})["items"]}
    for refused in (desk.lead, desk.office, desk.finance, desk.admin):
        assert desk.c.get("/v1/assignments", headers=refused).status_code == 403
    assert desk.c.get(f"/v1/assignments/{someone_else['id']}", headers=me).status_code == 404


def test_the_programme_manager_lists_the_applications_that_still_lack_reviewers(desk):
    call = desk.call(review_mode="assigned", min_reviews=2)
    lacking, covered = desk.submitted(call["id"]), desk.submitted(call["id"])
    assign(desk, lacking["id"])
    assign(desk, covered["id"])
    assign(desk, covered["id"], "rev-2", "NAFOSTED")
    listed = desk.ok("GET", "/v1/applications", desk.pm,
                     params={"needs_reviewers": "true", "call_id": call["id"]})["items"]
    assert [a["id"] for a in listed] == [lacking["id"]]
    assert (listed[0]["reviewers_assigned"], listed[0]["reviews_needed"]) == (1, 2)
    full = desk.ok("GET", "/v1/applications", desk.pm,
                   params={"needs_reviewers": "false", "call_id": call["id"]})["items"]
    assert [a["id"] for a in full] == [covered["id"]]
