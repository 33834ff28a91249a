"""The application commands on an in-memory unit of work and repository: what each
command stores, audits and emits, what it locks, and that a refused command leaves
nothing behind."""

from __future__ import annotations

from dataclasses import replace

import pytest

from grants.domain.applications import (
    ApplicationStatus,
    ConflictOfInterest,
    Recommendation,
    Review,
    RiskLevel,
)
from grants.domain.assignments import AssignmentStatus
from grants.domain.calls import CallStatus, ReviewMode
from grants.domain.errors import IllegalTransition
from grants.domain.grants import GrantStatus
from grants.handlers import applications as handlers
from grants.handlers.applications import ApplicationTerms
from servicekit.problems import Forbidden, NotFound

from .fakes import FakeRepository
from .scenarios import (
    HOST,
    LEAD,
    MEMBER,
    NOW,
    OTHER_REVIEWER,
    PLAN,
    PM,
    REVIEWER,
    TEAM,
    assignment,
    drafted_application,
    drafted_call,
    open_call,
    person,
    submitted_application,
    unit_of_work,
)

TERMS = ApplicationTerms(call_id="call-1", institution_id="HUST", title="Rice AI",
                         abstract="a", requested_vnd=800_000_000, risk_level=RiskLevel.HIGH,
                         team=tuple(TEAM), milestones=tuple(PLAN))


def types(uow) -> list[str]:
    return [e.get_type().removeprefix("vn.gov.most.grants.") for e in uow.events]


def steps(uow) -> list[tuple[str, str, str | None, str | None]]:
    return [(r["aggregate_type"], r["action"], r["from_status"], r["to_status"])
            for r in uow.audit]


def reviewed(app, reviewer=REVIEWER):
    app.add_review(Review(reviewer.sub, reviewer.org, {"novelty": 4}, Recommendation.FUND,
                          "sound", NOW), declared_conflict=False)
    return app


# --- drafting, editing, endorsing ---------------------------------------------------------

def test_a_draft_is_the_researchers_own_and_is_audited_unannounced():
    repo = FakeRepository(open_call())
    uow = unit_of_work(LEAD)

    app, call = handlers.create_application(uow, repo, LEAD, TERMS)

    stored = repo.applications[app.id]
    assert (stored.applicant_id, stored.agency_id, stored.status) == (
        "r-0", "MOST", ApplicationStatus.DRAFT)
    assert call.id == "call-1"
    assert steps(uow) == [("application", "draft", None, "draft")]
    assert uow.events == []


def test_no_application_is_drafted_to_an_unpublished_call():
    repo = FakeRepository(drafted_call())
    uow = unit_of_work(LEAD)

    with pytest.raises(NotFound, match="call call-1"):
        handlers.create_application(uow, repo, LEAD, TERMS)

    assert repo.applications == {} and uow.rows == {}


def test_an_edit_counts_a_version_and_keeps_its_changes_in_the_audit_record():
    call = open_call()
    repo = FakeRepository(call, drafted_application(call))
    uow = unit_of_work(LEAD)

    handlers.edit_application(uow, repo, LEAD, "app-1", replace(TERMS, title="Rice AI 2"))

    assert (repo.applications["app-1"].title, repo.applications["app-1"].version) == (
        "Rice AI 2", 2)
    [record] = uow.audit
    assert record["action"] == "edit" and record["data"] == {
        "version": 2, "changes": {"title": {"from": "Rice AI", "to": "Rice AI 2"}}}


def test_only_the_researcher_who_drafted_it_edits_it():
    call = open_call()
    repo = FakeRepository(call, drafted_application(call))
    uow = unit_of_work(MEMBER)

    with pytest.raises(Forbidden, match="drafted the application edits"):
        handlers.edit_application(uow, repo, MEMBER, "app-1", replace(TERMS, title="x"))

    assert repo.applications["app-1"].title == "Rice AI" and uow.rows == {}


def test_the_host_institution_endorses_a_draft_and_it_is_announced():
    call = open_call(requires_endorsement=True)
    repo = FakeRepository(call, drafted_application(call))
    uow = unit_of_work(HOST)

    handlers.endorse_application(uow, repo, HOST, "app-1")

    assert repo.applications["app-1"].endorsement.endorsed_by == "inst-1"
    assert steps(uow) == [("application", "endorse", "draft", "draft")]
    assert types(uow) == ["application.endorsed.v1"]


def test_another_institution_does_not_see_the_draft_it_would_endorse():
    call = open_call()
    repo = FakeRepository(call, drafted_application(call))
    other = person("inst-2", "VNU", "institution")

    with pytest.raises(NotFound):
        handlers.endorse_application(unit_of_work(other), repo, other, "app-1")

    assert repo.applications["app-1"].endorsement is None


