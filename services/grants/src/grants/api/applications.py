"""Applications, reviews and decisions: ``/v1/applications``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import func, select
from sqlmodel import Session

from grants import access
from grants.api.deps import Institution, ProgramManager, RepositoryDep, Researcher, Reviewer
from grants.domain.applications import (
    REVIEWABLE,
    Application,
    ApplicationStatus,
    MilestonePlan,
    TeamMember,
)
from grants.domain.assignments import ACTIVE
from grants.domain.calls import Call, CallStatus, ReviewMode
from grants.handlers import APPLICATION
from grants.handlers import applications as handlers
from grants.handlers.applications import ApplicationTerms
from grants.handlers.calls import visible_call
from grants.models import ApplicationRow, AssignmentRow, CallRow, ReviewRow
from grants.repository import SqlRepository, active_assignment_counts, applications_from_rows
from grants.schemas import (
    ApplicationCreate,
    ApplicationPage,
    ApplicationRead,
    ApplicationSummary,
    Approve,
    Decision,
    MilestonePlanOut,
    Reason,
    ReviewCreate,
    ReviewPage,
    ReviewRead,
    TeamMemberOut,
    TeamNameRole,
)
from servicekit.audit import HistoryEntry, HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal, require_roles
from servicekit.clock import as_utc
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import Forbidden
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["applications"])

# Whoever may ever see an application: its team, its institution, the ministry roles.
ApplicationReader = Annotated[Principal, Depends(require_roles(
    "researcher", "institution", "program_manager", "reviewer", "auditor", "admin"))]


def read_of(session: Session, row: ApplicationRow, app: Application,
            call: Call) -> ApplicationRead:
    reviewers = active_assignment_counts(session, [app.id]).get(app.id, 0)
    return to_read(row, app, call, reviewers)


def to_read(row: ApplicationRow, app: Application, call: Call,
            reviewers: int) -> ApplicationRead:
    """``reviewers``: its assignments still counted (assigned, accepted, reviewed)."""
    return ApplicationRead(
        id=app.id, call_id=app.call_id, agency_id=app.agency_id,
        applicant_id=app.applicant_id, institution_id=app.institution_id, title=app.title,
        abstract=app.abstract, requested_vnd=app.requested_vnd,
        risk_level=app.risk_level.value,
        team=[TeamMemberOut(researcher_id=t.researcher_id, name=t.name, role=t.role,
                            contribution_bp=t.contribution_bp) for t in app.team],
        milestones=[MilestonePlanOut(title=m.title, deliverable=m.deliverable,
                                     verification=m.verification, due_date=m.due_date,
                                     tranche_bp=m.tranche_bp) for m in app.milestones],
        status=app.status.value, version=app.version, reviews_count=len(app.reviews),
        reviews_needed=app.reviews_needed(call), reviewers_assigned=reviewers,
        needs_reviewers=(call.assigned_review and call.reviewing
                         and app.status in REVIEWABLE and reviewers < app.reviews_needed(call)),
        endorsed_by=app.endorsement.endorsed_by if app.endorsement else None,
        endorsed_at=app.endorsement.endorsed_at if app.endorsement else None,
        withdrawal_reason=app.withdrawal_reason,
        withdrawn_at=as_utc(row.withdrawn_at) if row.withdrawn_at else None,
        awarded_vnd=app.awarded_vnd,
        decision_reason=app.decision_reason, grant_id=app.grant_id,
        decision_no=app.decision.decision_no if app.decision else None,
        decision_year=app.decision.year if app.decision else None,
        created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at),
        submitted_at=as_utc(row.submitted_at) if row.submitted_at else None,
        decided_at=as_utc(row.decided_at) if row.decided_at else None,
    )


def terms_of(body: ApplicationCreate) -> ApplicationTerms:
    return ApplicationTerms(
        call_id=body.call_id, institution_id=body.institution_id, title=body.title,
        abstract=body.abstract, requested_vnd=body.requested_vnd, risk_level=body.risk_level,
        team=tuple(TeamMember(t.researcher_id, t.name, t.role, t.contribution_bp)
                   for t in body.team),
        milestones=tuple(MilestonePlan(m.title, m.deliverable, m.verification, m.due_date,
                                       m.tranche_bp) for m in body.milestones))


@router.post("/applications", status_code=201, response_model=ApplicationRead,
             summary="Draft an application",
             responses={404: {"description": "The call named by ``call_id`` does not exist "
                                             "or is not published."}})
def create_application(body: ApplicationCreate, user: Researcher, uow: UnitOfWorkDep,
                       repo: RepositoryDep):
    app, call = handlers.create_application(uow, repo, user, terms_of(body))
    return uow.commit(to_read(repo.application_row(app), app, call, 0), status_code=201)


@router.put("/applications/{application_id}", response_model=ApplicationRead,
            summary="Edit a draft (the creation body; call_id and institution_id stay); "
                    "the history keeps each version's changes")
def edit_application(application_id: str, body: ApplicationCreate, user: Researcher,
                     uow: UnitOfWorkDep, repo: RepositoryDep):
    app, call = handlers.edit_application(uow, repo, user, application_id, terms_of(body))
    return uow.commit(to_read(repo.application_row(app), app, call, 0))


@router.post("/applications/{application_id}/endorse", response_model=ApplicationRead,
             summary="The host institution endorses a draft")
def endorse_application(application_id: str, user: Institution, uow: UnitOfWorkDep,
                        repo: RepositoryDep):
    app = handlers.endorse_application(uow, repo, user, application_id)
    return uow.commit(to_read(repo.application_row(app), app, handlers.call_of(repo, app), 0))


@router.post("/applications/{application_id}/withdraw", response_model=ApplicationRead,
             summary="The owner withdraws the application before the decision, with a reason")
def withdraw_application(application_id: str, body: Reason, user: Researcher,
                         uow: UnitOfWorkDep, repo: RepositoryDep):
    app = handlers.withdraw_application(uow, repo, user, application_id, body.reason)
    return uow.commit(read_of(uow.session, repo.application_row(app), app,
                              handlers.call_of(repo, app)))


@router.post("/applications/{application_id}/submit", response_model=ApplicationRead,
             summary="Submit a draft while the call is open")
def submit_application(application_id: str, user: Researcher, uow: UnitOfWorkDep,
                       repo: RepositoryDep):
    app, call = handlers.submit_application(uow, repo, user, application_id)
    return uow.commit(to_read(repo.application_row(app), app, call, 0))


@router.post("/applications/{application_id}/reviews", status_code=201,
             response_model=ReviewRead, summary="Review a submitted application")
def create_review(application_id: str, body: ReviewCreate, user: Reviewer,
                  uow: UnitOfWorkDep, repo: RepositoryDep):
    review_id = handlers.create_review(
        uow, repo, user, application_id, scores=dict(body.scores),
        recommendation=body.recommendation, comment=body.comment,
        conflict_of_interest=body.conflict_of_interest)
    return uow.commit(review_read(repo.review_row(review_id)), status_code=201)


def review_read(r: ReviewRow) -> ReviewRead:
    return ReviewRead(id=r.id, application_id=r.application_id, reviewer_id=r.reviewer_id,
                      scores=r.scores, recommendation=r.recommendation, comment=r.comment,
                      created_at=as_utc(r.created_at))


@router.get("/applications/{application_id}/reviews", response_model=ReviewPage,
            summary="Reviews: all to the agency, auditors and admins; a reviewer sees only "
                    "their own until the decision")
def read_reviews(application_id: str, session: SessionDep, user: CurrentPrincipal,
                 limit: Limit = DEFAULT_LIMIT, cursor: str | None = None):
    app = handlers.visible(SqlRepository(session), user, application_id)
    stmt = select(ReviewRow).where(ReviewRow.application_id == app.id)
    sees = access.reviews_seen_by(user, app)
    if sees == "none":
        raise Forbidden("reviews are for the ministry")
    if sees == "own":
        stmt = stmt.where(ReviewRow.reviewer_id == user.sub)
    rows, next_cursor = keyset_page(session, stmt, ReviewRow.created_at, ReviewRow.id,
                                    limit=limit, cursor=cursor, newest_first=False)
    return ReviewPage(items=[review_read(r) for r in rows], next_cursor=next_cursor)


@router.post("/applications/{application_id}/decision", response_model=ApplicationRead,
             summary="Approve (creating a grant) or reject")
def decide_application(application_id: str, body: Annotated[Decision, Body()],
                       user: ProgramManager, uow: UnitOfWorkDep, repo: RepositoryDep):
    app, call = handlers.decide_application(
        uow, repo, user, application_id,
        awarded_vnd=body.awarded_vnd if isinstance(body, Approve) else None,
        reason=body.reason)
    return uow.commit(read_of(uow.session, repo.application_row(app), app, call))


@router.get("/applications/{application_id}",
            response_model=ApplicationRead | ApplicationSummary,
            summary="One application (team, institution, ministry); an assigned reviewer "
                    "reads its summary until they declare no conflict of interest")
def read_application(application_id: str, session: SessionDep, user: CurrentPrincipal):
    repo = SqlRepository(session)
    app, view = handlers.viewed(repo, user, application_id)
    call = handlers.call_of(repo, app)
    if view == access.View.SUMMARY:
        return ApplicationSummary(
            id=app.id, call_id=app.call_id, call_title=call.title, title=app.title,
            institution_id=app.institution_id,
            team=[TeamNameRole(name=t.name, role=t.role) for t in app.team])
    return read_of(session, repo.application_row(app), app, call)


@router.get("/applications/{application_id}/history", response_model=HistoryPage,
            summary="The application's audit trail")
def read_application_history(application_id: str, session: SessionDep,
                             user: CurrentPrincipal, limit: Limit = 100,
                             cursor: str | None = None) -> HistoryPage:
    app = handlers.visible(SqlRepository(session), user, application_id)
    page = history(session, APPLICATION, application_id, limit=limit, cursor=cursor)
    sees = access.reviews_seen_by(user, app)
    if sees != "all":  # review is blind: who reviewed, and how, stays with the ministry
        page.items = [_redacted(e) if e.action == "review" and not (
            sees == "own" and e.actor == user.sub) else e for e in page.items]
    return page


def _redacted(entry: HistoryEntry) -> HistoryEntry:
    """A review's step without its reviewer or recommendation: that it happened, when."""
    return entry.model_copy(update={"actor": "(reviewer)", "org": "", "data": None})


