"""Pilots: an approved application's test under conditions (domain.md §4).

approved → active (on its start date) → suspended ⇄ active → terminated / exited, and
``expired`` once its end date has passed with no exit report filed (the report can still
be filed and accepted: expired → exited). A terminated pilot ends by the termination
decision. Every pilot ever approved stays on the public register, whatever its status.

A pilot keeps the scope its firm requested (limits are never adjusted wider than it),
the limits and conditions in force, its dates, the sector's numbers it was approved
under (report frequency, incident deadline) and its formal decisions' numbers.

Supervision: the firm files a report on each period of the run (a figure over a limit is
a breach) and reports incidents (a critical one suspends the pilot at once); a reviewer
suspends, resumes, terminates, extends (as the sector allows) and adjusts conditions or
limits, each with a reason; the firm files the exit report and a reviewer accepts it.
A reviewer's suspension, a termination and an exit acceptance are formal decisions,
numbered in the supervising agency's register. The scheduler starts pilots, flags owed
reports once overdue and marks pilots expired (:mod:`sandbox.scheduler`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sandbox.domain.applications import (
    Application,
    ApplicationStatus,
    DecisionNumberSource,
    Scope,
)
from sandbox.domain.dates import Period, last_day_after
from sandbox.domain.errors import IllegalTransition, InvalidInput
from sandbox.domain.sectors import ReportFrequency, SectorProfile
from sandbox.domain.supervision import (
    ExitOutcome,
    ExitReport,
    ExitStatus,
    Figures,
    Incident,
    Report,
    Severity,
    breaches_of,
)


class PilotStatus(StrEnum):
    APPROVED = "approved"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    EXITED = "exited"
    EXPIRED = "expired"


TRANSITIONS: dict[PilotStatus, frozenset[PilotStatus]] = {
    PilotStatus.APPROVED: frozenset({PilotStatus.ACTIVE, PilotStatus.TERMINATED}),
    PilotStatus.ACTIVE: frozenset({PilotStatus.SUSPENDED, PilotStatus.TERMINATED,
                                   PilotStatus.EXPIRED, PilotStatus.EXITED}),
    PilotStatus.SUSPENDED: frozenset({PilotStatus.ACTIVE, PilotStatus.TERMINATED,
                                      PilotStatus.EXPIRED, PilotStatus.EXITED}),
    PilotStatus.EXPIRED: frozenset({PilotStatus.EXITED, PilotStatus.TERMINATED}),
    PilotStatus.TERMINATED: frozenset(),
    PilotStatus.EXITED: frozenset(),
}
ENDED = (PilotStatus.TERMINATED, PilotStatus.EXITED)


class DecisionKind(StrEnum):
    """The formal decisions that carry a register number (a rejection has no pilot)."""

    APPROVAL = "approval"
    REJECTION = "rejection"
    SUSPENSION = "suspension"
    TERMINATION = "termination"
    EXIT_ACCEPTANCE = "exit_acceptance"


@dataclass(frozen=True)
class PilotDecision:
    kind: DecisionKind
    decision_no: str
    decision_year: int
    decided_on: date
    decided_by: str
    reason: str | None = None


@dataclass(frozen=True)
class PilotStarted:
    pilot_id: str
    application_id: str
    organisation_id: str
    firm_name: str
    sector: str
    supervising_agency: str
    technology: str
    conditions: list[str]
    limits: dict[str, Any]
    starts_on: date
    ends_on: date
    next_report_due_on: date
    started_at: datetime


@dataclass(frozen=True)
class PilotReportFiled:
    pilot_id: str
    report_id: str
    organisation_id: str
    period: str
    participants: int
    transactions_vnd: int
    largest_transaction_vnd: int | None
    regions: list[str] | None
    kpis: dict[str, float]
    complaints: int
    breaches: list[dict[str, Any]]
    due_on: date
    filed_late: bool
    next_report_due_on: date | None
    filed_at: datetime


@dataclass(frozen=True)
class PilotBreachDetected:
    pilot_id: str
    report_id: str
    organisation_id: str
    firm_name: str
    sector: str
    supervising_agency: str
    period: str
    breaches: list[dict[str, Any]]
    detected_at: datetime


@dataclass(frozen=True)
class IncidentReported:
    pilot_id: str
    incident_id: str
    organisation_id: str
    severity: str
    description: str
    occurred_at: datetime
    reported_at: datetime
    deadline_at: datetime
    reported_in_time: bool
    reporter_role: str
    suspended_pilot: bool


@dataclass(frozen=True)
class PilotSuspended:
    pilot_id: str
    organisation_id: str
    reason: str
    incident_id: str | None
    decision_no: str | None
    decision_year: int | None
    suspended_at: datetime


@dataclass(frozen=True)
class PilotResumed:
    pilot_id: str
    organisation_id: str
    reason: str
    next_report_due_on: date | None
    resumed_at: datetime


@dataclass(frozen=True)
class PilotExtended:
    pilot_id: str
    organisation_id: str
    previous_ends_on: date
    ends_on: date
    extensions_used: int
    reason: str
    extended_at: datetime


@dataclass(frozen=True)
class PilotAdjusted:
    pilot_id: str
    organisation_id: str
    conditions: list[str]
    limits: dict[str, Any]
    previous_conditions: list[str]
    previous_limits: dict[str, Any]
    reason: str
    adjusted_at: datetime


@dataclass(frozen=True)
class PilotTerminated:
    pilot_id: str
    organisation_id: str
    reason: str
    decision_no: str
    decision_year: int
    terminated_on: date
    terminated_at: datetime


@dataclass(frozen=True)
class PilotExited:
    pilot_id: str
    organisation_id: str
    firm_name: str
    sector: str
    supervising_agency: str
    outcome: str
    lessons: str
    recommendations: list[str]
    note: str
    decision_no: str
    decision_year: int
    certificate_no: str | None
    exited_on: date
    exited_at: datetime


@dataclass(frozen=True)
class PilotReportOverdue:
    pilot_id: str
    organisation_id: str
    period: str
    due_on: date
    flagged_on: date


@dataclass(frozen=True)
class PilotExpired:
    pilot_id: str
    organisation_id: str
    ends_on: date
    expired_on: date
    reports_outstanding: bool


CertificateNumberSource = Callable[[], str]

# Where each command may act; the refusal names the status found.
REPORTING = (PilotStatus.ACTIVE, PilotStatus.EXPIRED)
INCIDENTS = (PilotStatus.ACTIVE, PilotStatus.SUSPENDED, PilotStatus.EXPIRED)
ADJUSTABLE = (PilotStatus.APPROVED, PilotStatus.ACTIVE, PilotStatus.SUSPENDED)
EXTENSIBLE = (PilotStatus.ACTIVE, PilotStatus.SUSPENDED)
EXITABLE = (PilotStatus.ACTIVE, PilotStatus.SUSPENDED, PilotStatus.EXPIRED)


@dataclass
class Pilot:
    id: str
    application_id: str
    owner_id: str
    organisation_id: str
    firm_name: str
    enterprise_code: str
    sector: str
    supervising_agency: str
    technology: str
    requested: Scope
    limits: Scope
    conditions: tuple[str, ...]
    starts_on: date
    ends_on: date
    original_ends_on: date
    report_frequency: ReportFrequency
    report_grace_days: int
    incident_deadline_hours: int
    status: PilotStatus = PilotStatus.APPROVED
    extensions_used: int = 0
    decisions: list[PilotDecision] = field(default_factory=list)
    started_on: date | None = None
    next_report_due_on: date | None = None
    report_overdue: bool = False
    report_overdue_since: date | None = None
    certificate_no: str | None = None
    certificate_issued_on: date | None = None
    reported_periods: frozenset[str] = frozenset()
    last_report_period: str | None = None
    breaches_count: int = 0
    incidents_count: int = 0
    suspended_at: datetime | None = None
    suspension_reason: str | None = None
    suspension_incident_id: str | None = None
    terminated_on: date | None = None
    termination_reason: str | None = None
    expired_on: date | None = None
    exited_on: date | None = None
    exit_report: ExitReport | None = None
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def approved(cls, app: Application, profile: SectorProfile) -> Pilot:
        """The pilot an approval creates (``app`` approved, with its terms and number)."""
        if app.status != ApplicationStatus.APPROVED or app.terms is None \
                or app.pilot_id is None or app.decision_no is None \
                or app.decision_year is None or app.decided_on is None \
                or app.decided_by is None:
            raise IllegalTransition(f"application {app.id} is not approved")
        p, terms = app.proposal, app.terms
        return cls(
            id=app.pilot_id, application_id=app.id, owner_id=app.owner_id,
            organisation_id=app.organisation_id, firm_name=p.firm_name,
            enterprise_code=p.enterprise_code, sector=p.sector,
            supervising_agency=app.supervising_agency, technology=p.technology,
            requested=p.scope, limits=terms.limits, conditions=terms.conditions,
            starts_on=terms.starts_on, ends_on=terms.ends_on,
            original_ends_on=terms.ends_on, report_frequency=profile.report_frequency,
            report_grace_days=profile.report_grace_days,
            incident_deadline_hours=profile.incident_deadline_hours,
            decisions=[PilotDecision(DecisionKind.APPROVAL, app.decision_no,
                                     app.decision_year, app.decided_on, app.decided_by)],
        )

    @property
    def approval(self) -> PilotDecision:
        return next(d for d in self.decisions if d.kind == DecisionKind.APPROVAL)

    @property
    def decision_no(self) -> str:
        """The approval's number."""
        return self.approval.decision_no

    @property
    def decision_year(self) -> int:
        return self.approval.decision_year

    @property
    def exit_outcome(self) -> ExitOutcome | None:
        return self.exit_report.outcome if self.exit_report else None

    def move_to(self, status: PilotStatus) -> PilotStatus:
        """Change status along :data:`TRANSITIONS`; returns the status it left."""
        before = self.status
        if status not in TRANSITIONS[before]:
            raise IllegalTransition(f"pilot is {before}; it cannot become {status}")
        self.status = status
        return before

    def _require(self, allowed: tuple[PilotStatus, ...], what: str) -> None:
        if self.status not in allowed:
            names = ", ".join(s.value for s in allowed)
            raise IllegalTransition(f"pilot is {self.status}; {what} only on a pilot that is "
                                    f"{names}")

    def _decide(self, kind: DecisionKind, decider_id: str, today: date,
                number: DecisionNumberSource, reason: str | None) -> PilotDecision:
        decision_no, decision_year = number()
        decision = PilotDecision(kind, decision_no, decision_year, today, decider_id, reason)
        self.decisions.append(decision)
        return decision

    # --- the reporting calendar ------------------------------------------------------
    # The pilot owes a report on every period of its run (from the period containing its
    # start to the one containing its end) while it is active; ``next_report_due_on`` is
    # the due day of the earliest period owed and not yet reported. A suspended pilot
    # owes none; resumed, it owes from the current period on.

    @property
    def last_period(self) -> Period:
        return Period.containing(self.ends_on, self.report_frequency)

    @property
    def owed_period(self) -> Period | None:
        """The period whose report falls due on ``next_report_due_on``."""
        if self.next_report_due_on is None:
            return None
        ends = self.next_report_due_on - timedelta(days=self.report_grace_days)
        return Period.containing(ends, self.report_frequency)

    def _owe_from(self, first: Period) -> None:
        """Owe the earliest unreported period from ``first`` to the last one."""
        period = first
        while period <= self.last_period and str(period) in self.reported_periods:
            period = period.next()
        self.next_report_due_on = (period.due_on(self.report_grace_days)
                                   if period <= self.last_period else None)
        self.report_overdue = False

    def _owe_nothing(self) -> None:
        self.next_report_due_on = None
        self.report_overdue = False

    # --- start ----------------------------------------------------------------------
    def start(self, today: date, now: datetime) -> None:
        """Start an approved pilot on (or after) its start date; its first report falls
        due on the period containing the start."""
        if self.status != PilotStatus.APPROVED:
            raise IllegalTransition(f"pilot is {self.status}; only an approved pilot starts")
        if today < self.starts_on:
            raise IllegalTransition(f"pilot starts on {self.starts_on}, not before")
        self.move_to(PilotStatus.ACTIVE)
        self.started_on = today
        self._owe_from(Period.containing(self.starts_on, self.report_frequency))
        assert self.next_report_due_on is not None  # the start's period is owed
        self.events.append(PilotStarted(
            pilot_id=self.id, application_id=self.application_id,
            organisation_id=self.organisation_id, firm_name=self.firm_name,
            sector=self.sector, supervising_agency=self.supervising_agency,
            technology=self.technology, conditions=list(self.conditions),
            limits=self.limits.as_dict(), starts_on=self.starts_on, ends_on=self.ends_on,
            next_report_due_on=self.next_report_due_on, started_at=now))

    # --- the firm's reports and incidents ---------------------------------------------
    def file_report(self, report_id: str, figures: Figures, filed_by: str, today: date,
                    now: datetime) -> Report:
        """File the report on one period of the pilot's run, once its reporting window is
        over; every figure over a limit in force is a breach."""
        if self.status == PilotStatus.SUSPENDED:
            raise IllegalTransition("pilot is suspended: a suspended pilot owes no report "
                                    "and files none until it is resumed")
        self._require(REPORTING, "periodic reports are filed")
        period = Period.parse(figures.period)
        if period.frequency != self.report_frequency:
            example = "2026-Q1" if self.report_frequency == ReportFrequency.QUARTERLY \
                else "2026-03"
            raise InvalidInput(f"this pilot reports {self.report_frequency} (periods like "
                               f"{example}); '{figures.period}' is not one",
                               field="period")
        if period.ends_on < self.starts_on or period.starts_on > self.ends_on:
            raise InvalidInput(f"period {period} is outside the pilot's run "
                               f"({self.starts_on} to {self.ends_on})", field="period")
        window_ends = min(period.ends_on, self.ends_on)
        if window_ends >= today:
            raise InvalidInput(f"period {period} is reported once it is over: from "
                               f"{window_ends + timedelta(days=1)}", field="period")
        if str(period) in self.reported_periods:
            raise IllegalTransition(f"one report per period: {period} is already reported")
        figures.check(self.limits)
        breaches = tuple(breaches_of(figures, self.limits))
        due_on = period.due_on(self.report_grace_days)
        report = Report(id=report_id, pilot_id=self.id, period=period, figures=figures,
                        breaches=breaches, due_on=due_on, filed_late=today > due_on,
                        filed_by=filed_by, filed_at=now)
        self.reported_periods = self.reported_periods | {str(period)}
        if self.last_report_period is None or \
                Period.parse(self.last_report_period) < period:
            self.last_report_period = str(period)
        self.breaches_count += len(breaches)
        if period == self.owed_period:
            self._owe_from(period.next())
        listed = [b.as_dict() for b in breaches]
        self.events.append(PilotReportFiled(
            pilot_id=self.id, report_id=report_id, organisation_id=self.organisation_id,
            period=str(period), participants=figures.participants,
            transactions_vnd=figures.transactions_vnd,
            largest_transaction_vnd=figures.largest_transaction_vnd,
            regions=list(figures.regions) if figures.regions is not None else None,
            kpis=dict(figures.kpis), complaints=figures.complaints, breaches=listed,
            due_on=due_on, filed_late=report.filed_late,
            next_report_due_on=self.next_report_due_on, filed_at=now))
        if breaches:
            self.events.append(PilotBreachDetected(
                pilot_id=self.id, report_id=report_id, organisation_id=self.organisation_id,
                firm_name=self.firm_name, sector=self.sector,
                supervising_agency=self.supervising_agency, period=str(period),
                breaches=listed, detected_at=now))
        return report

    def report_incident(self, incident_id: str, severity: Severity, description: str,
                        occurred_at: datetime | None, reported_by: str, reporter_role: str,
                        now: datetime) -> Incident:
        """Record an incident, when it occurred (default: now) and whether it was reported
        within the sector's deadline; a critical one suspends an active pilot at once."""
        self._require(INCIDENTS, "incidents are reported")
        if not description.strip():
            raise InvalidInput("an incident states what happened", field="description")
        occurred = occurred_at or now
        if occurred > now:
            raise InvalidInput(f"occurred_at {occurred.isoformat()} is after the report "
                               f"({now.isoformat()})", field="occurred_at")
        deadline = occurred + timedelta(hours=self.incident_deadline_hours)
        suspends = severity == Severity.CRITICAL and self.status == PilotStatus.ACTIVE
        incident = Incident(
            id=incident_id, pilot_id=self.id, severity=severity, description=description,
            occurred_at=occurred, reported_at=now, reported_by=reported_by,
            reporter_role=reporter_role, deadline_at=deadline,
            reported_in_time=now <= deadline, suspended_pilot=suspends)
        self.incidents_count += 1
        self.events.append(IncidentReported(
            pilot_id=self.id, incident_id=incident_id, organisation_id=self.organisation_id,
            severity=severity.value, description=description, occurred_at=occurred,
            reported_at=now, deadline_at=deadline, reported_in_time=incident.reported_in_time,
            reporter_role=reporter_role, suspended_pilot=suspends))
        if suspends:
            self._suspend(f"critical incident {incident_id} reported", now,
                          incident_id=incident_id)
        return incident

    # --- the reviewers' decisions -----------------------------------------------------
    def _suspend(self, reason: str, now: datetime, *, incident_id: str | None = None,
                 decision: PilotDecision | None = None) -> None:
        self.move_to(PilotStatus.SUSPENDED)
        self.suspended_at, self.suspension_reason = now, reason
        self.suspension_incident_id = incident_id
        self._owe_nothing()
        self.events.append(PilotSuspended(
            pilot_id=self.id, organisation_id=self.organisation_id, reason=reason,
            incident_id=incident_id,
            decision_no=decision.decision_no if decision else None,
            decision_year=decision.decision_year if decision else None, suspended_at=now))

    def suspend(self, reason: str, decider_id: str, today: date, now: datetime, *,
                number: DecisionNumberSource) -> PilotDecision:
        """A reviewer suspends an active pilot: a formal decision, numbered."""
        self._require((PilotStatus.ACTIVE,), "a suspension is decided")
        _reason(reason)
        decision = self._decide(DecisionKind.SUSPENSION, decider_id, today, number, reason)
        self._suspend(reason, now, decision=decision)
        return decision

    def resume(self, reason: str, today: date, now: datetime) -> None:
        """A reviewer resumes a suspended pilot; it owes reports from the current period."""
        if self.status == PilotStatus.TERMINATED:
            raise IllegalTransition("pilot is terminated: a terminated pilot is never "
                                    "resumed")
        self._require((PilotStatus.SUSPENDED,), "a pilot is resumed")
        _reason(reason)
        self.move_to(PilotStatus.ACTIVE)
        self.suspended_at = self.suspension_reason = self.suspension_incident_id = None
        self._owe_from(max(Period.containing(today, self.report_frequency),
                           Period.containing(self.starts_on, self.report_frequency)))
        self.events.append(PilotResumed(
            pilot_id=self.id, organisation_id=self.organisation_id, reason=reason,
            next_report_due_on=self.next_report_due_on, resumed_at=now))

    def terminate(self, reason: str, decider_id: str, today: date, now: datetime, *,
                  number: DecisionNumberSource) -> PilotDecision:
        """A reviewer terminates the pilot: a formal decision that ends it."""
        self._require((PilotStatus.APPROVED, PilotStatus.ACTIVE, PilotStatus.SUSPENDED,
                       PilotStatus.EXPIRED), "a termination is decided")
        _reason(reason)
        decision = self._decide(DecisionKind.TERMINATION, decider_id, today, number, reason)
        self.move_to(PilotStatus.TERMINATED)
        self.terminated_on, self.termination_reason = today, reason
        self._owe_nothing()
        self.events.append(PilotTerminated(
            pilot_id=self.id, organisation_id=self.organisation_id, reason=reason,
            decision_no=decision.decision_no, decision_year=decision.decision_year,
            terminated_on=today, terminated_at=now))
        return decision

    def extend(self, ends_on: date, reason: str, profile: SectorProfile, now: datetime
               ) -> None:
        """Move the end date later, as many times and as far as the sector allows: each
        extension at most ``max_extension_months``, within the maximum total duration and
        before the absolute end date."""
        self._require(EXTENSIBLE, "an extension is granted")
        _reason(reason)
        if self.extensions_used >= profile.max_extensions:
            raise IllegalTransition(
                f"sector '{profile.sector}' allows {profile.max_extensions} extension(s); "
                f"this pilot has had {self.extensions_used}")
        if ends_on <= self.ends_on:
            raise InvalidInput(f"ends_on {ends_on} must be after the current end date "
                               f"{self.ends_on}", field="ends_on")
        longest = last_day_after(self.ends_on + timedelta(days=1),
                                 profile.max_extension_months)
        if ends_on > longest:
            raise InvalidInput(
                f"ends_on must be no later than {longest}: an extension in sector "
                f"'{profile.sector}' is at most {profile.max_extension_months} months",
                field="ends_on")
        if profile.max_total_months is not None:
            total = last_day_after(self.starts_on, profile.max_total_months)
            if ends_on > total:
                raise InvalidInput(
                    f"ends_on must be no later than {total}: sector '{profile.sector}' "
                    f"allows {profile.max_total_months} months in all", field="ends_on")
        if profile.ends_before is not None and ends_on >= profile.ends_before:
            raise InvalidInput(f"ends_on must be before {profile.ends_before} in sector "
                               f"'{profile.sector}'", field="ends_on")
        previous = self.ends_on
        self.ends_on = ends_on
        self.extensions_used += 1
        if self.status == PilotStatus.ACTIVE and self.next_report_due_on is None:
            self._owe_from(Period.containing(previous, self.report_frequency))
        self.events.append(PilotExtended(
            pilot_id=self.id, organisation_id=self.organisation_id,
            previous_ends_on=previous, ends_on=ends_on,
            extensions_used=self.extensions_used, reason=reason, extended_at=now))

    def adjust(self, reason: str, now: datetime, *, conditions: tuple[str, ...] | None = None,
               limits: Scope | None = None) -> None:
        """Change the conditions or the limits with a reason; limits stay within the scope
        the firm requested."""
        self._require(ADJUSTABLE, "conditions and limits are adjusted")
        _reason(reason)
        if conditions is None and limits is None:
            raise InvalidInput("an adjustment changes the conditions or the limits",
                               field="conditions")
        if conditions is not None and (not conditions or not all(c.strip()
                                                                 for c in conditions)):
            raise InvalidInput("the conditions are at least one, none blank",
                               field="conditions")
        if limits is not None:
            if not limits.regions:
                raise InvalidInput("limits.regions names at least one region",
                                   field="limits")
            if len(set(limits.regions)) != len(limits.regions):
                raise InvalidInput("a region appears twice in limits.regions",
                                   field="limits")
            wider = limits.wider_than(self.requested)
            if wider:
                raise InvalidInput("limits are no wider than the requested scope: "
                                   + "; ".join(wider), field="limits")
        new_conditions = conditions if conditions is not None else self.conditions
        new_limits = limits if limits is not None else self.limits
        if new_conditions == self.conditions and new_limits == self.limits:
            raise InvalidInput("the adjustment changes nothing: the conditions and limits "
                               "are already these", field="conditions")
        previous_conditions, previous_limits = self.conditions, self.limits
        self.conditions, self.limits = new_conditions, new_limits
        self.events.append(PilotAdjusted(
            pilot_id=self.id, organisation_id=self.organisation_id,
            conditions=list(new_conditions), limits=new_limits.as_dict(),
            previous_conditions=list(previous_conditions),
            previous_limits=previous_limits.as_dict(), reason=reason, adjusted_at=now))

    # --- exit -----------------------------------------------------------------------
    def file_exit(self, report: ExitReport) -> None:
        """The firm files its exit report (once) on a pilot that ran: active, suspended
        or expired."""
        self._require(EXITABLE, "the exit report is filed")
        if self.exit_report is not None:
            raise IllegalTransition("the exit report was filed at "
                                    f"{self.exit_report.filed_at.isoformat()}; one per pilot")
        report.check()
        self.exit_report = report

    def accept_exit(self, note: str, decider_id: str, today: date, now: datetime, *,
                    number: DecisionNumberSource,
                    certificate: CertificateNumberSource) -> PilotDecision:
        """A reviewer accepts the exit report: a formal decision; the pilot has exited and
        a graduating one gets its numbered certificate of completion."""
        self._require(EXITABLE, "an exit is accepted")
        report = self.exit_report
        if report is None:
            raise IllegalTransition("no exit report has been filed: the firm files it "
                                    "first (POST .../exit)")
        decision = self._decide(DecisionKind.EXIT_ACCEPTANCE, decider_id, today, number,
                                note or None)
        if report.outcome == ExitOutcome.GRADUATE:
            self.certificate_no, self.certificate_issued_on = certificate(), today
        self.move_to(PilotStatus.EXITED)
        self.exited_on = today
        self._owe_nothing()
        report.status, report.accepted_by, report.accepted_at = (
            ExitStatus.ACCEPTED, decider_id, now)
        report.note, report.certificate_no = note, self.certificate_no
        report.decision_no, report.decision_year = (decision.decision_no,
                                                    decision.decision_year)
        self.events.append(PilotExited(
            pilot_id=self.id, organisation_id=self.organisation_id,
            firm_name=self.firm_name, sector=self.sector,
            supervising_agency=self.supervising_agency, outcome=report.outcome.value,
            lessons=report.lessons, recommendations=list(report.recommendations),
            note=note, decision_no=decision.decision_no,
            decision_year=decision.decision_year, certificate_no=self.certificate_no,
            exited_on=today, exited_at=now))
        return decision

    # --- what the scheduler does --------------------------------------------------------
    def flag_report_overdue(self, today: date) -> bool:
        """Flag the owed report once its due day has passed (active pilots only); False
        when there is nothing to flag."""
        due, period = self.next_report_due_on, self.owed_period
        if self.status != PilotStatus.ACTIVE or due is None or period is None \
                or today <= due or self.report_overdue:
            return False
        self.report_overdue, self.report_overdue_since = True, due
        self.events.append(PilotReportOverdue(
            pilot_id=self.id, organisation_id=self.organisation_id, period=str(period),
            due_on=due, flagged_on=today))
        return True

    def expire(self, today: date) -> bool:
        """Mark a pilot past its end date with no exit report filed as expired (the report
        can still be filed and accepted); False when there is nothing to mark."""
        if self.status not in (PilotStatus.ACTIVE, PilotStatus.SUSPENDED) \
                or today <= self.ends_on or self.exit_report is not None:
            return False
        self.move_to(PilotStatus.EXPIRED)
        self.expired_on = today
        self.events.append(PilotExpired(
            pilot_id=self.id, organisation_id=self.organisation_id, ends_on=self.ends_on,
            expired_on=today, reports_outstanding=self.next_report_due_on is not None))
        return True


def _reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidInput("the decision states its reason", field="reason")
