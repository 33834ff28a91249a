"""Loading and saving sandbox aggregates: the only place rows and domain objects meet.

:class:`Repository` is what the command handlers need; :class:`SqlRepository` keeps it
in the service's database through the request's session (the unit of work's
transaction), and the unit tests keep it in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from sqlalchemy import select
from sqlmodel import Session

from sandbox.domain.applications import (
    Application,
    ApplicationStatus,
    ApprovalTerms,
    Assessment,
    Criterion,
    Decision,
    DecisionClock,
    Exemption,
    Proposal,
    Scope,
)
from sandbox.domain.pilots import DecisionKind, Pilot, PilotDecision, PilotStatus
from sandbox.domain.sectors import ReportFrequency
from sandbox.domain.supervision import ExitOutcome, ExitReport, ExitStatus, Incident, Report
from sandbox.models import (
    ApplicationRow,
    AssessmentRow,
    DecisionRow,
    ExitRow,
    IncidentRow,
    PilotRow,
    ReportRow,
)
from servicekit.clock import as_utc


@dataclass(frozen=True)
class DecisionRecord:
    """A formal decision as its agency's register holds it."""

    id: str
    register: str
    decision_no: str
    decision_year: int
    kind: str
    application_id: str
    pilot_id: str | None
    decided_by: str
    decided_on: date
    decided_at: datetime
    reason: str | None = None


class Repository(Protocol):
    def application(self, application_id: str, *, for_update: bool = False,
                    skip_locked: bool = False) -> Application | None: ...
    def add_application(self, app: Application, now: datetime) -> None: ...
    def save_application(self, app: Application, now: datetime) -> None: ...
    def pilot(self, pilot_id: str, *, for_update: bool = False,
              skip_locked: bool = False) -> Pilot | None: ...
    def add_pilot(self, pilot: Pilot, today: date, now: datetime) -> None: ...
    def save_pilot(self, pilot: Pilot, now: datetime) -> None: ...
    def add_decision(self, decision: DecisionRecord) -> None: ...
    def add_report(self, report: Report) -> None: ...
    def add_incident(self, incident: Incident) -> None: ...


# --- rows ↔ domain -------------------------------------------------------------------------

def _scope(regions: list[str], max_participants: int, max_transaction_vnd: int | None
           ) -> Scope:
    return Scope(tuple(regions), max_participants, max_transaction_vnd)


def proposal_from_row(row: ApplicationRow) -> Proposal:
    return Proposal(
        firm_name=row.firm_name, enterprise_code=row.enterprise_code, sector=row.sector,
        technology=row.technology, description=row.description,
        exemptions=tuple(Exemption(e["provision"], e["justification"])
                         for e in row.exemptions),
        scope=_scope(row.scope_regions, row.scope_max_participants,
                     row.scope_max_transaction_vnd),
        requested_months=row.requested_months, safeguards=row.safeguards,
        risk_assessment=row.risk_assessment, exit_plan=row.exit_plan)


def assessment_from_row(row: AssessmentRow) -> Assessment:
    return Assessment(
        id=row.id, reviewer_id=row.reviewer_id, reviewer_org=row.reviewer_org,
        submission=row.submission,
        criteria={name: Criterion(bool(c["pass"]), c.get("note", ""))
                  for name, c in row.criteria.items()},
        summary=row.summary, assessed_at=as_utc(row.created_at))


def application_from_row(row: ApplicationRow, assessments: list[AssessmentRow]
                         ) -> Application:
    terms = None
    if row.starts_on is not None and row.ends_on is not None:
        terms = ApprovalTerms(
            conditions=tuple(row.conditions or ()),
            limits=_scope(row.limits_regions or [], row.limits_max_participants or 0,
                          row.limits_max_transaction_vnd),
            starts_on=row.starts_on, ends_on=row.ends_on)
    clock = None
    if row.decision_deadline_days is not None:
        clock = DecisionClock(row.decision_deadline_days, row.decision_days_used,
                              row.decision_clock_since)
    return Application(
        id=row.id, owner_id=row.owner_id, organisation_id=row.organisation_id,
        proposal=proposal_from_row(row), supervising_agency=row.supervising_agency,
        status=ApplicationStatus(row.status), submission=row.submission, clock=clock,
        assessments=[assessment_from_row(a) for a in assessments],
        changes_requested=tuple(row.changes_requested or ()),
        decision=Decision(row.decision) if row.decision else None,
        decision_no=row.decision_no, decision_year=row.decision_year,
        decided_by=row.decided_by, decided_on=row.decided_on, terms=terms,
        reasons=tuple(row.reasons or ()), pilot_id=row.pilot_id,
        withdraw_reason=row.withdraw_reason,
        overdue_flagged_on=row.decision_overdue_flagged_on)


