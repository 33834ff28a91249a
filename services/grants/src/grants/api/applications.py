"""Applications, reviews and decisions: ``/v1/applications``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import func, select
from sqlmodel import Session

from grants import access, events
from grants.api.deps import Institution, ProgramManager, Researcher, Reviewer
from grants.domain.applications import (
    REVIEWABLE,
    Application,
    ApplicationStatus,
    ConflictOfInterest,
    MilestonePlan,
    Review,
    TeamMember,
)
from grants.domain.assignments import ACTIVE
from grants.domain.calls import Call, CallStatus, ReviewMode
from grants.domain.grants import Grant
from grants.handlers import calls as call_handlers
from grants.handlers.assignments import release_open
from grants.models import ApplicationRow, AssignmentRow, CallRow, ReviewRow
from grants.repository import (
    SqlRepository,
    active_assignment_counts,
    add_application,
    add_grant,
    add_review,
    applications_from_rows,
    call_from_row,
    get_call_row,
    load_application,
    reviewer_assignment,
    save_application,
    save_assignment,
    save_call,
    save_draft_terms,
)
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
from servicekit.decisions import grants_register
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["applications"])

AGGREGATE = "application"
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


def call_of(session: Session, app: Application, *, for_share: bool = False) -> Call:
    """The application's call; ``for_share``: for a command that relies on the call's
    state (open, not cancelled), which then cannot change before the command commits."""
    return call_from_row(get_call_row(session, app.call_id, for_share=for_share))


def viewed(session: Session, application_id: str, p: Principal, *,
           for_update: bool = False) -> tuple[ApplicationRow, Application, access.View]:
    """The application and how much of it ``p`` reads; 404 when nothing."""
    loaded = load_application(session, application_id, for_update=for_update)
    if loaded is None:
        raise NotFound(f"application {application_id} not found")
    row, app = loaded
    assigned_review, assignment = False, None
    if p.has("reviewer"):
        assigned_review = call_of(session, app).assigned_review
        if assigned_review:
            found = reviewer_assignment(session, app.id, p.sub, p.org)
            assignment = found[1] if found else None
    view = access.application_view(p, app, assigned_review=assigned_review,
                                   assignment=assignment)
    if view is None:
        raise NotFound(f"application {application_id} not found")
    return row, app, view


def visible(session: Session, application_id: str, p: Principal, *,
            for_update: bool = False) -> tuple[ApplicationRow, Application]:
    """The whole application; an assignee who has not declared yet is refused (403)."""
    row, app, view = viewed(session, application_id, p, for_update=for_update)
    if view != access.View.FULL:
        raise Forbidden("declare whether you have a conflict of interest first: until then "
                        "an assigned reviewer reads only the application's summary")
    return row, app


@router.post("/applications", status_code=201, response_model=ApplicationRead,
             summary="Draft an application",
             responses={404: {"description": "The call named by ``call_id`` does not exist "
                                             "or is not published."}})
def create_application(body: ApplicationCreate, user: Researcher, uow: UnitOfWorkDep):
    call_row = get_call_row(uow.session, body.call_id)
    if call_row is None or not call_from_row(call_row).published:
        raise NotFound(f"call {body.call_id} not found")
    call = call_from_row(call_row)
    app = Application.draft(
        id=str(uuid.uuid4()), call=call, applicant_id=user.sub,
        institution_id=body.institution_id, title=body.title, abstract=body.abstract,
        requested_vnd=body.requested_vnd, risk_level=body.risk_level,
        team=_team(body), milestones=_milestones(body), today=uow.today,
    )
    row = add_application(uow.session, app, call, now=uow.now)
    uow.record(AGGREGATE, app.id, "draft", to_status=app.status.value, new=True)
    return uow.commit(to_read(row, app, call, 0), status_code=201)


def _team(body: ApplicationCreate) -> list[TeamMember]:
    return [TeamMember(t.researcher_id, t.name, t.role, t.contribution_bp) for t in body.team]


def _milestones(body: ApplicationCreate) -> list[MilestonePlan]:
    return [MilestonePlan(m.title, m.deliverable, m.verification, m.due_date, m.tranche_bp)
            for m in body.milestones]


def owned(session: Session, application_id: str, user: Principal,
          action: str) -> tuple[ApplicationRow, Application]:
    """The application, locked, if ``user`` drafted it (its owner)."""
    row, app = visible(session, application_id, user, for_update=True)
    if not access.owns_application(user, app):
        raise Forbidden(f"only the researcher who drafted the application {action} it")
    return row, app


@router.put("/applications/{application_id}", response_model=ApplicationRead,
            summary="Edit a draft (the creation body; call_id and institution_id stay); "
                    "the history keeps each version's changes")
def edit_application(application_id: str, body: ApplicationCreate, user: Researcher,
                     uow: UnitOfWorkDep):
    row, app = owned(uow.session, application_id, user, "edits")
    call = call_of(uow.session, app)
    changes = app.revise(
        call=call, call_id=body.call_id, institution_id=body.institution_id,
        title=body.title, abstract=body.abstract, requested_vnd=body.requested_vnd,
        risk_level=body.risk_level, team=_team(body), milestones=_milestones(body),
        today=uow.today)
    save_draft_terms(uow.session, row, app, call, now=uow.now)
    uow.record(AGGREGATE, app.id, "edit", from_status=app.status.value,
               to_status=app.status.value, data={"version": app.version, "changes": changes})
    return uow.commit(to_read(row, app, call, 0))


@router.post("/applications/{application_id}/endorse", response_model=ApplicationRead,
             summary="The host institution endorses a draft")
def endorse_application(application_id: str, user: Institution, uow: UnitOfWorkDep):
    row, app = visible(uow.session, application_id, user, for_update=True)
    if not access.hosts_application(user, app):
        raise Forbidden("only the host institution (its org is the application's "
                        "institution_id) endorses the application")
    app.endorse(endorsed_by=user.sub, now=uow.now)
    save_application(row, app, now=uow.now)
    uow.record(AGGREGATE, app.id, "endorse", from_status=app.status.value,
               to_status=app.status.value, data={"version": app.version})
    events.publish(uow, app.events)
    return uow.commit(to_read(row, app, call_of(uow.session, app), 0))


@router.post("/applications/{application_id}/withdraw", response_model=ApplicationRead,
             summary="The owner withdraws the application before the decision, with a reason")
def withdraw_application(application_id: str, body: Reason, user: Researcher,
                         uow: UnitOfWorkDep):
    row, app = owned(uow.session, application_id, user, "withdraws")
    before = app.status.value
    app.withdraw(body.reason, uow.now)
    save_application(row, app, now=uow.now)
    uow.record(AGGREGATE, app.id, "withdraw", from_status=before, to_status=app.status.value,
               reason=body.reason)
    events.publish(uow, app.events)
    release_open(uow, SqlRepository(uow.session), "the application was withdrawn",
                 application_id=app.id)
    return uow.commit(read_of(uow.session, row, app, call_of(uow.session, app)))


@router.post("/applications/{application_id}/submit", response_model=ApplicationRead,
             summary="Submit a draft while the call is open")
def submit_application(application_id: str, user: Researcher, uow: UnitOfWorkDep):
    row, app = owned(uow.session, application_id, user, "submits")
    call = call_of(uow.session, app, for_share=True)
    app.submit(call, uow.now)
    save_application(row, app, now=uow.now)
    uow.record(AGGREGATE, app.id, "submit", from_status="draft", to_status=app.status.value)
    events.publish(uow, app.events)
    return uow.commit(to_read(row, app, call, 0))


@router.post("/applications/{application_id}/reviews", status_code=201,
             response_model=ReviewRead, summary="Review a submitted application")
def create_review(application_id: str, body: ReviewCreate, user: Reviewer,
                  uow: UnitOfWorkDep):
    loaded = load_application(uow.session, application_id, for_update=True)
    if loaded is None or loaded[1].status == ApplicationStatus.DRAFT:
        raise NotFound(f"application {application_id} not found")
    row, app = loaded
    before = app.status.value
    call = call_of(uow.session, app, for_share=True)
    assigned = None
    if call.assigned_review:
        # Only an assignee reviews; to any other reviewer the application does not exist.
        assigned = reviewer_assignment(uow.session, app.id, user.sub, user.org,
                                       for_update=True)
        if assigned is None:
            raise NotFound(f"application {application_id} not found")
    call.check_reviewing()
    if assigned is not None:
        assigned[1].start_review()
    review = Review(user.sub, user.org, dict(body.scores), body.recommendation, body.comment,
                    uow.now)
    app.add_review(review, declared_conflict=body.conflict_of_interest)
    review_row = add_review(uow.session, app.id, review, str(uuid.uuid4()))
    save_application(row, app, now=uow.now)
    uow.record(AGGREGATE, app.id, "review", from_status=before, to_status=app.status.value,
               data={"review_id": review_row.id, "recommendation": review.recommendation})
    if assigned is not None:
        assignment_row, assignment = assigned
        save_assignment(assignment_row, assignment, now=uow.now)
        uow.record("assignment", assignment.id, "review", from_status="accepted",
                   to_status=assignment.status.value,
                   data={"application_id": app.id, "review_id": review_row.id})
    return uow.commit(review_read(review_row), status_code=201)


def review_read(r: ReviewRow) -> ReviewRead:
    return ReviewRead(id=r.id, application_id=r.application_id, reviewer_id=r.reviewer_id,
                      scores=r.scores, recommendation=r.recommendation, comment=r.comment,
                      created_at=as_utc(r.created_at))


@router.get("/applications/{application_id}/reviews", response_model=ReviewPage,
            summary="Reviews: all to the agency, auditors and admins; a reviewer sees only "
                    "their own until the decision")
def read_reviews(application_id: str, session: SessionDep, user: CurrentPrincipal,
                 limit: Limit = DEFAULT_LIMIT, cursor: str | None = None):
    row, app = visible(session, application_id, user)
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
                       user: ProgramManager, uow: UnitOfWorkDep):
    row, app = visible(uow.session, application_id, user, for_update=True)
    if not access.acts_for_agency(user, app.agency_id):
        raise Forbidden("programme managers decide only their own agency's applications")
    if app.is_team_member(user.sub):  # no one decides on their own application
        raise ConflictOfInterest(
            "conflict of interest: the programme manager is on the applicant team")
    # The call's row lock serialises decisions on one call, so the budget holds.
    call_row = get_call_row(uow.session, app.call_id, for_update=True)
    # Before the decision takes its number: the register stays locked only from then on.
    release_open(uow, SqlRepository(uow.session), "the application was decided",
                 application_id=app.id)
    call = call_from_row(call_row)
    before = app.status.value
    grant: Grant | None = None

    def take_number():
        return uow.take_decision_number(grants_register(app.agency_id))

    if isinstance(body, Approve):
        app.approve(call, body.awarded_vnd, uow.now, grant_id=str(uuid.uuid4()),
                    take_number=take_number)
        grant = Grant.award(app, grant_id=app.grant_id,
                            milestone_ids=[str(uuid.uuid4()) for _ in app.milestones],
                            now=uow.now)
    else:
        app.reject(call, body.reason, uow.now, take_number=take_number)
    save_call(call_row, call, now=uow.now)
    save_application(row, app, now=uow.now)
    uow.record(AGGREGATE, app.id, "decide", from_status=before, to_status=app.status.value,
               reason=body.reason,
               data={"awarded_vnd": app.awarded_vnd, "grant_id": app.grant_id,
                     "decision_no": app.decision.decision_no,
                     "decision_year": app.decision.year})
    events.publish(uow, app.events)
    if grant is not None:
        uow.session.flush()
        add_grant(uow.session, grant, now=uow.now)
        uow.record("grant", grant.id, "award", to_status=grant.status.value, new=True,
                   data={"awarded_vnd": grant.awarded_vnd, "application_id": app.id,
                         "decision_no": app.decision.decision_no})
        uow.record("call", call.id, "commit_budget", from_status=call.status.value,
                   to_status=call.status.value,
                   data={"awarded_vnd": body.awarded_vnd, "application_id": app.id,
                         "remaining_budget_vnd": call.remaining_budget_vnd})
        events.publish(uow, grant.events)
    return uow.commit(read_of(uow.session, row, app, call))


@router.get("/applications/{application_id}",
            response_model=ApplicationRead | ApplicationSummary,
            summary="One application (team, institution, ministry); an assigned reviewer "
                    "reads its summary until they declare no conflict of interest")
def read_application(application_id: str, session: SessionDep, user: CurrentPrincipal):
    row, app, view = viewed(session, application_id, user)
    call = call_of(session, app)
    if view == access.View.SUMMARY:
        return ApplicationSummary(
            id=app.id, call_id=app.call_id, call_title=call.title, title=app.title,
            institution_id=app.institution_id,
            team=[TeamNameRole(name=t.name, role=t.role) for t in app.team])
    return read_of(session, row, app, call)


@router.get("/applications/{application_id}/history", response_model=HistoryPage,
            summary="The application's audit trail")
def read_application_history(application_id: str, session: SessionDep,
                             user: CurrentPrincipal, limit: Limit = 100,
                             cursor: str | None = None) -> HistoryPage:
    _, app = visible(session, application_id, user)
    page = history(session, AGGREGATE, application_id, limit=limit, cursor=cursor)
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
    items = []
    for r, app in zip(rows, applications_from_rows(session, rows), strict=True):
        if app.call_id not in calls:
            calls[app.call_id] = call_of(session, app)
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
    call_handlers.visible_call(SqlRepository(session), user, call_id)  # drafts: their agency's
    return _page(session, user, call_id=call_id, status=status.value if status else None,
                 institution_id=None, limit=limit, cursor=cursor)
