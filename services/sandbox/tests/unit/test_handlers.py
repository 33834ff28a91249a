"""The command handlers on an in-memory unit of work and repository: what each command
stores, audits and emits, and that a refused command leaves nothing behind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from sandbox import handlers
from sandbox.domain.applications import (
    CRITERIA,
    ApplicationStatus,
    ApprovalTerms,
    Criterion,
    Scope,
)
from sandbox.domain.errors import ConflictOfInterest, IllegalTransition, InvalidInput
from sandbox.domain.pilots import PilotStatus
from sandbox.domain.sectors import load_profiles
from servicekit.auth import Principal
from servicekit.problems import NotFound

from .fakes import FakeRepository, FakeUnitOfWork
from .test_application_rules import PROPOSAL

PROFILES = load_profiles()
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 09:00 in Hanoi
TODAY = date(2026, 11, 23)
OWNER = Principal(sub="owner", name="Owner", org="firm", roles=frozenset({"sandbox_applicant"}))
STRANGER = Principal(sub="other", name="Other", org="firm-2",
                     roles=frozenset({"sandbox_applicant"}))


def reviewer(sub: str, org: str = "MOST") -> Principal:
    return Principal(sub=sub, name=sub, org=org, roles=frozenset({"reviewer"}))


PASS = {c: Criterion(True, "fine") for c in CRITERIA}
TERMS = ApprovalTerms(conditions=("escrow audit",), limits=Scope(("HN",), 100, 1_000_000),
                      starts_on=date(2027, 1, 1), ends_on=date(2027, 12, 31))


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(NOW)


@pytest.fixture
def repo() -> FakeRepository:
    return FakeRepository()


def submitted(uow, repo) -> str:
    app = handlers.create_application(uow, repo, PROFILES, OWNER, PROPOSAL)
    handlers.submit_application(uow, repo, PROFILES, OWNER, app.id)
    return app.id


def assessed(uow, repo) -> str:
    app_id = submitted(uow, repo)
    for sub in ("r1", "r2"):
        handlers.assess_application(uow, repo, reviewer(sub), app_id, PASS, "ok")
    return app_id


def test_a_draft_is_stored_for_its_firm_and_audited(uow, repo) -> None:
    app = handlers.create_application(uow, repo, PROFILES, OWNER, PROPOSAL)
    stored = repo.applications[app.id]
    assert (stored.owner_id, stored.organisation_id, stored.status) == (
        "owner", "firm", ApplicationStatus.DRAFT)
    assert [(r.action, r.to_status) for r in uow.audit] == [("draft", "draft")]
    assert uow.events == []


def test_a_draft_in_an_unknown_sector_stores_nothing(uow, repo) -> None:
    with pytest.raises(InvalidInput, match="known sectors"):
        handlers.create_application(uow, repo, PROFILES, OWNER,
                                    replace(PROPOSAL, sector="crypto"))
    assert repo.applications == {} and uow.audit == []


def test_submission_emits_application_submitted_with_the_due_date(uow, repo) -> None:
    app_id = submitted(uow, repo)
    assert uow.event_names() == ["application.submitted"]
    name, subject, data = uow.events[0]
    assert subject == app_id and data["decision_due_on"] == TODAY + timedelta(days=90)
    assert repo.applications[app_id].status == ApplicationStatus.SUBMITTED


def test_another_firm_cannot_act_on_an_application(uow, repo) -> None:
    app = handlers.create_application(uow, repo, PROFILES, OWNER, PROPOSAL)
    with pytest.raises(NotFound):
        handlers.submit_application(uow, repo, PROFILES, STRANGER, app.id)
    with pytest.raises(NotFound):
        handlers.withdraw_application(uow, repo, STRANGER, app.id, "mine now")
    assert repo.applications[app.id].status == ApplicationStatus.DRAFT


def test_a_reviewer_never_sees_a_draft(uow, repo) -> None:
    app = handlers.create_application(uow, repo, PROFILES, OWNER, PROPOSAL)
    with pytest.raises(NotFound):
        handlers.assess_application(uow, repo, reviewer("r1"), app.id, PASS, "")


def test_a_conflicted_assessment_stores_nothing(uow, repo) -> None:
    app_id = submitted(uow, repo)
    before = len(uow.audit)
    with pytest.raises(ConflictOfInterest):
        handlers.assess_application(uow, repo, reviewer("r9", org="firm"), app_id, PASS, "")
    assert repo.applications[app_id].assessments == [] and len(uow.audit) == before


def test_approval_numbers_the_decision_and_creates_the_pilot(uow, repo) -> None:
    app_id = assessed(uow, repo)
    app, pilot = handlers.decide_application(uow, repo, PROFILES, reviewer("r3"), app_id,
                                             terms=TERMS)
    assert pilot is not None and repo.pilots[pilot.id].status == PilotStatus.APPROVED
    assert app.decision_no == "1/QĐ-TNKS-SBV" and app.pilot_id == pilot.id
    [decision] = repo.decisions
    assert (decision.kind, decision.register, decision.pilot_id) == (
        "approval", "QĐ-TNKS-SBV", pilot.id)
    assert uow.event_names()[-1] == "application.decided"
    assert [r.action for r in uow.audit if r.aggregate_type == "pilot"] == ["approve"]


def test_a_pilot_starting_today_starts_at_approval(uow, repo) -> None:
    app_id = assessed(uow, repo)
    _, pilot = handlers.decide_application(
        uow, repo, PROFILES, reviewer("r3"), app_id,
        terms=replace(TERMS, starts_on=TODAY, ends_on=date(2027, 6, 30)))
    assert repo.pilots[pilot.id].status == PilotStatus.ACTIVE
    assert uow.event_names()[-2:] == ["application.decided", "pilot.started"]


def test_a_refused_approval_takes_no_number_and_stores_nothing(uow, repo) -> None:
    app_id = assessed(uow, repo)
    wide = replace(TERMS, limits=Scope(("HN", "Mars"), 100, 1))
    with pytest.raises(InvalidInput):
        handlers.decide_application(uow, repo, PROFILES, reviewer("r3"), app_id, terms=wide)
    with pytest.raises(ConflictOfInterest):
        handlers.decide_application(uow, repo, PROFILES, reviewer("r1"), app_id, terms=TERMS)
    assert uow.registers == {} and repo.pilots == {} and repo.decisions == []
    assert repo.applications[app_id].status == ApplicationStatus.UNDER_ASSESSMENT


def test_rejections_and_approvals_share_the_agencys_register(uow, repo) -> None:
    first = assessed(uow, repo)
    handlers.decide_application(uow, repo, PROFILES, reviewer("r3"), first,
                                reasons=["not innovative"])
    second = assessed(uow, repo)
    app, _ = handlers.decide_application(uow, repo, PROFILES, reviewer("r3"), second,
                                         terms=TERMS)
    assert [d.decision_no for d in repo.decisions] == ["1/QĐ-TNKS-SBV", "2/QĐ-TNKS-SBV"]
    assert [d.kind for d in repo.decisions] == ["rejection", "approval"]


def test_request_changes_stops_the_clock_and_emits_an_event(uow, repo) -> None:
    app_id = submitted(uow, repo)
    handlers.request_changes(uow, repo, reviewer("r1"), app_id, ["more detail"])
    stored = repo.applications[app_id]
    assert stored.status == ApplicationStatus.CHANGES_REQUESTED
    assert stored.decision_due_on is None
    assert uow.event_names()[-1] == "application.changes_requested"
    with pytest.raises(IllegalTransition):
        handlers.assess_application(uow, repo, reviewer("r1"), app_id, PASS, "")


def test_withdrawal_is_audited_with_its_reason(uow, repo) -> None:
    app_id = submitted(uow, repo)
    handlers.withdraw_application(uow, repo, OWNER, app_id, "plans changed")
    last = uow.audit[-1]
    assert (last.action, last.from_status, last.to_status, last.reason) == (
        "withdraw", "submitted", "withdrawn", "plans changed")
    assert uow.event_names()[-1] == "application.withdrawn"
