"""Grants: milestones, tranches, results, breaches and closure: ``/v1/grants``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlmodel import Session

from grants import access
from grants.api.deps import ProgramManager, RepositoryDep, Researcher
from grants.domain.grants import (
    Author,
    Grant,
    GrantStatus,
    PartialCompletion,
)
from grants.handlers import GRANT
from grants.handlers import grants as handlers
from grants.models import ApplicationRow, BreachRow, GrantRow, ResultRow
from grants.repository import SqlRepository, grant_view, grant_views
from grants.schemas import (
    AuthorOut,
    BreachCreate,
    BreachRead,
    GrantClose,
    GrantPage,
    GrantRead,
    MilestoneRead,
    MilestoneReport,
    Reason,
    Reschedule,
    ResultCreate,
    ResultPage,
    ResultRead,
    TeamMemberOut,
)
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal, require_roles
from servicekit.clock import as_utc
from servicekit.hotpath.reads import ReadsDep
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import NotFound
from servicekit.responses import OrjsonResponse, model_response
from servicekit.unit_of_work import SessionDep, TodayDep, UnitOfWork, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["grants"])

# Whoever may ever see a grant: its team, its institution, the ministry roles, finance.
GrantReader = Annotated[Principal, Depends(require_roles(
    "researcher", "institution", "program_manager", "reviewer", "auditor", "admin",
    "finance"))]


def to_read(session: Session, row: GrantRow, grant: Grant, today: date) -> GrantRead:
    title = session.execute(select(ApplicationRow.title).where(
        ApplicationRow.id == grant.application_id)).scalar_one()
    breaches = session.execute(select(BreachRow).where(BreachRow.grant_id == grant.id)
                               .order_by(BreachRow.created_at)).scalars().all()
    return grant_read(row, grant, title, breaches, today)


def grant_read(row: Any, grant: Grant, title: str, breaches: Sequence[Any],
               today: date) -> GrantRead:
    """The API's view of ``grant`` (``row``, ``breaches``: ORM objects or Core rows)."""
    return GrantRead(
        id=grant.id, application_id=grant.application_id, call_id=grant.call_id,
        agency_id=grant.agency_id, institution_id=grant.institution_id, title=title,
        awarded_vnd=grant.awarded_vnd, disbursed_vnd=grant.disbursed_vnd,
        cancelled_vnd=grant.cancelled_vnd, refund_due_vnd=grant.refund_due_vnd,
        status=grant.status.value, outcome=grant.outcome.value if grant.outcome else None,
        liability=grant.liability.value if grant.liability else None,
        justification=grant.justification, breach=grant.breach_stated,
        procedures_followed=grant.procedures_followed,
        award_decision_no=grant.award_decision.decision_no if grant.award_decision else None,
        award_decision_year=grant.award_decision.year if grant.award_decision else None,
        decision_no=grant.decision.decision_no if grant.decision else None,
        decision_year=grant.decision.year if grant.decision else None,
        team=[TeamMemberOut(researcher_id=t.researcher_id, name=t.name, role=t.role,
                            contribution_bp=t.contribution_bp) for t in grant.team],
        milestones=[
            MilestoneRead(id=m.id, seq=m.seq, title=m.title, deliverable=m.deliverable,
                          verification=m.verification, tranche_bp=m.tranche_bp,
                          tranche_vnd=m.tranche_vnd, released_vnd=m.released_vnd,
                          cancelled_vnd=m.cancelled_vnd, completion_bp=m.completion_bp,
                          due_date=m.due_date, status=m.status.value,
                          overdue=m.overdue(today), report=m.report,
                          reject_reason=m.reject_reason)
            for m in grant.milestones
        ],
        breaches=[BreachRead(id=b.id, grant_id=row.id, kind=b.kind, description=b.description,
                             recorded_by=b.recorded_by, created_at=as_utc(b.created_at))
                  for b in breaches],
        created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at),
        closed_at=as_utc(row.closed_at) if row.closed_at else None,
    )


def answer(uow: UnitOfWork, repo: SqlRepository, grant: Grant) -> OrjsonResponse:
    """Commit a grant command with the grant as the API shows it."""
    return uow.commit(to_read(uow.session, repo.row(grant), grant, uow.today))


