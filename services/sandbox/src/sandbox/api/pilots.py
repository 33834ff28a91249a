"""Pilots as their firm and the ministry read them: ``/v1/pilots``.

Supervision commands (reports, incidents, suspension, extension, exit) act on the same
pilots (:mod:`sandbox.api.supervision`); this module holds the reads: a pilot, the lists
of pilots, of a pilot's reports and incidents, and its history.
"""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter
from sqlalchemy import select
from sqlmodel import Session

from sandbox import access
from sandbox.api.applications import scope_read
from sandbox.api.deps import ProfilesDep, Reader, SectorQuery, sector_filter
from sandbox.domain.pilots import PilotStatus
from sandbox.models import DecisionRow, ExitRow, IncidentRow, PilotRow, ReportRow
from sandbox.schemas import (
    BreachRead,
    DecisionRead,
    ExitRead,
    IncidentPage,
    IncidentRead,
    PilotDetail,
    PilotPage,
    PilotRead,
    ReportPage,
    ReportRead,
)
from servicekit.audit import HistoryPage, history
from servicekit.auth import Principal
from servicekit.clock import as_utc
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import NotFound
from servicekit.unit_of_work import SessionDep

router = APIRouter(prefix="/v1", tags=["pilots"])

AGGREGATE = "pilot"


def decisions_of(session: Session, pilot_ids: list[str]) -> dict[str, list[DecisionRead]]:
    """Each pilot's numbered decisions, in order (one query for a page of pilots)."""
    out: dict[str, list[DecisionRead]] = defaultdict(list)
    if pilot_ids:
        rows = session.execute(
            select(DecisionRow).where(DecisionRow.pilot_id.in_(pilot_ids))
            .order_by(DecisionRow.decided_at, DecisionRow.id)).scalars()
        for d in rows:
            out[d.pilot_id].append(DecisionRead(kind=d.kind, decision_no=d.decision_no,
                                                decision_year=d.decision_year,
                                                decided_on=d.decided_on))
    return out


def pilot_read(row: PilotRow, decisions: list[DecisionRead]) -> PilotRead:
    return PilotRead(
        id=row.id, application_id=row.application_id, owner_id=row.owner_id,
        organisation_id=row.organisation_id, firm_name=row.firm_name,
        enterprise_code=row.enterprise_code, sector=row.sector,
        supervising_agency=row.supervising_agency, technology=row.technology,
        requested_scope=scope_read(row.requested_regions, row.requested_max_participants,
                                   row.requested_max_transaction_vnd),
        limits=scope_read(row.limits_regions, row.limits_max_participants,
                          row.limits_max_transaction_vnd),
        conditions=list(row.conditions), starts_on=row.starts_on, ends_on=row.ends_on,
        original_ends_on=row.original_ends_on, extensions_used=row.extensions_used,
        status=row.status, decision_no=row.decision_no, decision_year=row.decision_year,
        decisions=decisions, approved_on=row.approved_on, started_on=row.started_on,
        report_frequency=row.report_frequency, next_report_due_on=row.next_report_due_on,
        report_overdue=row.report_overdue,
        incident_deadline_hours=row.incident_deadline_hours,
        certificate_no=row.certificate_no, certificate_issued_on=row.certificate_issued_on,
        last_report_period=row.last_report_period, breaches_count=row.breaches_count,
        incidents_count=row.incidents_count,
        suspended_at=as_utc(row.suspended_at) if row.suspended_at else None,
        suspension_reason=row.suspension_reason,
        suspension_incident_id=row.suspension_incident_id,
        terminated_on=row.terminated_on, termination_reason=row.termination_reason,
        expired_on=row.expired_on, exited_on=row.exited_on, exit_outcome=row.exit_outcome,
        created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at))


def report_read(r: ReportRow) -> ReportRead:
    return ReportRead(
        id=r.id, pilot_id=r.pilot_id, period=r.period, participants=r.participants,
        transactions_vnd=r.transactions_vnd, largest_transaction_vnd=r.largest_transaction_vnd,
        regions=r.regions, kpis=r.kpis, complaints=r.complaints,
        breaches=[BreachRead(**b) for b in r.breaches], due_on=r.due_on,
        filed_late=r.filed_late, created_at=as_utc(r.filed_at))


def incident_read(i: IncidentRow) -> IncidentRead:
    return IncidentRead(
        id=i.id, pilot_id=i.pilot_id, severity=i.severity, description=i.description,
        occurred_at=as_utc(i.occurred_at), reported_at=as_utc(i.reported_at),
        reported_in_time=i.reported_in_time, deadline_at=as_utc(i.deadline_at),
        suspended_pilot=i.suspended_pilot, created_at=as_utc(i.reported_at))