def _page(session: Session, user: Principal, *, call_id: str | None, status: str | None,
          institution_id: str | None, limit: int, cursor: str | None,
          needs_reviewers: bool | None = None) -> ApplicationPage:
    stmt = access.scope_applications(user, select(ApplicationRow))
    if needs_reviewers is not None:
        stmt = stmt.where(lacking_reviewers() if needs_reviewers else ~lacking_reviewers())
    if call_id:
        stmt = stmt.where(ApplicationRow.call_id == call_id)
    if status:
        stmt = stmt.where(ApplicationRow.status == status)
    if institution_id:
        stmt = stmt.where(ApplicationRow.institution_id == institution_id)
    rows, next_cursor = keyset_page(session, stmt, ApplicationRow.created_at, ApplicationRow.id,
                                    limit=limit, cursor=cursor)
    calls: dict[str, Call] = {}
    reviewers = active_assignment_counts(session, [r.id for r in rows])
    repo = SqlRepository(session)
    items = []
    for r, app in zip(rows, applications_from_rows(session, rows), strict=True):
        if app.call_id not in calls:
            calls[app.call_id] = handlers.call_of(repo, app)
        items.append(to_read(r, app, calls[app.call_id], reviewers.get(app.id, 0)))
    return ApplicationPage(items=items, next_cursor=next_cursor)


