"""The supervision commands and the scheduler's actions on an in-memory unit of work and
repository: what each stores, audits, numbers and emits, and that a refused command
leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sandbox import handlers
from sandbox.domain.applications import Scope
from sandbox.domain.errors import ConflictOfInterest, IllegalTransition, InvalidInput
from sandbox.domain.pilots import PilotStatus
from sandbox.domain.supervision import ExitOutcome, Figures, Severity
from servicekit.auth import Principal
from servicekit.problems import NotFound

from .fakes import FakeRepository, FakeUnitOfWork
from .test_handlers import NOW, OWNER, PROFILES, STRANGER, TERMS, assessed, reviewer

START = TERMS.starts_on  # 2027-01-01; the pilot ends 2027-12-31, reports quarterly
SYSTEM = Principal(sub="system:scheduler", name="scheduler", org="",
                   roles=frozenset({"system"}))


def hanoi_morning(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)  # 09:00 in Hanoi


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(NOW)


@pytest.fixture
def repo() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def pilot_id(uow, repo) -> str:
    """An approved pilot, started on its start date by the scheduler's action."""
    app_id = assessed(uow, repo)
    _, pilot = handlers.decide_application(uow, repo, PROFILES, reviewer("r3"), app_id,
                                           terms=TERMS)
    uow.now = hanoi_morning(START)
    assert handlers.start_pilot(uow, repo, pilot.id)
    uow.events.clear()
    uow.audit.clear()
    return pilot.id


def snapshot(uow, repo, pilot_id):
    return (repo.pilots[pilot_id], len(uow.audit), len(uow.events), dict(uow.registers),
            len(repo.decisions), len(repo.reports), len(repo.incidents))


def figures(**change) -> Figures:
    values = {"period": "2027-Q1", "participants": 10, "transactions_vnd": 1_000_000,
              "complaints": 0, "largest_transaction_vnd": 100_000, "regions": ("HN",)}
    values.update(change)
    return Figures(**values)


# --- the firm's commands -------------------------------------------------------------------

def test_a_report_over_a_limit_is_stored_audited_and_emits_a_breach(uow, repo,
                                                                    pilot_id) -> None:
    uow.now = hanoi_morning(date(2027, 4, 3))
    report = handlers.file_report(uow, repo, OWNER, pilot_id,
                                     figures(participants=150, regions=("HN", "DN")))
    assert [r.id for r in repo.reports] == [report.id]
    assert [b.limit for b in report.breaches] == ["max_participants", "regions"]
    assert uow.event_names() == ["pilot.report_filed", "pilot.breach_detected"]
    assert {subject for _, subject, _ in uow.events} == {pilot_id}
    [entry] = uow.audit
    assert (entry.action, entry.from_status, entry.to_status) == ("report", "active", "active")
    assert entry.data["period"] == "2027-Q1" and len(entry.data["breaches"]) == 2
    assert repo.pilots[pilot_id].breaches_count == 2


def test_another_firm_cannot_report_on_a_pilot(uow, repo, pilot_id) -> None:
    uow.now = hanoi_morning(date(2027, 4, 3))
    before = snapshot(uow, repo, pilot_id)
    with pytest.raises(NotFound):
        handlers.file_report(uow, repo, STRANGER, pilot_id, figures())
    with pytest.raises(NotFound):
        handlers.report_incident(uow, repo, STRANGER, pilot_id, severity=Severity.LOW,
                                    description="x", occurred_at=None)
    assert snapshot(uow, repo, pilot_id) == before