def exit_read(e: ExitRow) -> ExitRead:
    return ExitRead(
        id=e.id, pilot_id=e.pilot_id, outcome=e.outcome, final_report=e.final_report,
        lessons=e.lessons, recommendations=list(e.recommendations),
        kpi_results=e.kpi_results, status=e.status, filed_at=as_utc(e.filed_at),
        accepted_at=as_utc(e.accepted_at) if e.accepted_at else None, note=e.note,
        decision_no=e.decision_no, decision_year=e.decision_year,
        certificate_no=e.certificate_no, created_at=as_utc(e.filed_at))


def visible_pilot(session: Session, pilot_id: str, user: Principal) -> PilotRow:
    row = session.get(PilotRow, pilot_id)
    if row is None or not access.can_read_pilot(user, row.owner_id):
        raise NotFound(f"pilot {pilot_id} not found")
    return row


def pilot_detail(session: Session, row: PilotRow) -> PilotDetail:
    reports = session.execute(select(ReportRow).where(ReportRow.pilot_id == row.id)
                              .order_by(ReportRow.period_starts_on)).scalars()
    incidents = session.execute(select(IncidentRow).where(IncidentRow.pilot_id == row.id)
                                .order_by(IncidentRow.reported_at, IncidentRow.id)).scalars()
    exit_row = session.execute(select(ExitRow).where(ExitRow.pilot_id == row.id)
                               ).scalar_one_or_none()
    base = pilot_read(row, decisions_of(session, [row.id])[row.id])
    return PilotDetail(**base.model_dump(), reports=[report_read(r) for r in reports],
                       incidents=[incident_read(i) for i in incidents],
                       exit=exit_read(exit_row) if exit_row is not None else None)


@router.get("/pilots/{pilot_id}", response_model=PilotDetail,
            summary="One pilot (its firm, ministry roles): status, conditions, limits, "
                    "dates, decisions, reports and incidents")
def read_pilot(pilot_id: str, session: SessionDep, user: Reader) -> PilotDetail:
    return pilot_detail(session, visible_pilot(session, pilot_id, user))


@router.get("/pilots", response_model=PilotPage,
            summary="Pilots: a firm's own, every pilot for the ministry roles; with "
                    "next_report_due_on and report_overdue")
def read_pilots(session: SessionDep, user: Reader, profiles: ProfilesDep,
                status: PilotStatus | None = None, sector: SectorQuery = None,
                limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> PilotPage:
    sector_filter(profiles, sector)
    stmt = access.scope_pilots(user, select(PilotRow))
    if status is not None:
        stmt = stmt.where(PilotRow.status == status.value)
    if sector is not None:
        stmt = stmt.where(PilotRow.sector == sector)
    rows, next_cursor = keyset_page(session, stmt, PilotRow.created_at, PilotRow.id,
                                    limit=limit, cursor=cursor)
    decisions = decisions_of(session, [r.id for r in rows])
    return PilotPage(items=[pilot_read(r, decisions[r.id]) for r in rows],
                     next_cursor=next_cursor)


@router.get("/pilots/{pilot_id}/history", response_model=HistoryPage,
            summary="The pilot's audit trail")
def read_pilot_history(pilot_id: str, session: SessionDep, user: Reader,
                       limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    visible_pilot(session, pilot_id, user)
    return history(session, AGGREGATE, pilot_id, limit=limit, cursor=cursor)


@router.get("/pilots/{pilot_id}/reports", response_model=ReportPage,
            summary="The pilot's periodic reports, newest filed first, with their breaches "
                    "(its firm, ministry roles)")
def read_pilot_reports(pilot_id: str, session: SessionDep, user: Reader,
                       limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> ReportPage:
    visible_pilot(session, pilot_id, user)
    stmt = select(ReportRow).where(ReportRow.pilot_id == pilot_id)
    rows, next_cursor = keyset_page(session, stmt, ReportRow.filed_at, ReportRow.id,
                                    limit=limit, cursor=cursor)
    return ReportPage(items=[report_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/pilots/{pilot_id}/incidents", response_model=IncidentPage,
            summary="The pilot's incidents, newest reported first, with whether each was "
                    "reported within the sector's deadline (its firm, ministry roles)")
def read_pilot_incidents(pilot_id: str, session: SessionDep, user: Reader,
                         limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
                         ) -> IncidentPage:
    visible_pilot(session, pilot_id, user)
    stmt = select(IncidentRow).where(IncidentRow.pilot_id == pilot_id)
    rows, next_cursor = keyset_page(session, stmt, IncidentRow.reported_at, IncidentRow.id,
                                    limit=limit, cursor=cursor)
    return IncidentPage(items=[incident_read(i) for i in rows], next_cursor=next_cursor)