@router.get("/grants/{grant_id}", response_model=GrantRead,
            summary="Lump sum, exact tranche schedule, disbursed, status (team, institution, "
                    "ministry roles, finance)")
async def read_grant(grant_id: str, reads: ReadsDep, user: CurrentPrincipal, today: TodayDep):
    # The busiest read: one round trip on the event loop (the same rules as ``visible``).
    loaded = await reads.load(grant_view(grant_id))
    applicant = loaded[0].applicant_id if loaded and user.has("researcher") else None
    if loaded is None or not access.can_read_grant_record(user, loaded[1], applicant):
        raise NotFound(f"grant {grant_id} not found")
    row, grant, breaches = loaded
    return model_response(grant_read(row, grant, row.title, breaches, today))


@router.post("/grants/{grant_id}/milestones/{milestone_id}/report", response_model=GrantRead,
             summary="Report a deliverable with its evidence (no invoices, no receipts)")
def report_milestone(grant_id: str, milestone_id: str, body: MilestoneReport,
                     user: Researcher, uow: UnitOfWorkDep, repo: RepositoryDep):
    grant = handlers.report_milestone(uow, repo, user, grant_id, milestone_id,
                                      body.model_dump(mode="json"))
    return answer(uow, repo, grant)


@router.post("/grants/{grant_id}/milestones/{milestone_id}/accept", response_model=GrantRead,
             summary="Accept a reported deliverable: releases its tranche")
def accept_milestone(grant_id: str, milestone_id: str, user: ProgramManager,
                     uow: UnitOfWorkDep, repo: RepositoryDep):
    grant = handlers.accept_milestone(uow, repo, user, grant_id, milestone_id)
    return answer(uow, repo, grant)


@router.post("/grants/{grant_id}/milestones/{milestone_id}/reject", response_model=GrantRead,
             summary="Reject a report with a reason; the team may report again")
def reject_milestone(grant_id: str, milestone_id: str, body: Reason, user: ProgramManager,
                     uow: UnitOfWorkDep, repo: RepositoryDep):
    grant = handlers.reject_milestone(uow, repo, user, grant_id, milestone_id, body.reason)
    return answer(uow, repo, grant)


@router.post("/grants/{grant_id}/milestones/{milestone_id}/reschedule",
             response_model=GrantRead,
             summary="Move a due date with a reason: research delay is tolerated")
def reschedule_milestone(grant_id: str, milestone_id: str, body: Reschedule,
                         user: ProgramManager, uow: UnitOfWorkDep, repo: RepositoryDep):
    grant = handlers.reschedule_milestone(uow, repo, user, grant_id, milestone_id,
                                          body.due_date, body.reason)
    return answer(uow, repo, grant)


@router.post("/grants/{grant_id}/results", status_code=201, response_model=ResultRead,
             summary="Register a research result (owned by the grant's institution)")
def register_result(grant_id: str, body: ResultCreate, user: Researcher, uow: UnitOfWorkDep,
                    repo: RepositoryDep):
    grant, result = handlers.register_result(
        uow, repo, user, grant_id, kind=body.kind, title=body.title,
        authors=[Author(a.researcher_id, a.name, a.contribution_bp) for a in body.authors])
    return uow.commit(result_read(uow.session.get(ResultRow, result.id), grant.institution_id),
                      status_code=201)


def result_read(r: ResultRow, institution_id: str) -> ResultRead:
    return ResultRead(id=r.id, grant_id=r.grant_id, institution_id=institution_id, kind=r.kind,
                      title=r.title, authors=[AuthorOut(**a) for a in r.authors],
                      registered_by=r.registered_by, created_at=as_utc(r.created_at))


@router.get("/grants/{grant_id}/results", response_model=ResultPage,
            summary="The grant's registered results")
