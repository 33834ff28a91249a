"""The reviewer assignment commands on an in-memory unit of work and repository: what
each command stores, audits and emits, and that a refused command leaves nothing
behind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grants.domain.assignments import AssignmentStatus
from grants.domain.calls import ReviewMode
from grants.domain.errors import ConflictOfInterest, IllegalTransition
from grants.handlers import assignments as handlers
from servicekit.problems import NotFound

from .fakes import FakeRepository
from .scenarios import (
    NOW,
    OTHER_AGENCY_PM,
    OTHER_REVIEWER,
    PM,
    REVIEWER,
    TODAY,
    assignment,
    open_call,
    person,
    submitted_application,
    unit_of_work,
)

DUE = TODAY + timedelta(days=14)


def types(uow) -> list[str]:
    return [e.get_type().removeprefix("vn.gov.most.grants.") for e in uow.events]


def assigned_call(*assignment_ids: str) -> FakeRepository:
    """call-1 reviewed by assignment, app-1 submitted to it, and REVIEWER assigned to it
    under each of ``assignment_ids``."""
    call = open_call(review_mode=ReviewMode.ASSIGNED)
    app = submitted_application(call)
    repo = FakeRepository(call, app)
    for assignment_id in assignment_ids:
        repo.put(assignment(app, call, id=assignment_id))
    return repo


def assign(repo: FakeRepository, reviewer=REVIEWER, user=PM, uow=None):
    return handlers.assign_reviewer(uow or unit_of_work(user), repo, user, "app-1",
                                    reviewer_id=reviewer.sub, reviewer_org=reviewer.org,
                                    name=reviewer.name, due_on=DUE)


def test_an_assignment_is_stored_audited_and_announced_to_the_reviewer():
    repo = assigned_call()
    uow = unit_of_work(PM)

    created = assign(repo, uow=uow)

    stored = repo.assignments[created.id]
    assert (stored.reviewer_id, stored.status, stored.due_on, stored.assigned_by) == (
        "rev-1", AssignmentStatus.ASSIGNED, DUE, "pm-1")
    [record] = uow.audit
    assert (record["action"], record["to_status"]) == ("assign", "assigned")
    assert record["data"] == {"application_id": "app-1", "reviewer_id": "rev-1",
                              "reviewer_org": "VAST", "due_on": DUE.isoformat()}
    assert types(uow) == ["assignment.created.v1"]
    assert repo.locks[:1] == [("application", "app-1", "update")]
    assert ("call", "call-1", "share") in repo.locks


def test_a_reviewer_of_the_applicant_institution_is_not_assigned_and_the_reason_is_given():
    repo = assigned_call()
    colleague = person("rev-9", "HUST", "reviewer")
    uow = unit_of_work(PM)

    with pytest.raises(ConflictOfInterest, match="organisation is the applicant institution"):
        assign(repo, colleague, uow=uow)

    assert repo.assignments == {} and uow.rows == {}


def test_a_reviewer_who_declared_a_conflict_is_not_assigned_again():
    repo = assigned_call("as-1")
    declared = repo.assignments["as-1"]
    declared.declare(conflict_of_interest=True, statement="I advised the team", now=NOW)
    repo.put(declared)

    with pytest.raises(ConflictOfInterest, match="declared a conflict"):
        assign(repo)

    assert list(repo.assignments) == ["as-1"]


def test_reviewers_are_not_assigned_in_a_call_reviewed_openly():
    call = open_call()
    repo = FakeRepository(call, submitted_application(call))

    with pytest.raises(IllegalTransition, match="reviewed openly"):
        assign(repo)

    assert repo.assignments == {}


def test_another_agencys_programme_manager_does_not_see_the_application_to_assign():
    repo = assigned_call()

    with pytest.raises(NotFound):
        assign(repo, user=OTHER_AGENCY_PM)

    assert repo.assignments == {}


def test_declaring_no_conflict_accepts_the_assignment_and_keeps_the_statement():
    repo = assigned_call("as-1")
    uow = unit_of_work(REVIEWER)

    handlers.declare(uow, repo, REVIEWER, "as-1", conflict_of_interest=False,
                     statement="no ties to HUST")

    stored = repo.assignments["as-1"]
    assert (stored.status, stored.statement) == (AssignmentStatus.ACCEPTED, "no ties to HUST")
    [record] = uow.audit
    assert (record["action"], record["from_status"], record["to_status"], record["reason"]) == (
        "declare", "assigned", "accepted", "no ties to HUST")
    assert record["data"] == {"application_id": "app-1", "conflict_of_interest": False,
                              "statement": "no ties to HUST"}
    assert uow.events == []


def test_declaring_a_conflict_releases_the_assignment_and_announces_it():
    repo = assigned_call("as-1")
    uow = unit_of_work(REVIEWER)

    handlers.declare(uow, repo, REVIEWER, "as-1", conflict_of_interest=True,
                     statement="I co-authored with the lead")

    assert repo.assignments["as-1"].status == AssignmentStatus.CONFLICT
    assert uow.audit[0]["to_status"] == "conflict"
    assert types(uow) == ["assignment.released.v1"]
    assert uow.events[0].get_data()["status"] == "conflict"


def test_the_declaration_is_made_once():
    repo = assigned_call("as-1")
    handlers.declare(unit_of_work(REVIEWER), repo, REVIEWER, "as-1",
                     conflict_of_interest=False, statement="none")
    uow = unit_of_work(REVIEWER)

    with pytest.raises(IllegalTransition, match="made once"):
        handlers.declare(uow, repo, REVIEWER, "as-1", conflict_of_interest=True,
                         statement="on second thought")

    assert repo.assignments["as-1"].status == AssignmentStatus.ACCEPTED and uow.rows == {}


def test_only_the_assignee_declares_or_declines_and_to_others_the_assignment_does_not_exist():
    repo = assigned_call("as-1")
    same_name_other_org = person("rev-1", "IMECH", "reviewer")

    for user in (OTHER_REVIEWER, same_name_other_org):
        with pytest.raises(NotFound):
            handlers.declare(unit_of_work(user), repo, user, "as-1",
                             conflict_of_interest=False, statement="none")
        with pytest.raises(NotFound):
            handlers.decline(unit_of_work(user), repo, user, "as-1", "busy")

    assert repo.assignments["as-1"].status == AssignmentStatus.ASSIGNED


def test_declining_with_a_reason_releases_the_assignment_and_announces_it():
    repo = assigned_call("as-1")
    uow = unit_of_work(REVIEWER)

    handlers.decline(uow, repo, REVIEWER, "as-1", "travelling until March")

    stored = repo.assignments["as-1"]
    assert (stored.status, stored.decline_reason) == (
        AssignmentStatus.DECLINED, "travelling until March")
    [record] = uow.audit
    assert (record["action"], record["reason"], record["data"]) == (
        "decline", "travelling until March", {"application_id": "app-1"})
    assert types(uow) == ["assignment.released.v1"]
