"""Supervising a pilot, on plain objects: reports and breaches, the reporting calendar,
incidents, suspension, resumption, termination, extension, adjustment, exit, and what the
scheduler does (start, overdue reports, expiry)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from sandbox.domain.applications import Scope
from sandbox.domain.errors import IllegalTransition, InvalidInput
from sandbox.domain.pilots import (
    DecisionKind,
    IncidentReported,
    Pilot,
    PilotAdjusted,
    PilotBreachDetected,
    PilotExited,
    PilotExpired,
    PilotExtended,
    PilotReportFiled,
    PilotReportOverdue,
    PilotResumed,
    PilotStatus,
    PilotSuspended,
    PilotTerminated,
)
from sandbox.domain.supervision import (
    ExitOutcome,
    ExitReport,
    ExitStatus,
    Figures,
    Severity,
)

from .test_application_rules import FINTECH, TELECOM, numbers
from .test_pilot_rules import approved_pilot

START = date(2027, 1, 1)  # the approved pilot runs 2027-01-01 .. 2028-06-30, quarterly


def at(day: date, hour: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)


def active() -> Pilot:
    pilot = approved_pilot()
    pilot.start(START, at(START))
    pilot.events.clear()
    return pilot


def figures(period: str = "2027-Q1", **change) -> Figures:
    values = {"period": period, "participants": 800, "transactions_vnd": 900_000_000,
              "complaints": 2, "kpis": {"default_rate_pct": 1.5},
              "largest_transaction_vnd": 9_000_000, "regions": ("HN",)}
    values.update(change)
    return Figures(**values)


def certificates():
    n = iter(range(1, 1000))
    return lambda: f"{next(n)}/GCN-TNKS-SBV"


def exit_report(outcome: ExitOutcome = ExitOutcome.GRADUATE) -> ExitReport:
    return ExitReport(id="x-1", outcome=outcome, final_report="ran well",
                      lessons="escrow works", recommendations=("license P2P lending",),
                      kpi_results={"default_rate_pct": 1.1}, filed_by="owner",
                      filed_at=at(date(2028, 6, 1)))


# --- reports -------------------------------------------------------------------------------

def test_a_report_within_the_limits_moves_the_next_due_date_on() -> None:
    pilot = active()
    assert pilot.next_report_due_on == date(2027, 4, 15)
    report = pilot.file_report("r-1", figures(), "owner", date(2027, 4, 2), at(date(2027, 4, 2)))
    assert report.breaches == () and not report.filed_late
    assert report.due_on == date(2027, 4, 15)
    assert pilot.next_report_due_on == date(2027, 7, 15)  # 2027-Q2 is owed next
    assert [type(e) for e in pilot.events] == [PilotReportFiled]
    assert pilot.last_report_period == "2027-Q1"


def test_every_figure_over_a_limit_is_a_breach_in_one_event() -> None:
    pilot = active()
    report = pilot.file_report(
        "r-1", figures(participants=1200, largest_transaction_vnd=12_000_000,
                       regions=("HN", "DN")), "owner", date(2027, 4, 2), at(date(2027, 4, 2)))
    assert [b.as_dict() for b in report.breaches] == [
        {"limit": "max_participants", "allowed": 1000, "reported": 1200},
        {"limit": "max_transaction_vnd", "allowed": 10_000_000, "reported": 12_000_000},
        {"limit": "regions", "allowed": ["HN"], "reported": ["DN"]},
    ]
    filed, breach = pilot.events
    assert isinstance(filed, PilotReportFiled) and isinstance(breach, PilotBreachDetected)
    assert breach.breaches == filed.breaches and len(breach.breaches) == 3
    assert pilot.breaches_count == 3


def test_a_report_is_one_per_period_in_the_pilots_frequency_once_the_period_is_over(
) -> None:
    pilot = active()
    day = date(2027, 4, 2)
    with pytest.raises(InvalidInput, match="quarterly"):
        pilot.file_report("r", figures("2027-03"), "owner", day, at(day))
    with pytest.raises(InvalidInput, match="once it is over"):
        pilot.file_report("r", figures("2027-Q2"), "owner", day, at(day))
    with pytest.raises(InvalidInput, match="outside the pilot's run"):
        pilot.file_report("r", figures("2026-Q4"), "owner", day, at(day))
    with pytest.raises(InvalidInput, match="neither a quarter"):
        pilot.file_report("r", figures("2027-Q5"), "owner", day, at(day))
    pilot.file_report("r-1", figures(), "owner", day, at(day))
    with pytest.raises(IllegalTransition, match="one report per period"):
        pilot.file_report("r-2", figures(), "owner", day, at(day))


def test_figures_that_contradict_each_other_or_omit_the_capped_one_are_refused() -> None:
    pilot = active()
    day = date(2027, 4, 2)
    with pytest.raises(InvalidInput, match="transactions_vnd"):
        pilot.file_report("r", figures(largest_transaction_vnd=10**12), "owner", day, at(day))
    with pytest.raises(InvalidInput, match="required"):
        pilot.file_report("r", figures(largest_transaction_vnd=None), "owner", day, at(day))
    assert pilot.reported_periods == frozenset() and pilot.events == []


def test_reports_on_a_suspended_or_ended_pilot_are_refused() -> None:
    day = date(2027, 4, 2)
    suspended = active()
    suspended.suspend("escrow shortfall", "r3", day, at(day), number=numbers())
    with pytest.raises(IllegalTransition, match="suspended"):
        suspended.file_report("r", figures(), "owner", day, at(day))
    not_started = approved_pilot()
    with pytest.raises(IllegalTransition, match="approved"):
        not_started.file_report("r", figures(), "owner", day, at(day))
    terminated = active()
    terminated.terminate("fraud", "r3", day, at(day), number=numbers())
    with pytest.raises(IllegalTransition, match="terminated"):
        terminated.file_report("r", figures(), "owner", day, at(day))


def test_a_late_report_is_marked_late_and_a_later_period_can_come_first() -> None:
    pilot = active()
    day = date(2027, 7, 10)
    second = pilot.file_report("r-2", figures("2027-Q2"), "owner", day, at(day))
    assert not second.filed_late
    assert pilot.next_report_due_on == date(2027, 4, 15)  # 2027-Q1 is still owed
    first = pilot.file_report("r-1", figures("2027-Q1"), "owner", day, at(day))
    assert first.filed_late
    assert pilot.next_report_due_on == date(2027, 10, 15)  # Q1 and Q2 in: Q3 next
    assert pilot.last_report_period == "2027-Q2"


def test_the_last_period_is_reported_once_the_pilot_has_ended_and_then_none_is_owed() -> None:
    pilot = active()
    pilot.reported_periods = frozenset(f"2027-Q{q}" for q in range(1, 5)) | {"2028-Q1"}
    pilot.next_report_due_on = date(2028, 7, 15)  # 2028-Q2, the pilot's last period
    day = date(2028, 7, 1)
    pilot.file_report("r-6", figures("2028-Q2"), "owner", day, at(day))
    assert pilot.next_report_due_on is None


# --- the scheduler's steps -----------------------------------------------------------------

def test_an_owed_report_is_flagged_overdue_once_after_its_due_day() -> None:
    pilot = active()
    assert not pilot.flag_report_overdue(date(2027, 4, 15))  # due that day: not yet
    assert pilot.flag_report_overdue(date(2027, 4, 16))
    assert not pilot.flag_report_overdue(date(2027, 4, 17))  # once
    [event] = pilot.events
    assert isinstance(event, PilotReportOverdue)
    assert (event.period, event.due_on, event.flagged_on) == (
        "2027-Q1", date(2027, 4, 15), date(2027, 4, 16))
    assert pilot.report_overdue and pilot.report_overdue_since == date(2027, 4, 15)
    # Filing it clears the flag; the next period is flagged in its own time.
    pilot.file_report("r-1", figures(), "owner", date(2027, 4, 20), at(date(2027, 4, 20)))
    assert not pilot.report_overdue and pilot.next_report_due_on == date(2027, 7, 15)


def test_a_suspended_pilot_owes_no_report_and_owes_from_the_current_period_when_resumed(
) -> None:
    pilot = active()
    pilot.suspend("audit", "r3", date(2027, 3, 1), at(date(2027, 3, 1)), number=numbers())
    assert pilot.next_report_due_on is None
    assert not pilot.flag_report_overdue(date(2027, 5, 1))
    pilot.resume("audit passed", date(2027, 8, 10), at(date(2027, 8, 10)))
    assert pilot.status == PilotStatus.ACTIVE
    assert pilot.next_report_due_on == date(2027, 10, 15)  # 2027-Q3, the current period
    assert isinstance(pilot.events[-1], PilotResumed)
    assert pilot.suspension_reason is None


def test_a_pilot_past_its_end_with_no_exit_report_expires_once() -> None:
    pilot = active()
    assert not pilot.expire(date(2028, 6, 30))  # its last day
    assert pilot.expire(date(2028, 7, 1))
    assert not pilot.expire(date(2028, 7, 2))
    assert pilot.status == PilotStatus.EXPIRED and pilot.expired_on == date(2028, 7, 1)
    [event] = pilot.events
    assert isinstance(event, PilotExpired) and event.reports_outstanding
    filed = active()
    filed.file_exit(exit_report())
    assert not filed.expire(date(2028, 7, 1))  # the exit report was filed in time


def test_an_expired_pilot_still_reports_files_its_exit_and_exits() -> None:
    pilot = active()
    pilot.expire(date(2028, 7, 1))
    day = date(2028, 7, 2)
    pilot.file_report("r", figures("2027-Q1"), "owner", day, at(day))
    pilot.file_exit(replace(exit_report(), filed_at=at(day)))
    pilot.accept_exit("fine", "r3", day, at(day), number=numbers(),
                      certificate=certificates())
    assert pilot.status == PilotStatus.EXITED


# --- incidents -----------------------------------------------------------------------------

def test_an_incident_records_whether_it_was_reported_within_the_sectors_deadline() -> None:
    pilot = active()
    now = at(date(2027, 2, 10), hour=8)
    late = pilot.report_incident("i-1", Severity.HIGH, "data leak", now - timedelta(hours=30),
                                 "owner", "sandbox_applicant", now)
    prompt = pilot.report_incident("i-2", Severity.LOW, "outage", now - timedelta(hours=2),
                                   "owner", "sandbox_applicant", now)
    default = pilot.report_incident("i-3", Severity.MEDIUM, "glitch", None, "r1", "reviewer",
                                    now)
    assert not late.reported_in_time and late.deadline_at == now - timedelta(hours=6)
    assert prompt.reported_in_time and default.occurred_at == now
    assert pilot.status == PilotStatus.ACTIVE and pilot.incidents_count == 3
    assert all(isinstance(e, IncidentReported) for e in pilot.events)


def test_a_critical_incident_suspends_an_active_pilot_at_once_with_the_reason_linked() -> None:
    pilot = active()
    now = at(date(2027, 2, 10))
    incident = pilot.report_incident("i-9", Severity.CRITICAL, "funds missing", None,
                                     "owner", "sandbox_applicant", now)
    assert incident.suspended_pilot and pilot.status == PilotStatus.SUSPENDED
    assert pilot.suspension_incident_id == "i-9" and "i-9" in (pilot.suspension_reason or "")
    reported, suspended = pilot.events
    assert isinstance(reported, IncidentReported) and reported.suspended_pilot
    assert isinstance(suspended, PilotSuspended)
    assert (suspended.incident_id, suspended.decision_no) == ("i-9", None)
    assert [d.kind for d in pilot.decisions] == [DecisionKind.APPROVAL]  # not a decision
    again = pilot.report_incident("i-10", Severity.CRITICAL, "more", None, "owner",
                                  "sandbox_applicant", now)
    assert not again.suspended_pilot and len(pilot.events) == 3


def test_an_incident_in_the_future_or_on_an_ended_pilot_is_refused() -> None:
    pilot = active()
    now = at(date(2027, 2, 10))
    with pytest.raises(InvalidInput, match="after the report"):
        pilot.report_incident("i", Severity.LOW, "x", now + timedelta(minutes=1), "owner",
                              "sandbox_applicant", now)
    pilot.terminate("fraud", "r3", date(2027, 2, 10), now, number=numbers())
    with pytest.raises(IllegalTransition):
        pilot.report_incident("i", Severity.LOW, "x", None, "owner", "sandbox_applicant", now)


# --- reviewers' decisions ------------------------------------------------------------------

def test_suspension_and_termination_are_numbered_decisions() -> None:
    pilot = active()
    number = numbers()
    day = date(2027, 3, 1)
    suspension = pilot.suspend("escrow shortfall", "r3", day, at(day), number=number)
    assert (suspension.kind, suspension.decision_no) == (DecisionKind.SUSPENSION,
                                                         "1/QĐ-TNKS-SBV")
    assert isinstance(pilot.events[-1], PilotSuspended)
    assert pilot.events[-1].decision_no == "1/QĐ-TNKS-SBV"
    termination = pilot.terminate("no remedy", "r3", day, at(day), number=number)
    assert termination.decision_no == "2/QĐ-TNKS-SBV"
    assert pilot.status == PilotStatus.TERMINATED and pilot.terminated_on == day
    assert isinstance(pilot.events[-1], PilotTerminated)
    with pytest.raises(IllegalTransition, match="never resumed"):
        pilot.resume("second chance", day, at(day))


def test_a_refused_decision_takes_no_number() -> None:
    taken: list[str] = []

    def number() -> tuple[str, int]:
        taken.append("n")
        return "1/QĐ-TNKS-SBV", 2027

    pilot = approved_pilot()  # not started: nothing to suspend
    with pytest.raises(IllegalTransition):
        pilot.suspend("x", "r3", START, at(START), number=number)
    with pytest.raises(InvalidInput, match="reason"):
        active().terminate("  ", "r3", START, at(START), number=number)
    assert taken == []


def test_an_extension_goes_as_far_and_as_often_as_the_sector_allows() -> None:
    pilot = active()  # fintech: two extensions of up to 12 months, 48 months in all
    now = at(date(2027, 6, 1))
    with pytest.raises(InvalidInput, match="after the current end date"):
        pilot.extend(date(2028, 6, 30), "more time", FINTECH, now)
    with pytest.raises(InvalidInput, match="at most 12 months"):
        pilot.extend(date(2029, 7, 1), "more time", FINTECH, now)
    pilot.extend(date(2029, 6, 30), "more time", FINTECH, now)
    pilot.extend(date(2030, 6, 30), "still more", FINTECH, now)
    assert (pilot.ends_on, pilot.extensions_used) == (date(2030, 6, 30), 2)
    assert pilot.original_ends_on == date(2028, 6, 30)
    assert isinstance(pilot.events[-1], PilotExtended)
    assert pilot.events[-1].previous_ends_on == date(2029, 6, 30)
    with pytest.raises(IllegalTransition, match="allows 2 extension"):
        pilot.extend(date(2030, 12, 31), "again", FINTECH, now)


def test_an_extension_stays_within_the_maximum_total_and_the_absolute_end_date() -> None:
    pilot = active()
    total = replace(FINTECH, max_total_months=24, max_extensions=5)
    with pytest.raises(InvalidInput, match="24 months in all"):
        pilot.extend(date(2029, 1, 1), "x", total, at(START))
    pilot.extend(date(2028, 12, 31), "x", total, at(START))  # 24 months from the start
    satellite = active()
    satellite.ends_on = date(2030, 6, 30)
    with pytest.raises(InvalidInput, match="before 2031-01-01"):
        satellite.extend(date(2031, 1, 1), "x", replace(TELECOM, max_total_months=None),
                         at(START))


def test_limits_are_adjusted_never_wider_than_requested() -> None:
    pilot = active()  # requested HN, HCM; 5000 participants; 50M per transaction
    now = at(date(2027, 3, 1))
    for wider in (Scope(("HN", "DN"), 100, 1), Scope(("HN",), 5001, 1),
                  Scope(("HN",), 100, None), Scope(("HN",), 100, 50_000_001)):
        with pytest.raises(InvalidInput, match="no wider than the requested"):
            pilot.adjust("growth", now, limits=wider)
    with pytest.raises(InvalidInput, match="changes the conditions or the limits"):
        pilot.adjust("nothing", now)
    with pytest.raises(InvalidInput, match="changes nothing"):
        pilot.adjust("same", now, conditions=pilot.conditions)
    assert pilot.events == []
    pilot.adjust("growth", now, limits=Scope(("HN", "HCM"), 5000, 50_000_000),
                 conditions=("weekly escrow audit",))
    assert pilot.limits == pilot.requested and pilot.conditions == ("weekly escrow audit",)
    event = pilot.events[-1]
    assert isinstance(event, PilotAdjusted)
    assert event.previous_limits["max_participants"] == 1000 and event.reason == "growth"


# --- exit ----------------------------------------------------------------------------------

def test_a_graduating_pilot_exits_with_a_numbered_decision_and_certificate() -> None:
    pilot = active()
    with pytest.raises(IllegalTransition, match="no exit report"):
        pilot.accept_exit("", "r3", START, at(START), number=numbers(),
                          certificate=certificates())
    pilot.file_exit(exit_report())
    with pytest.raises(IllegalTransition, match="one per pilot"):
        pilot.file_exit(exit_report())
    day = date(2028, 6, 20)
    decision = pilot.accept_exit("well run", "r3", day, at(day), number=numbers(),
                                 certificate=certificates())
    assert decision.kind == DecisionKind.EXIT_ACCEPTANCE
    assert pilot.status == PilotStatus.EXITED and pilot.exited_on == day
    assert (pilot.certificate_no, pilot.certificate_issued_on) == ("1/GCN-TNKS-SBV", day)
    assert pilot.exit_report is not None and pilot.exit_report.status == ExitStatus.ACCEPTED
    event = pilot.events[-1]
    assert isinstance(event, PilotExited)
    assert (event.outcome, event.certificate_no) == ("graduate", "1/GCN-TNKS-SBV")


def test_a_discontinued_pilot_exits_without_a_certificate() -> None:
    pilot = active()
    pilot.file_exit(exit_report(ExitOutcome.DISCONTINUE))
    pilot.accept_exit("", "r3", START, at(START), number=numbers(), certificate=certificates())
    assert pilot.status == PilotStatus.EXITED and pilot.certificate_no is None