def write_application(row: ApplicationRow, app: Application, now: datetime) -> None:
    """Copy the application's state onto its row."""
    p = app.proposal
    row.firm_name, row.enterprise_code, row.sector = p.firm_name, p.enterprise_code, p.sector
    row.supervising_agency, row.technology = app.supervising_agency, p.technology
    row.description = p.description
    row.exemptions = [{"provision": e.provision, "justification": e.justification}
                      for e in p.exemptions]
    row.scope_regions = list(p.scope.regions)
    row.scope_max_participants = p.scope.max_participants
    row.scope_max_transaction_vnd = p.scope.max_transaction_vnd
    row.requested_months = p.requested_months
    row.safeguards, row.risk_assessment, row.exit_plan = (
        p.safeguards, p.risk_assessment, p.exit_plan)
    if row.status != app.status.value and app.status == ApplicationStatus.SUBMITTED:
        row.submitted_at = now
    if row.decision is None and app.decision is not None:
        row.decided_at = now
    row.status = app.status.value
    row.submission = app.submission
    if app.clock is not None:
        row.decision_deadline_days = app.clock.deadline_days
        row.decision_days_used = app.clock.days_used
        row.decision_clock_since = app.clock.running_since
    row.decision_due_on = app.decision_due_on
    row.changes_requested = list(app.changes_requested) or None
    row.decision = app.decision.value if app.decision else None
    row.decision_no, row.decision_year = app.decision_no, app.decision_year
    row.decided_by, row.decided_on = app.decided_by, app.decided_on
    terms = app.terms
    row.conditions = list(terms.conditions) if terms else None
    row.limits_regions = list(terms.limits.regions) if terms else None
    row.limits_max_participants = terms.limits.max_participants if terms else None
    row.limits_max_transaction_vnd = terms.limits.max_transaction_vnd if terms else None
    row.starts_on = terms.starts_on if terms else None
    row.ends_on = terms.ends_on if terms else None
    row.reasons = list(app.reasons) or None
    row.pilot_id = app.pilot_id
    row.withdraw_reason = app.withdraw_reason
    row.decision_overdue_flagged_on = app.overdue_flagged_on
    row.updated_at = now


def assessment_row(application_id: str, a: Assessment) -> AssessmentRow:
    return AssessmentRow(
        id=a.id, application_id=application_id, submission=a.submission,
        reviewer_id=a.reviewer_id, reviewer_org=a.reviewer_org,
        criteria={name: {"pass": c.passed, "note": c.note} for name, c in a.criteria.items()},
        summary=a.summary, passed=not a.failed, created_at=a.assessed_at)


def exit_from_row(row: ExitRow) -> ExitReport:
    return ExitReport(
        id=row.id, outcome=ExitOutcome(row.outcome), final_report=row.final_report,
        lessons=row.lessons, recommendations=tuple(row.recommendations),
        kpi_results=row.kpi_results, filed_by=row.filed_by, filed_at=as_utc(row.filed_at),
        status=ExitStatus(row.status), accepted_by=row.accepted_by,
        accepted_at=as_utc(row.accepted_at) if row.accepted_at else None, note=row.note,
        decision_no=row.decision_no, decision_year=row.decision_year,
        certificate_no=row.certificate_no)


def write_exit(row: ExitRow, report: ExitReport) -> None:
    row.outcome, row.final_report, row.lessons = (report.outcome.value,
                                                  report.final_report, report.lessons)
    row.recommendations = list(report.recommendations)
    row.kpi_results = report.kpi_results
    row.status, row.accepted_by, row.accepted_at = (report.status.value, report.accepted_by,
                                                    report.accepted_at)
    row.note, row.decision_no, row.decision_year = (report.note, report.decision_no,
                                                    report.decision_year)
    row.certificate_no = report.certificate_no