def test_a_critical_incident_by_a_reviewer_suspends_the_pilot_in_the_same_command(
        uow, repo, pilot_id) -> None:
    uow.now = hanoi_morning(date(2027, 2, 1))
    incident = handlers.report_incident(uow, repo, reviewer("r1"), pilot_id,
                                           severity=Severity.CRITICAL,
                                           description="customer funds missing",
                                           occurred_at=uow.now - timedelta(hours=1))
    assert incident.suspended_pilot and incident.reporter_role == "reviewer"
    assert repo.pilots[pilot_id].status == PilotStatus.SUSPENDED
    assert uow.event_names() == ["incident.reported", "pilot.suspended"]
    [entry] = uow.audit
    assert (entry.action, entry.from_status, entry.to_status) == ("incident", "active",
                                                                  "suspended")
    assert incident.id in entry.reason
    assert repo.decisions[-1].kind == "approval"  # a suspension by incident is no decision


def test_a_reviewers_suspension_is_a_numbered_decision_of_the_agencys_register(
        uow, repo, pilot_id) -> None:
    pilot = handlers.suspend_pilot(uow, repo, reviewer("r1"), pilot_id, "escrow gap")
    decision = repo.decisions[-1]
    # The approval was 1/QĐ-TNKS-SBV of 2026; the register starts again each year.
    assert (decision.kind, decision.decision_no, decision.decision_year, decision.register,
            decision.pilot_id) == ("suspension", "1/QĐ-TNKS-SBV", 2027, "QĐ-TNKS-SBV",
                                   pilot_id)
    assert pilot.status == PilotStatus.SUSPENDED
    assert uow.events[-1][2]["decision_no"] == "1/QĐ-TNKS-SBV"
    assert (uow.audit[-1].action, uow.audit[-1].reason) == ("suspend", "escrow gap")


def test_a_reviewer_of_the_firms_own_organisation_decides_nothing(uow, repo,
                                                                  pilot_id) -> None:
    before = snapshot(uow, repo, pilot_id)
    insider = reviewer("r9", org="firm")
    for act in (lambda: handlers.suspend_pilot(uow, repo, insider, pilot_id, "x"),
                lambda: handlers.terminate_pilot(uow, repo, insider, pilot_id, "x"),
                lambda: handlers.extend_pilot(uow, repo, PROFILES, insider, pilot_id,
                                                 date(2028, 6, 30), "x")):
        with pytest.raises(ConflictOfInterest):
            act()
    assert snapshot(uow, repo, pilot_id) == before


def test_a_reviewer_of_the_firms_own_organisation_cannot_suspend_it_by_an_incident(
        uow, repo, pilot_id) -> None:
    before = snapshot(uow, repo, pilot_id)
    with pytest.raises(ConflictOfInterest):
        handlers.report_incident(uow, repo, reviewer("r9", org="firm"), pilot_id,
                                 severity=Severity.CRITICAL, description="outage",
                                 occurred_at=None)
    assert snapshot(uow, repo, pilot_id) == before


def test_resuming_a_terminated_pilot_is_refused_and_changes_nothing(uow, repo,
                                                                    pilot_id) -> None:
    handlers.terminate_pilot(uow, repo, reviewer("r1"), pilot_id, "fraud")
    before = snapshot(uow, repo, pilot_id)
    with pytest.raises(IllegalTransition, match="never resumed"):
        handlers.resume_pilot(uow, repo, reviewer("r1"), pilot_id, "second chance")
    assert snapshot(uow, repo, pilot_id) == before
    assert repo.pilots[pilot_id].status == PilotStatus.TERMINATED


def test_an_extension_past_the_profile_is_refused_and_changes_nothing(uow, repo,
                                                                      pilot_id) -> None:
    before = snapshot(uow, repo, pilot_id)
    with pytest.raises(InvalidInput, match="at most 12 months"):
        handlers.extend_pilot(uow, repo, PROFILES, reviewer("r1"), pilot_id,
                                 date(2029, 1, 1), "more")
    assert snapshot(uow, repo, pilot_id) == before
    pilot = handlers.extend_pilot(uow, repo, PROFILES, reviewer("r1"), pilot_id,
                                     date(2028, 12, 31), "more")
    assert (pilot.ends_on, pilot.extensions_used) == (date(2028, 12, 31), 1)
    assert uow.event_names() == ["pilot.extended"]
    assert repo.decisions[-1].kind == "approval"  # an extension is not numbered