# --- submitting and withdrawing -----------------------------------------------------------

def test_a_submission_reads_the_call_for_share_and_announces_the_application():
    call = open_call()
    repo = FakeRepository(call, drafted_application(call))
    uow = unit_of_work(LEAD)

    handlers.submit_application(uow, repo, LEAD, "app-1")

    assert repo.applications["app-1"].status == ApplicationStatus.SUBMITTED
    assert ("call", "call-1", "share") in repo.locks
    assert ("application", "app-1", "update") in repo.locks
    assert steps(uow) == [("application", "submit", "draft", "submitted")]
    assert types(uow) == ["application.submitted.v1"]


def test_nothing_is_submitted_to_a_closed_call():
    call = open_call()
    app = drafted_application(call)
    call.close()
    repo = FakeRepository(call, app)
    uow = unit_of_work(LEAD)

    with pytest.raises(IllegalTransition, match="not open for submissions"):
        handlers.submit_application(uow, repo, LEAD, "app-1")

    assert repo.applications["app-1"].status == ApplicationStatus.DRAFT and uow.rows == {}


def test_a_withdrawal_releases_the_applications_open_assignments():
    call = open_call(review_mode=ReviewMode.ASSIGNED)
    app = submitted_application(call)
    repo = FakeRepository(call, app, assignment(app, call))
    uow = unit_of_work(LEAD)

    handlers.withdraw_application(uow, repo, LEAD, "app-1", "we joined another consortium")

    assert repo.applications["app-1"].withdrawal_reason == "we joined another consortium"
    assert repo.assignments["as-1"].status == AssignmentStatus.RELEASED
    assert steps(uow) == [("application", "withdraw", "submitted", "withdrawn"),
                          ("assignment", "release", "assigned", "released")]
    assert types(uow) == ["application.withdrawn.v1", "assignment.released.v1"]


# --- reviews ------------------------------------------------------------------------------

def test_a_review_is_stored_and_audited_with_its_recommendation_unannounced():
    call = open_call()
    repo = FakeRepository(call, submitted_application(call))
    uow = unit_of_work(REVIEWER)

    review_id = handlers.create_review(uow, repo, REVIEWER, "app-1", scores={"novelty": 5},
                                       recommendation=Recommendation.FUND, comment="fund it",
                                       conflict_of_interest=False)

    [(app_id, stored_id, review)] = repo.reviews
    assert (app_id, stored_id, review.reviewer_id) == ("app-1", review_id, "rev-1")
    assert repo.applications["app-1"].status == ApplicationStatus.UNDER_REVIEW
    assert ("call", "call-1", "share") in repo.locks
    [record] = uow.audit
    assert (record["action"], record["data"]) == (
        "review", {"review_id": review_id, "recommendation": "fund"})
    assert uow.events == []


def test_a_reviewer_of_the_applicant_institution_is_refused_as_a_conflict():
    call = open_call()
    repo = FakeRepository(call, submitted_application(call))
    colleague = person("rev-9", "HUST", "reviewer")
    uow = unit_of_work(colleague)

    with pytest.raises(ConflictOfInterest):
        handlers.create_review(uow, repo, colleague, "app-1", scores={"novelty": 5},
                               recommendation=Recommendation.FUND, comment="",
                               conflict_of_interest=False)

    assert repo.reviews == [] and uow.rows == {}


def test_in_a_call_reviewed_by_assignment_an_unassigned_reviewer_finds_no_application():
    call = open_call(review_mode=ReviewMode.ASSIGNED)
    app = submitted_application(call)
    repo = FakeRepository(call, app, assignment(app, call))

    with pytest.raises(NotFound):
        handlers.create_review(unit_of_work(OTHER_REVIEWER), repo, OTHER_REVIEWER, "app-1",
                               scores={"novelty": 5}, recommendation=Recommendation.FUND,
                               comment="", conflict_of_interest=False)

    assert repo.reviews == []


def test_the_assignee_reviews_only_after_declaring_no_conflict_and_is_then_reviewed():
    call = open_call(review_mode=ReviewMode.ASSIGNED)
    app = submitted_application(call)
    undeclared = assignment(app, call)
    repo = FakeRepository(call, app, undeclared)

    def review(uow):
        return handlers.create_review(uow, repo, REVIEWER, "app-1", scores={"novelty": 4},
                                      recommendation=Recommendation.FUND, comment="",
                                      conflict_of_interest=False)

    with pytest.raises(IllegalTransition, match="declare no conflict"):
        review(unit_of_work(REVIEWER))
    declared = repo.assignments["as-1"]
    declared.declare(conflict_of_interest=False, statement="none", now=NOW)
    repo.put(declared)
    uow = unit_of_work(REVIEWER)

    review_id = review(uow)

    assert repo.assignments["as-1"].status == AssignmentStatus.REVIEWED
    assert steps(uow) == [("application", "review", "submitted", "under_review"),
                          ("assignment", "review", "accepted", "reviewed")]
    assert uow.audit[1]["data"] == {"application_id": "app-1", "review_id": review_id}