def pilot_from_row(row: PilotRow, decisions: list[DecisionRow],
                   reported_periods: frozenset[str] = frozenset(),
                   exit_row: ExitRow | None = None) -> Pilot:
    return Pilot(
        id=row.id, application_id=row.application_id, owner_id=row.owner_id,
        organisation_id=row.organisation_id, firm_name=row.firm_name,
        enterprise_code=row.enterprise_code, sector=row.sector,
        supervising_agency=row.supervising_agency, technology=row.technology,
        requested=_scope(row.requested_regions, row.requested_max_participants,
                         row.requested_max_transaction_vnd),
        limits=_scope(row.limits_regions, row.limits_max_participants,
                      row.limits_max_transaction_vnd),
        conditions=tuple(row.conditions), starts_on=row.starts_on, ends_on=row.ends_on,
        original_ends_on=row.original_ends_on,
        report_frequency=ReportFrequency(row.report_frequency),
        report_grace_days=row.report_grace_days,
        incident_deadline_hours=row.incident_deadline_hours,
        status=PilotStatus(row.status), extensions_used=row.extensions_used,
        decisions=[PilotDecision(DecisionKind(d.kind), d.decision_no, d.decision_year,
                                 d.decided_on, d.decided_by, d.reason) for d in decisions],
        started_on=row.started_on, next_report_due_on=row.next_report_due_on,
        report_overdue=row.report_overdue, report_overdue_since=row.report_overdue_since,
        certificate_no=row.certificate_no, certificate_issued_on=row.certificate_issued_on,
        reported_periods=reported_periods, last_report_period=row.last_report_period,
        breaches_count=row.breaches_count, incidents_count=row.incidents_count,
        suspended_at=as_utc(row.suspended_at) if row.suspended_at else None,
        suspension_reason=row.suspension_reason,
        suspension_incident_id=row.suspension_incident_id,
        terminated_on=row.terminated_on, termination_reason=row.termination_reason,
        expired_on=row.expired_on, exited_on=row.exited_on,
        exit_report=exit_from_row(exit_row) if exit_row is not None else None)


def write_pilot(row: PilotRow, pilot: Pilot, now: datetime) -> None:
    """Copy the pilot's state onto its row."""
    row.limits_regions = list(pilot.limits.regions)
    row.limits_max_participants = pilot.limits.max_participants
    row.limits_max_transaction_vnd = pilot.limits.max_transaction_vnd
    row.conditions = list(pilot.conditions)
    row.starts_on, row.ends_on = pilot.starts_on, pilot.ends_on
    row.extensions_used = pilot.extensions_used
    row.status = pilot.status.value
    row.started_on = pilot.started_on
    row.next_report_due_on = pilot.next_report_due_on
    row.report_overdue = pilot.report_overdue
    row.report_overdue_since = pilot.report_overdue_since
    row.certificate_no = pilot.certificate_no
    row.certificate_issued_on = pilot.certificate_issued_on
    row.last_report_period = pilot.last_report_period
    row.breaches_count, row.incidents_count = pilot.breaches_count, pilot.incidents_count
    row.suspended_at, row.suspension_reason = pilot.suspended_at, pilot.suspension_reason
    row.suspension_incident_id = pilot.suspension_incident_id
    row.terminated_on, row.termination_reason = pilot.terminated_on, pilot.termination_reason
    row.expired_on, row.exited_on = pilot.expired_on, pilot.exited_on
    row.exit_outcome = pilot.exit_outcome.value if pilot.exit_outcome else None
    row.updated_at = now


def report_row(r: Report) -> ReportRow:
    f = r.figures
    return ReportRow(
        id=r.id, pilot_id=r.pilot_id, period=str(r.period),
        period_starts_on=r.period.starts_on, period_ends_on=r.period.ends_on,
        participants=f.participants, transactions_vnd=f.transactions_vnd,
        largest_transaction_vnd=f.largest_transaction_vnd,
        regions=list(f.regions) if f.regions is not None else None, kpis=dict(f.kpis),
        complaints=f.complaints, breaches=[b.as_dict() for b in r.breaches],
        due_on=r.due_on, filed_late=r.filed_late, filed_by=r.filed_by, filed_at=r.filed_at)


def incident_row(i: Incident) -> IncidentRow:
    return IncidentRow(
        id=i.id, pilot_id=i.pilot_id, severity=i.severity.value, description=i.description,
        occurred_at=i.occurred_at, reported_at=i.reported_at, reported_by=i.reported_by,
        reporter_role=i.reporter_role, deadline_at=i.deadline_at,
        reported_in_time=i.reported_in_time, suspended_pilot=i.suspended_pilot)


