"""The call commands on an in-memory unit of work and repository: what each command
stores, audits and emits, and that a refused command leaves nothing behind."""

from __future__ import annotations

from dataclasses import replace

import pytest

from grants.domain.applications import ApplicationStatus
from grants.domain.assignments import AssignmentStatus
from grants.domain.calls import CallStatus, ReviewMode
from grants.domain.errors import IllegalTransition, InvalidInput
from grants.handlers import calls as handlers
from servicekit.problems import Forbidden, NotFound

from .fakes import FakeRepository
from .scenarios import (
    OTHER_AGENCY_PM,
    PM,
    TERMS,
    assignment,
    drafted_call,
    open_call,
    submitted_application,
    unit_of_work,
)


def types(uow) -> list[str]:
    return [e.get_type().removeprefix("vn.gov.most.grants.") for e in uow.events]


def test_a_drafted_call_belongs_to_the_managers_agency_and_is_audited_unannounced():
    uow, repo = unit_of_work(PM), FakeRepository()

    call = handlers.create_call(uow, repo, PM, TERMS)

    stored = repo.calls[call.id]
    assert (stored.agency_id, stored.status, stored.budget_vnd) == (
        "MOST", CallStatus.DRAFT, 3_000_000_000)
    [record] = uow.audit
    assert (record["aggregate_type"], record["action"], record["to_status"]) == (
        "call", "draft", "draft")
    assert uow.events == []


def test_a_call_whose_maximum_award_exceeds_its_budget_is_not_drafted():
    uow, repo = unit_of_work(PM), FakeRepository()

    with pytest.raises(InvalidInput, match="max_award_vnd"):
        handlers.create_call(uow, repo, PM, replace(TERMS, max_award_vnd=4_000_000_000))

    assert repo.calls == {} and uow.rows == {}


def test_opening_a_draft_announces_it_and_audits_the_step():
    repo = FakeRepository(drafted_call())
    uow = unit_of_work(PM)

    handlers.open_call(uow, repo, PM, "call-1")

    assert repo.calls["call-1"].status == CallStatus.OPEN
    assert [(r["action"], r["from_status"], r["to_status"]) for r in uow.audit] == [
        ("open", "draft", "open")]
    assert types(uow) == ["call.opened.v1"]
    assert repo.locks == [("call", "call-1", "update")]


def test_closing_an_open_call_announces_what_is_left_of_its_budget():
    repo = FakeRepository(open_call())
    uow = unit_of_work(PM)

    handlers.close_call(uow, repo, PM, "call-1")

    assert repo.calls["call-1"].status == CallStatus.CLOSED
    assert types(uow) == ["call.closed.v1"]
    assert uow.events[0].get_data()["remaining_budget_vnd"] == 3_000_000_000


def test_another_agencys_manager_may_not_open_its_draft_nor_see_it():
    repo = FakeRepository(drafted_call())

    with pytest.raises(NotFound):
        handlers.open_call(unit_of_work(OTHER_AGENCY_PM), repo, OTHER_AGENCY_PM, "call-1")

    assert repo.calls["call-1"].status == CallStatus.DRAFT


def test_another_agencys_manager_may_not_close_a_published_call():
    repo = FakeRepository(open_call())
    uow = unit_of_work(OTHER_AGENCY_PM)

    with pytest.raises(Forbidden, match="own agency's calls"):
        handlers.close_call(uow, repo, OTHER_AGENCY_PM, "call-1")

    assert repo.calls["call-1"].status == CallStatus.OPEN and uow.rows == {}


def test_editing_a_draft_keeps_each_changed_term_in_the_audit_record():
    repo = FakeRepository(drafted_call())
    uow = unit_of_work(PM)

    handlers.edit_call(uow, repo, PM, "call-1",
                       replace(TERMS, title="AI for coffee", review_mode=ReviewMode.ASSIGNED))

    stored = repo.calls["call-1"]
    assert (stored.title, stored.review_mode) == ("AI for coffee", ReviewMode.ASSIGNED)
    [record] = uow.audit
    assert record["action"] == "edit"
    assert record["data"]["changes"] == {
        "title": {"from": "AI for rice", "to": "AI for coffee"},
        "review_mode": {"from": "open", "to": "assigned"}}
    assert uow.events == []


def test_an_open_call_is_not_edited():
    repo = FakeRepository(open_call())
    uow = unit_of_work(PM)

    with pytest.raises(IllegalTransition, match="only a draft call is edited"):
        handlers.edit_call(uow, repo, PM, "call-1", replace(TERMS, title="other"))

    assert repo.calls["call-1"].title == "AI for rice" and uow.rows == {}


def test_cancelling_a_call_releases_its_open_reviewer_assignments():
    call = open_call(review_mode=ReviewMode.ASSIGNED)
    app = submitted_application(call)
    repo = FakeRepository(call, app, assignment(app, call))
    uow = unit_of_work(PM)

    handlers.cancel_call(uow, repo, PM, "call-1", "the programme was withdrawn")

    assert repo.calls["call-1"].status == CallStatus.CANCELLED
    released = repo.assignments["as-1"]
    assert (released.status, released.release_reason) == (
        AssignmentStatus.RELEASED, "the call was cancelled")
    assert [(r["aggregate_type"], r["action"], r["reason"]) for r in uow.audit] == [
        ("call", "cancel", "the programme was withdrawn"),
        ("assignment", "release", "the call was cancelled")]
    assert types(uow) == ["call.cancelled.v1", "assignment.released.v1"]


def test_a_call_with_a_decided_application_is_not_cancelled():
    call = open_call()
    app = submitted_application(call)
    app.status = ApplicationStatus.REJECTED
    repo = FakeRepository(call, app)
    uow = unit_of_work(PM)

    with pytest.raises(IllegalTransition, match="1 application"):
        handlers.cancel_call(uow, repo, PM, "call-1", "no money")

    assert repo.calls["call-1"].status == CallStatus.OPEN and uow.rows == {}