# --- decisions ----------------------------------------------------------------------------

def test_an_approval_numbers_the_decision_creates_the_grant_and_commits_the_budget():
    call = open_call()
    repo = FakeRepository(call, reviewed(submitted_application(call)))
    uow = unit_of_work(PM)

    app, _ = handlers.decide_application(uow, repo, PM, "app-1", awarded_vnd=700_000_000,
                                         reason=None)

    stored = repo.applications["app-1"]
    assert (stored.status, stored.awarded_vnd, stored.decision.decision_no) == (
        ApplicationStatus.APPROVED, 700_000_000, "1/QĐ-MOST")
    grant = repo.grants[stored.grant_id]
    assert (grant.status, grant.awarded_vnd, len(grant.milestones)) == (
        GrantStatus.ACTIVE, 700_000_000, 2)
    assert repo.calls["call-1"].remaining_budget_vnd == 2_300_000_000
    assert ("call", "call-1", "update") in repo.locks
    assert [(r["aggregate_type"], r["action"]) for r in uow.audit] == [
        ("application", "decide"), ("grant", "award"), ("call", "commit_budget")]
    assert uow.audit[2]["data"]["remaining_budget_vnd"] == 2_300_000_000
    assert types(uow) == ["application.decided.v1", "grant.awarded.v1"]


def test_a_rejection_is_numbered_announced_and_releases_the_open_assignments():
    call = open_call(review_mode=ReviewMode.ASSIGNED)
    app = reviewed(submitted_application(call), OTHER_REVIEWER)
    repo = FakeRepository(call, app, assignment(app, call))
    uow = unit_of_work(PM)

    handlers.decide_application(uow, repo, PM, "app-1", awarded_vnd=None,
                                reason="outside the programme's scope")

    stored = repo.applications["app-1"]
    assert (stored.status, stored.decision_reason) == (
        ApplicationStatus.REJECTED, "outside the programme's scope")
    assert repo.grants == {} and repo.calls["call-1"].awarded_vnd == 0
    assert steps(uow) == [("assignment", "release", "assigned", "released"),
                          ("application", "decide", "under_review", "rejected")]
    assert uow.audit[1]["reason"] == "outside the programme's scope"
    assert types(uow) == ["assignment.released.v1", "application.decided.v1"]


def test_a_programme_manager_on_the_team_decides_nothing_and_takes_no_number():
    call = open_call()
    repo = FakeRepository(call, reviewed(submitted_application(call)))
    on_team = person("r-1", "MOST", "program_manager")
    uow = unit_of_work(on_team)

    with pytest.raises(ConflictOfInterest):
        handlers.decide_application(uow, repo, on_team, "app-1", awarded_vnd=700_000_000,
                                    reason=None)

    assert repo.applications["app-1"].status == ApplicationStatus.UNDER_REVIEW
    assert uow.rows == {} and uow.registers == {}


def test_an_award_beyond_the_calls_remaining_budget_is_refused_before_its_number():
    call = open_call()
    call.awarded_vnd = 2_500_000_000
    repo = FakeRepository(call, reviewed(submitted_application(call)))
    uow = unit_of_work(PM)

    with pytest.raises(IllegalTransition, match="remaining budget"):
        handlers.decide_application(uow, repo, PM, "app-1", awarded_vnd=700_000_000,
                                    reason=None)

    assert repo.calls["call-1"].awarded_vnd == 2_500_000_000 and repo.grants == {}
    assert uow.registers == {} and uow.rows == {}


def test_a_cancelled_calls_applications_are_not_decided():
    call = open_call()
    app = reviewed(submitted_application(call))
    call.cancel("no money", decided=0, now=NOW)
    repo = FakeRepository(call, app)
    uow = unit_of_work(PM)

    with pytest.raises(IllegalTransition, match="cancelled"):
        handlers.decide_application(uow, repo, PM, "app-1", awarded_vnd=None,
                                    reason="moot")

    assert repo.calls["call-1"].status == CallStatus.CANCELLED
    assert repo.applications["app-1"].status == ApplicationStatus.UNDER_REVIEW