def lacking_reviewers():
    """SQL of ``needs_reviewers``: submitted, in a call reviewed by assignment and not
    cancelled, with fewer reviewers counted than the reviews it needs."""
    counted = (select(func.count()).select_from(AssignmentRow)
               .where(AssignmentRow.application_id == ApplicationRow.id,
                      AssignmentRow.status.in_([s.value for s in ACTIVE]))
               .scalar_subquery())
    return (ApplicationRow.status.in_([s.value for s in REVIEWABLE])
            & ApplicationRow.call_id.in_(select(CallRow.id).where(
                CallRow.review_mode == ReviewMode.ASSIGNED.value,
                CallRow.status != CallStatus.CANCELLED.value))
            & (ApplicationRow.reviews_needed > counted))


@router.get("/applications", response_model=ApplicationPage,
            summary="Applications you may see: a researcher's own, an institution's, an "
                    "agency's; reviewers see submitted ones without conflicts (in calls "
                    "reviewed by assignment, those they declared no conflict with)")
def read_applications(
    session: SessionDep, user: ApplicationReader, call_id: str | None = None,
    status: ApplicationStatus | None = None, institution_id: str | None = None,
    needs_reviewers: Annotated[bool | None, Query(description=(
        "true: submitted applications of calls reviewed by assignment (not cancelled) with "
        "fewer reviewers assigned than the reviews they need; false: the others"))] = None,
    limit: Limit = DEFAULT_LIMIT, cursor: str | None = None,
) -> ApplicationPage:
    return _page(session, user, call_id=call_id, status=status.value if status else None,
                 institution_id=institution_id, limit=limit, cursor=cursor,
                 needs_reviewers=needs_reviewers)


@router.get("/calls/{call_id}/applications", response_model=ApplicationPage,
            summary="A call's applications (ministry roles)")
def read_call_applications(
    call_id: str, session: SessionDep,
    user: Annotated[Principal, Depends(require_roles("program_manager", "reviewer", "auditor",
                                                     "admin"))],
    status: ApplicationStatus | None = None, limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> ApplicationPage:
    visible_call(SqlRepository(session), user, call_id)  # drafts: their agency's
    return _page(session, user, call_id=call_id, status=status.value if status else None,
                 institution_id=None, limit=limit, cursor=cursor)
