"""Draft edits, endorsement, withdrawal and review tiers on applications, as plain objects."""

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
from grants.domain.calls import Call, ReviewTier
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
