"""Draft edits, endorsement, withdrawal, review tiers, reviewer assignments and
declarations, as plain objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grants.domain.applications import (
    Application,
    ApplicationEndorsed,
    ApplicationStatus,
    ApplicationWithdrawn,
    MilestonePlan,
    Recommendation,
    Review,
    RiskLevel,
    TeamMember,
)
from grants.domain.assignments import (
    Assignment,
    AssignmentCreated,
    AssignmentReleased,
    AssignmentStatus,
)
from grants.domain.calls import Call, ReviewMode, ReviewTier
from grants.domain.decisions import DecisionNo
from grants.domain.errors import ConflictOfInterest, IllegalTransition, InvalidInput

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


def open_call(**kw) -> Call:
    fields = dict(id="call-1", agency_id="MOST", title="t", description="",
                  budget_vnd=10_000_000_000, max_award_vnd=5_000_000_000,
                  opens_at=NOW - timedelta(days=1), closes_at=NOW + timedelta(days=60),
                  min_reviews=2)
    fields.update(kw)
    call = Call.draft(**fields)
    call.open(NOW)
    return call


TEAM = [TeamMember("r-lead", "Lead", "PI", 7000), TeamMember("r-member", "Member", "m", 3000)]
PLAN = [MilestonePlan("M1", "d", "v", TODAY + timedelta(days=90), 10000)]


def terms(call: Call, **kw) -> dict:
    fields = dict(call=call, institution_id="HUST", title="t", abstract="a",
                  requested_vnd=1_000_000_000, risk_level=RiskLevel.HIGH, team=TEAM,
                  milestones=PLAN, today=TODAY)
    fields.update(kw)
    return fields


def draft(call: Call, **kw) -> Application:
    return Application.draft(id="app-1", applicant_id="r-lead", **terms(call, **kw))


def revise(app: Application, call: Call, **kw) -> dict:
    return app.revise(call_id=call.id, **terms(call, **kw))


def review(reviewer: str) -> Review:
    return Review(reviewer, "VAST", {"merit": 4}, Recommendation.FUND, "", NOW)


def take() -> DecisionNo:
    return DecisionNo("1/QĐ-MOST", 2026)


# --- edits -----------------------------------------------------------------------------

def test_an_edit_reports_each_changed_field_and_counts_the_version():
    call = open_call()
    app = draft(call)
    assert revise(app, call) == {} and app.version == 1
    changes = revise(app, call, title="t2", requested_vnd=900_000_000)
    assert changes == {"title": {"from": "t", "to": "t2"},
                       "requested_vnd": {"from": 1_000_000_000, "to": 900_000_000}}
    assert (app.version, app.title, app.requested_vnd) == (2, "t2", 900_000_000)


@pytest.mark.parametrize(("kw", "field"), [
    ({"call_id": "call-2"}, "call_id"),
    ({"institution_id": "VNU"}, "institution_id"),
    ({"requested_vnd": 5_000_000_001}, "requested_vnd"),
    ({"team": [TeamMember("r-lead", "Lead", "PI", 9000)]}, "contribution_bp"),
    ({"milestones": [MilestonePlan("M", "d", "v", TODAY, 10000)]}, "due_date"),
])
def test_an_edit_keeps_the_drafting_rules_and_changes_nothing_when_refused(kw, field):
    call = open_call()
    app = draft(call)
    fields = {"call_id": call.id, **terms(call), **kw}
    with pytest.raises(InvalidInput) as err:
        app.revise(**fields)
    assert err.value.field == field
    assert (app.version, app.requested_vnd, app.team) == (1, 1_000_000_000, TEAM)


def test_only_a_draft_is_edited():
    call = open_call()
    app = draft(call)
    app.submit(call, NOW)
    with pytest.raises(IllegalTransition, match="only a draft"):
        revise(app, call, title="late")


# --- endorsement ---------------------------------------------------------------------------

def test_a_call_requiring_endorsement_refuses_an_unendorsed_submission():
    call = open_call(requires_endorsement=True)
    app = draft(call)
    with pytest.raises(IllegalTransition, match="endorsement"):
        app.submit(call, NOW)
    app.endorse(endorsed_by="off-1", now=NOW)
    assert isinstance(app.events[-1], ApplicationEndorsed)
    app.submit(call, NOW)
    assert app.status == ApplicationStatus.SUBMITTED


def test_an_edit_voids_the_endorsement_and_an_endorsement_is_given_once():
    call = open_call(requires_endorsement=True)
    app = draft(call)
    app.endorse(endorsed_by="off-1", now=NOW)
    with pytest.raises(IllegalTransition, match="already endorsed"):
        app.endorse(endorsed_by="off-2", now=NOW)
    revise(app, call)  # no change: the endorsement stands
    assert app.endorsement is not None
    changes = revise(app, call, abstract="more")
    assert app.endorsement is None and changes["endorsement"]["to"] is None
    with pytest.raises(IllegalTransition, match="endorsement"):
        app.submit(call, NOW)


def test_no_one_on_the_team_endorses_and_only_a_draft_is_endorsed():
    call = open_call()
    app = draft(call)
    with pytest.raises(ConflictOfInterest):
        app.endorse(endorsed_by="r-member", now=NOW)
    app.submit(call, NOW)
    with pytest.raises(IllegalTransition, match="only a draft"):
        app.endorse(endorsed_by="off-1", now=NOW)


# --- withdrawal ----------------------------------------------------------------------------

@pytest.mark.parametrize("reviews", [0, 1])
def test_the_owner_withdraws_before_the_decision_and_reviews_stay(reviews):
    call = open_call()
    app = draft(call)
    app.submit(call, NOW)
    for i in range(reviews):
        app.add_review(review(f"rev-{i}"), declared_conflict=False)
    with pytest.raises(InvalidInput, match="reason"):
        app.withdraw(" ", NOW)
    app.withdraw("the PI left", NOW)
    assert (app.status, app.withdrawal_reason, len(app.reviews)) == (
        ApplicationStatus.WITHDRAWN, "the PI left", reviews)
    event = app.events[-1]
    assert isinstance(event, ApplicationWithdrawn) and event.reviews == reviews
    with pytest.raises(IllegalTransition):
        app.withdraw("again", NOW)
    with pytest.raises(IllegalTransition):
        app.reject(call, "x", NOW, take_number=take)


def test_a_decided_application_cannot_be_withdrawn():
    call = open_call()
    app = draft(call)
    app.submit(call, NOW)
    app.add_review(review("rev-1"), declared_conflict=False)
    app.add_review(review("rev-2"), declared_conflict=False)
    app.reject(call, "weak", NOW, take_number=take)
    with pytest.raises(IllegalTransition, match="not yet decided"):
        app.withdraw("too late", NOW)


# --- tiers ---------------------------------------------------------------------------------

def test_a_decision_needs_the_reviews_of_the_tier_for_the_amount_requested():
    call = open_call(review_tiers=[ReviewTier(500_000_000, 2), ReviewTier(2_000_000_000, 3),
                                   ReviewTier(4_000_000_000, 5)])
    small, large = draft(call, requested_vnd=500_000_000), draft(call,
                                                                 requested_vnd=4_500_000_000)
    assert (small.reviews_needed(call), large.reviews_needed(call)) == (2, 5)
    for app in (small, large):
        app.submit(call, NOW)
        app.add_review(review("rev-1"), declared_conflict=False)
        app.add_review(review("rev-2"), declared_conflict=False)
    small.approve(call, 500_000_000, NOW, grant_id="g-1", take_number=take)
    with pytest.raises(IllegalTransition, match="at least 5 reviews"):
        large.approve(call, 4_500_000_000, NOW, grant_id="g-2", take_number=take)
    for i in range(3, 6):
        large.add_review(review(f"rev-{i}"), declared_conflict=False)
    large.approve(call, 4_500_000_000, NOW, grant_id="g-2", take_number=take)


def test_a_cancelled_calls_applications_are_no_longer_assigned_reviewed_or_decided():
    call = open_call(review_mode=ReviewMode.ASSIGNED, min_reviews=1)
    app = draft(call)
    app.submit(call, NOW)
    app.add_review(review("rev-1"), declared_conflict=False)
    assert call.reviewing
    call.cancel("the programme was merged", decided=0, now=NOW)
    assert not call.reviewing
    with pytest.raises(IllegalTransition, match="cancelled: its applications are no longer"):
        call.check_reviewing()
    with pytest.raises(IllegalTransition, match="cancelled"):
        assigned(call, app, "rev-2", "NAFOSTED")
    with pytest.raises(IllegalTransition, match="cancelled"):
        app.reject(call, "too late", NOW, take_number=take)
    assert app.status == ApplicationStatus.UNDER_REVIEW and app.decision is None


def test_no_draft_is_made_or_edited_on_a_call_closed_or_cancelled():
    closed, cancelled = open_call(), open_call(id="call-2")
    earlier = draft(closed)
    closed.close()
    cancelled.cancel("the programme was merged", decided=0, now=NOW)
    for call, why in ((closed, "closed"), (cancelled, "cancelled")):
        with pytest.raises(IllegalTransition, match=why):
            draft(call)
    with pytest.raises(IllegalTransition, match="closed"):
        revise(earlier, closed, title="t2")
    assert earlier.title == "t" and earlier.status == ApplicationStatus.DRAFT


# --- assignments and declarations --------------------------------------------------------

def submitted_in_assigned_call() -> tuple[Call, Application]:
    call = open_call(review_mode=ReviewMode.ASSIGNED)
    app = draft(call)
    app.submit(call, NOW)
    return call, app


def assigned(call: Call, app: Application, reviewer: str = "rev-1", org: str = "VAST", *,
             earlier: list[Assignment] | None = None, due_on=TODAY + timedelta(days=7),
             by: str = "pm-1") -> Assignment:
    return Assignment.assign(id=f"a-{reviewer}-{len(earlier or [])}", application=app,
                             call=call, reviewer_id=reviewer, reviewer_org=org,
                             name="Dr R", due_on=due_on, assigned_by=by,
                             earlier=earlier or [], today=TODAY, now=NOW)


def test_an_assignment_starts_assigned_and_announces_itself():
    call, app = submitted_in_assigned_call()
    a = assigned(call, app)
    assert (a.status, a.agency_id, a.call_id) == (AssignmentStatus.ASSIGNED, "MOST", call.id)
    assert isinstance(a.events[-1], AssignmentCreated) and not a.cleared


@pytest.mark.parametrize(("reviewer", "org", "reason"), [
    ("rev-1", "HUST", "organisation is the applicant institution"),
    ("r-member", "VAST", "on the applicant team"),
    ("r-lead", "VAST", "on the applicant team"),
])
def test_a_known_conflict_is_refused_with_its_reason(reviewer, org, reason):
    call, app = submitted_in_assigned_call()
    with pytest.raises(ConflictOfInterest, match=reason):
        assigned(call, app, reviewer, org)


def test_assigning_keeps_to_its_rules():
    call, app = submitted_in_assigned_call()
    with pytest.raises(InvalidInput) as err:
        assigned(call, app, due_on=TODAY - timedelta(days=1))
    assert err.value.field == "due_on"
    assigned(call, app, due_on=TODAY)  # due today is fine
    with pytest.raises(ConflictOfInterest, match="programme manager is on the applicant"):
        assigned(call, app, by="r-member")
    openly = open_call()
    with pytest.raises(IllegalTransition, match="review_mode open"):
        assigned(openly, draft(openly))
    with pytest.raises(IllegalTransition, match="submitted application"):
        assigned(call, draft(call))


def test_a_reviewer_is_assigned_once_and_never_after_declaring_a_conflict():
    call, app = submitted_in_assigned_call()
    first = assigned(call, app)
    with pytest.raises(IllegalTransition, match="already assigned"):
        assigned(call, app, earlier=[first])
    first.declare(conflict_of_interest=True, statement="my former student", now=NOW)
    with pytest.raises(ConflictOfInterest, match="declared a conflict"):
        assigned(call, app, earlier=[first])
    other = assigned(call, app, "rev-2", "NAFOSTED")
    other.decline("on leave", NOW)
    assigned(call, app, "rev-2", "NAFOSTED", earlier=[first, other])  # declined: asked again


@pytest.mark.parametrize(("conflict", "status"), [(False, AssignmentStatus.ACCEPTED),
                                                  (True, AssignmentStatus.CONFLICT)])
def test_a_declaration_is_made_once_with_a_statement(conflict, status):
    call, app = submitted_in_assigned_call()
    a = assigned(call, app)
    with pytest.raises(InvalidInput) as err:
        a.declare(conflict_of_interest=conflict, statement="  ", now=NOW)
    assert err.value.field == "statement" and a.status == AssignmentStatus.ASSIGNED
    a.declare(conflict_of_interest=conflict, statement="declared", now=NOW)
    assert (a.status, a.conflict_of_interest, a.declared_at) == (status, conflict, NOW)
    assert a.cleared is not conflict
    assert isinstance(a.events[-1], AssignmentReleased) is conflict
    with pytest.raises(IllegalTransition, match="made once"):
        a.declare(conflict_of_interest=not conflict, statement="changed my mind", now=NOW)


def test_declining_comes_before_reviewing_and_needs_a_reason():
    call, app = submitted_in_assigned_call()
    waiting, cleared, done = (assigned(call, app, f"rev-{i}") for i in range(3))
    with pytest.raises(InvalidInput):
        waiting.decline(" ", NOW)
    waiting.decline("too busy", NOW)
    cleared.declare(conflict_of_interest=False, statement="none", now=NOW)
    cleared.decline("fell ill", NOW)
    assert {waiting.status, cleared.status} == {AssignmentStatus.DECLINED}
    assert waiting.events[-1].from_status == "assigned"
    assert cleared.events[-1].from_status == "accepted"
    done.declare(conflict_of_interest=False, statement="none", now=NOW)
    done.start_review()
    with pytest.raises(IllegalTransition, match="not yet reviewed"):
        done.decline("too late", NOW)
    with pytest.raises(IllegalTransition, match="there is nothing to declare"):
        waiting.declare(conflict_of_interest=False, statement="x", now=NOW)


def test_only_an_assignee_who_declared_no_conflict_starts_a_review_and_only_once():
    call, app = submitted_in_assigned_call()
    a = assigned(call, app)
    with pytest.raises(IllegalTransition, match="declare no conflict of interest"):
        a.start_review()
    a.declare(conflict_of_interest=False, statement="none", now=NOW)
    a.start_review()
    assert a.status == AssignmentStatus.REVIEWED and a.cleared
    with pytest.raises(IllegalTransition):
        a.start_review()


def test_releasing_ends_only_open_assignments_and_overdue_flags_only_them():
    call, app = submitted_in_assigned_call()
    waiting, done = assigned(call, app), assigned(call, app, "rev-2")
    done.declare(conflict_of_interest=False, statement="none", now=NOW)
    done.start_review()
    late = waiting.due_on + timedelta(days=1)
    assert waiting.overdue(late) and not waiting.overdue(waiting.due_on)
    assert not done.overdue(late)
    assert waiting.release("the application was withdrawn", NOW)
    assert not done.release("the application was withdrawn", NOW)
    assert (waiting.status, done.status) == (AssignmentStatus.RELEASED,
                                             AssignmentStatus.REVIEWED)
    assert not waiting.overdue(late)


def test_the_assignee_is_the_assigned_sub_and_org_together():
    call, app = submitted_in_assigned_call()
    a = assigned(call, app, "rev-1", "VAST")
    assert a.is_assignee("rev-1", "VAST")
    assert not a.is_assignee("rev-1", "NAFOSTED") and not a.is_assignee("rev-2", "VAST")