class SqlRepository:
    """The repository on the request's session; remembers the rows it loaded so that
    saving writes them back."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._applications: dict[str, ApplicationRow] = {}
        self._assessments: dict[str, set[str]] = {}
        self._pilots: dict[str, PilotRow] = {}
        self._exits: dict[str, ExitRow] = {}

    # --- applications ------------------------------------------------------------------
    def application(self, application_id: str, *, for_update: bool = False,
                    skip_locked: bool = False) -> Application | None:
        """The application (locked for the command when ``for_update``); ``skip_locked``:
        None when another transaction holds it (the scheduler's way past a busy one)."""
        stmt = select(ApplicationRow).where(ApplicationRow.id == application_id)
        if for_update:
            stmt = stmt.with_for_update(skip_locked=skip_locked)
        row = self.session.execute(stmt).scalar_one_or_none()
        if row is None:
            return None
        assessments = list(self.session.execute(
            select(AssessmentRow).where(AssessmentRow.application_id == row.id)
            .order_by(AssessmentRow.created_at, AssessmentRow.id)).scalars())
        self._applications[row.id] = row
        self._assessments[row.id] = {a.id for a in assessments}
        return application_from_row(row, assessments)

    def application_row(self, application_id: str) -> ApplicationRow:
        return self._applications[application_id]

    def add_application(self, app: Application, now: datetime) -> None:
        row = ApplicationRow(
            id=app.id, owner_id=app.owner_id, organisation_id=app.organisation_id,
            status=app.status.value, created_at=now, updated_at=now)
        write_application(row, app, now)
        self.session.add(row)
        self._applications[app.id] = row
        self._assessments[app.id] = set()

    def save_application(self, app: Application, now: datetime) -> None:
        row = self._applications[app.id]
        write_application(row, app, now)
        stored = self._assessments[app.id]
        for a in app.assessments:
            if a.id not in stored:
                self.session.add(assessment_row(app.id, a))
                stored.add(a.id)

    # --- pilots ---------------------------------------------------------------------------
    def pilot(self, pilot_id: str, *, for_update: bool = False,
              skip_locked: bool = False) -> Pilot | None:
        """The pilot (locked for the command when ``for_update``); ``skip_locked``: None
        when another transaction holds it (the scheduler's way past a busy pilot)."""
        stmt = select(PilotRow).where(PilotRow.id == pilot_id)
        if for_update:
            stmt = stmt.with_for_update(skip_locked=skip_locked)
        row = self.session.execute(stmt).scalar_one_or_none()
        if row is None:
            return None
        self._pilots[row.id] = row
        periods = frozenset(self.session.execute(
            select(ReportRow.period).where(ReportRow.pilot_id == row.id)).scalars())
        exit_row = self.session.execute(
            select(ExitRow).where(ExitRow.pilot_id == row.id)).scalar_one_or_none()
        if exit_row is not None:
            self._exits[row.id] = exit_row
        return pilot_from_row(row, pilot_decisions(self.session, row.id), periods, exit_row)

    def pilot_row(self, pilot_id: str) -> PilotRow:
        return self._pilots[pilot_id]

    def add_pilot(self, pilot: Pilot, today: date, now: datetime) -> None:
        self.session.flush()  # the application row first: the pilot refers to it
        row = PilotRow(
            id=pilot.id, application_id=pilot.application_id, owner_id=pilot.owner_id,
            organisation_id=pilot.organisation_id, firm_name=pilot.firm_name,
            enterprise_code=pilot.enterprise_code, sector=pilot.sector,
            supervising_agency=pilot.supervising_agency, technology=pilot.technology,
            requested_regions=list(pilot.requested.regions),
            requested_max_participants=pilot.requested.max_participants,
            requested_max_transaction_vnd=pilot.requested.max_transaction_vnd,
            limits_regions=[], limits_max_participants=0, conditions=[],
            starts_on=pilot.starts_on, ends_on=pilot.ends_on,
            original_ends_on=pilot.original_ends_on, status=pilot.status.value,
            report_frequency=pilot.report_frequency.value,
            report_grace_days=pilot.report_grace_days,
            incident_deadline_hours=pilot.incident_deadline_hours,
            decision_no=pilot.decision_no, decision_year=pilot.decision_year,
            approved_on=today, created_at=now, updated_at=now)
        write_pilot(row, pilot, now)
        self.session.add(row)
        self.session.flush()  # before the decisions that refer to it
        self._pilots[pilot.id] = row

    def save_pilot(self, pilot: Pilot, now: datetime) -> None:
        write_pilot(self._pilots[pilot.id], pilot, now)
        report = pilot.exit_report
        if report is not None:
            row = self._exits.get(pilot.id)
            if row is None:
                row = ExitRow(id=report.id, pilot_id=pilot.id, outcome=report.outcome.value,
                              final_report="", lessons="", recommendations=[],
                              status=report.status.value, filed_by=report.filed_by,
                              filed_at=report.filed_at)
                self.session.add(row)
                self._exits[pilot.id] = row
            write_exit(row, report)

    def add_report(self, report: Report) -> None:
        self.session.add(report_row(report))

    def add_incident(self, incident: Incident) -> None:
        self.session.add(incident_row(incident))

    # --- decisions ------------------------------------------------------------------------
    def add_decision(self, d: DecisionRecord) -> None:
        self.session.add(DecisionRow(
            id=d.id, register_name=d.register, decision_no=d.decision_no,
            decision_year=d.decision_year, kind=d.kind, application_id=d.application_id,
            pilot_id=d.pilot_id, decided_by=d.decided_by, decided_on=d.decided_on,
            decided_at=d.decided_at, reason=d.reason))


def pilot_decisions(session: Session, pilot_id: str) -> list[DecisionRow]:
    return list(session.execute(
        select(DecisionRow).where(DecisionRow.pilot_id == pilot_id)
        .order_by(DecisionRow.decided_at, DecisionRow.decision_no)).scalars())