def test_limits_wider_than_requested_are_refused_and_change_nothing(uow, repo,
                                                                   pilot_id) -> None:
    before = snapshot(uow, repo, pilot_id)
    with pytest.raises(InvalidInput, match="no wider than the requested"):
        handlers.adjust_pilot(uow, repo, reviewer("r1"), pilot_id, "grow",
                                 conditions=None, limits=Scope(("HN", "Mars"), 10, 1))
    assert snapshot(uow, repo, pilot_id) == before


def test_accepting_a_graduation_numbers_the_decision_and_the_certificate(uow, repo,
                                                                         pilot_id) -> None:
    report = handlers.file_exit(uow, repo, OWNER, pilot_id, outcome=ExitOutcome.GRADUATE,
                                   final_report="done", lessons="learnt",
                                   recommendations=["license it"], kpi_results=None)
    assert repo.pilots[pilot_id].exit_report == report
    pilot = handlers.accept_exit(uow, repo, reviewer("r1"), pilot_id, "well run")
    assert pilot.status == PilotStatus.EXITED
    assert pilot.certificate_no == "1/GCN-TNKS-SBV"
    assert repo.decisions[-1].kind == "exit_acceptance"
    assert repo.decisions[-1].decision_no == "1/QĐ-TNKS-SBV"  # the first of 2027
    assert uow.event_names() == ["pilot.exited"]
    assert [e.action for e in uow.audit] == ["file_exit", "accept_exit"]


# --- the scheduler's actions ---------------------------------------------------------------

def test_the_scheduler_starts_a_pilot_on_its_start_date_once(uow, repo) -> None:
    app_id = assessed(uow, repo)
    _, pilot = handlers.decide_application(uow, repo, PROFILES, reviewer("r3"), app_id,
                                           terms=TERMS)
    uow.events.clear()
    uow.now = hanoi_morning(START) - timedelta(days=1)
    assert not handlers.start_pilot(uow, repo, pilot.id)
    uow.now = hanoi_morning(START)
    assert handlers.start_pilot(uow, repo, pilot.id)
    assert not handlers.start_pilot(uow, repo, pilot.id)
    assert uow.event_names() == ["pilot.started"]
    assert repo.pilots[pilot.id].next_report_due_on == date(2027, 4, 15)


def test_the_scheduler_flags_an_overdue_report_then_expires_the_pilot(uow, repo,
                                                                      pilot_id) -> None:
    uow.now = hanoi_morning(date(2027, 4, 16))
    assert handlers.flag_report_overdue(uow, repo, pilot_id)
    assert not handlers.flag_report_overdue(uow, repo, pilot_id)
    assert repo.pilots[pilot_id].report_overdue
    uow.now = hanoi_morning(date(2028, 1, 1))
    assert handlers.expire_pilot(uow, repo, pilot_id)
    assert not handlers.expire_pilot(uow, repo, pilot_id)
    assert uow.event_names() == ["pilot.report_overdue", "pilot.expired"]
    assert [(e.action, e.to_status) for e in uow.audit] == [("report_overdue", "active"),
                                                            ("expire", "expired")]


def test_the_scheduler_flags_an_overdue_decision_once(uow, repo) -> None:
    app_id = assessed(uow, repo)
    uow.events.clear()
    due = repo.applications[app_id].decision_due_on
    uow.now = hanoi_morning(due)
    assert not handlers.flag_decision_overdue(uow, repo, app_id)
    uow.now = hanoi_morning(due + timedelta(days=1))
    assert handlers.flag_decision_overdue(uow, repo, app_id)
    assert not handlers.flag_decision_overdue(uow, repo, app_id)
    [(name, subject, data)] = uow.events
    assert (name, subject, data["decision_due_on"]) == ("application.decision_overdue",
                                                         app_id, due)
    assert repo.applications[app_id].overdue_flagged_on == due + timedelta(days=1)