def read_results(grant_id: str, session: SessionDep, user: CurrentPrincipal,
                 limit: Limit = DEFAULT_LIMIT, cursor: str | None = None):
    grant = handlers.visible_grant(SqlRepository(session), user, grant_id)
    rows, next_cursor = keyset_page(
        session, select(ResultRow).where(ResultRow.grant_id == grant.id),
        ResultRow.created_at, ResultRow.id, limit=limit, cursor=cursor, newest_first=False)
    return ResultPage(items=[result_read(r, grant.institution_id) for r in rows],
                      next_cursor=next_cursor)


@router.post("/grants/{grant_id}/breaches", status_code=201, response_model=BreachRead,
             summary="Record a breach found on the grant (bars failed_in_good_faith)")
def record_breach(grant_id: str, body: BreachCreate, user: ProgramManager, uow: UnitOfWorkDep,
                  repo: RepositoryDep):
    breach = handlers.record_breach(uow, repo, user, grant_id, kind=body.kind,
                                    description=body.description)
    return uow.commit(BreachRead(id=breach.id, grant_id=grant_id, kind=breach.kind.value,
                                 description=breach.description, recorded_by=breach.recorded_by,
                                 created_at=breach.recorded_at), status_code=201)


@router.post("/grants/{grant_id}/close", response_model=GrantRead,
             summary="Close with an outcome and its consequences, in one transaction")
def close_grant(grant_id: str, body: GrantClose, user: ProgramManager, uow: UnitOfWorkDep,
                repo: RepositoryDep):
    grant = handlers.close_grant(
        uow, repo, user, grant_id, outcome=body.outcome, justification=body.justification,
        procedures_followed=body.procedures_followed, breach=body.breach,
        refund_vnd=body.refund_vnd,
        partial=[PartialCompletion(p.milestone_id, p.completion_bp)
                 for p in body.partial or []])
    return answer(uow, repo, grant)


@router.get("/grants/{grant_id}/history", response_model=HistoryPage,
            summary="The grant's audit trail")
def read_grant_history(grant_id: str, session: SessionDep, user: CurrentPrincipal,
                       limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    handlers.visible_grant(SqlRepository(session), user, grant_id)
    return history(session, GRANT, grant_id, limit=limit, cursor=cursor)


def _grants_page(session: Session, user: Principal, today: date, *, status: str | None,
                 call_id: str | None, institution_id: str | None, agency_id: str | None,
                 limit: int, cursor: str | None) -> GrantPage:
    stmt = access.scope_grants(user, select(GrantRow))
    for column, value in ((GrantRow.status, status), (GrantRow.call_id, call_id),
                          (GrantRow.institution_id, institution_id),
                          (GrantRow.agency_id, agency_id)):
        if value:
            stmt = stmt.where(column == value)
    rows, next_cursor = keyset_page(session, stmt, GrantRow.created_at, GrantRow.id,
                                    limit=limit, cursor=cursor)
    return GrantPage(items=[grant_read(row, grant, title, breaches, today)
                            for row, grant, title, breaches in grant_views(session, rows)],
                     next_cursor=next_cursor)


@router.get("/grants", response_model=GrantPage,
            summary="Grants you may see (a researcher's, an institution's, an agency's; "
                    "all for reviewers, finance, auditors, admins), by status and call")
def read_grants(session: SessionDep, user: GrantReader, today: TodayDep,
                status: GrantStatus | None = None, call_id: str | None = None,
                institution_id: str | None = None, agency_id: str | None = None,
                limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> GrantPage:
    return _grants_page(session, user, today, status=status.value if status else None,
                        call_id=call_id, institution_id=institution_id, agency_id=agency_id,
                        limit=limit, cursor=cursor)


@router.get("/institutions/{institution_id}/grants", response_model=GrantPage,
            summary="An institution's grants")
def read_institution_grants(
    institution_id: str, session: SessionDep, today: TodayDep,
    user: Annotated[Principal, Depends(require_roles("institution", "program_manager",
                                                     "reviewer", "auditor", "admin"))],
    status: GrantStatus | None = None, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None,
) -> GrantPage:
    if not access.may_list_institution_grants(user, institution_id):
        raise NotFound(f"institution {institution_id} not found")
    return _grants_page(session, user, today, status=status.value if status else None,
                        call_id=None, institution_id=institution_id, agency_id=None,
                        limit=limit, cursor=cursor)
