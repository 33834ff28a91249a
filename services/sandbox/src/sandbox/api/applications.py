"""Applications, assessments and decisions: ``/v1/applications``."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Body
from sqlalchemy import and_, func, select
from sqlmodel import Session

from sandbox import access, handlers
from sandbox.api.deps import (
    Applicant,
    Ministry,
    ProfilesDep,
    Reader,
    RepositoryDep,
    Reviewer,
    SectorQuery,
    sector_filter,
)
from sandbox.domain.applications import (
    AWAITING_DECISION,
    UNDECIDED,
    ApplicationStatus,
    ApprovalTerms,
    Criterion,
    Exemption,
    Proposal,
    Scope,
)
from sandbox.models import ApplicationRow, AssessmentRow
from sandbox.repository import application_from_row
from sandbox.schemas import (
    ApplicationCreate,
    ApplicationPage,
    ApplicationRead,
    Approve,
    AssessmentCreate,
    AssessmentPage,
    AssessmentRead,
    ChangesRequest,
    Decision,
    ScopeIn,
    ScopeRead,
    Withdrawal,
)
from sandbox.schemas import Exemption as ExemptionOut
from servicekit.audit import HistoryEntry, HistoryPage, history
from servicekit.auth import Principal
from servicekit.clock import as_utc
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import NotFound
from servicekit.unit_of_work import SessionDep, TodayDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["applications"])


# --- bodies → domain -----------------------------------------------------------------------

def scope_of(body: ScopeIn) -> Scope:
    return Scope(tuple(body.regions), body.max_participants, body.max_transaction_vnd)


def proposal_of(body: ApplicationCreate) -> Proposal:
    return Proposal(
        firm_name=body.firm_name, enterprise_code=body.enterprise_code, sector=body.sector,
        technology=body.technology, description=body.description,
        exemptions=tuple(Exemption(e.provision, e.justification) for e in body.exemptions),
        scope=scope_of(body.scope), requested_months=body.requested_months,
        safeguards=body.safeguards, risk_assessment=body.risk_assessment,
        exit_plan=body.exit_plan)


# --- rows → answers ------------------------------------------------------------------------

def scope_read(regions: list[str], max_participants: int, max_transaction_vnd: int | None
               ) -> ScopeRead:
    return ScopeRead(regions=list(regions), max_participants=max_participants,
                     max_transaction_vnd=max_transaction_vnd)


def days_left(row: ApplicationRow, today: date) -> int | None:
    """Days left on the decision clock while the application awaits its decision or its
    changes (negative once overdue)."""
    if row.decision_deadline_days is None or row.status not in {
            s.value for s in UNDECIDED if s != ApplicationStatus.DRAFT}:
        return None
    running = (today - row.decision_clock_since).days if row.decision_clock_since else 0
    return row.decision_deadline_days - row.decision_days_used - running


def application_read(row: ApplicationRow, today: date, assessments_count: int
                     ) -> ApplicationRead:
    awaiting = row.status in {s.value for s in AWAITING_DECISION}
    due = row.decision_due_on if awaiting else None
    decided = row.decision is not None
    return ApplicationRead(
        id=row.id, owner_id=row.owner_id, organisation_id=row.organisation_id,
        firm_name=row.firm_name, enterprise_code=row.enterprise_code, sector=row.sector,
        supervising_agency=row.supervising_agency, technology=row.technology,
        description=row.description,
        exemptions=[ExemptionOut(**e) for e in row.exemptions],
        scope=scope_read(row.scope_regions, row.scope_max_participants,
                         row.scope_max_transaction_vnd),
        requested_months=row.requested_months, safeguards=row.safeguards,
        risk_assessment=row.risk_assessment, exit_plan=row.exit_plan, status=row.status,
        submission=row.submission, assessments_count=assessments_count,
        decision_due_on=due, overdue=due is not None and today > due,
        decision_days_left=days_left(row, today),
        changes_requested=list(row.changes_requested or []),
        decision=row.decision, decision_no=row.decision_no, decision_year=row.decision_year,
        decided_on=row.decided_on, conditions=row.conditions if decided else None,
        limits=scope_read(row.limits_regions or [], row.limits_max_participants or 0,
                          row.limits_max_transaction_vnd) if row.starts_on else None,
        starts_on=row.starts_on, ends_on=row.ends_on, reasons=list(row.reasons or []),
        pilot_id=row.pilot_id, withdraw_reason=row.withdraw_reason,
        created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at),
        submitted_at=as_utc(row.submitted_at) if row.submitted_at else None,
        decided_at=as_utc(row.decided_at) if row.decided_at else None)


def assessment_read(row: AssessmentRow) -> AssessmentRead:
    failed = [name for name, c in row.criteria.items() if not c["pass"]]
    return AssessmentRead(
        id=row.id, application_id=row.application_id, submission=row.submission,
        reviewer_id=row.reviewer_id, reviewer_org=row.reviewer_org,
        criteria={name: {"pass": c["pass"], "note": c.get("note", "")}
                  for name, c in row.criteria.items()},
        summary=row.summary, passed=row.passed, failed=failed,
        created_at=as_utc(row.created_at))


def assessment_counts(session: Session, ids: list[str]) -> dict[str, int]:
    """Assessments of each application's current submission."""
    if not ids:
        return {}
    rows = session.execute(
        select(AssessmentRow.application_id, func.count())
        .join(ApplicationRow, and_(ApplicationRow.id == AssessmentRow.application_id,
                                   ApplicationRow.submission == AssessmentRow.submission))
        .where(AssessmentRow.application_id.in_(ids))
        .group_by(AssessmentRow.application_id)).all()
    return {application_id: count for application_id, count in rows}


def answer(repo: RepositoryDep, application_id: str, today: date) -> ApplicationRead:
    """The application as the command left it (its row, flushed), for the answer."""
    repo.session.flush()
    row = repo.application_row(application_id)
    return application_read(row, today, assessment_counts(repo.session, [row.id]).get(
        row.id, 0))


def visible_row(session: Session, application_id: str, user: Principal) -> ApplicationRow:
    row = session.get(ApplicationRow, application_id)
    if row is None or not access.can_read_application(user, application_from_row(row, [])):
        raise NotFound(f"application {application_id} not found")
    return row


# --- the firm's commands -------------------------------------------------------------------

@router.post("/applications", status_code=201, response_model=ApplicationRead,
             summary="Draft an application (the firm: sandbox_applicant)")
def create_application(body: ApplicationCreate, user: Applicant, uow: UnitOfWorkDep,
                       repo: RepositoryDep, profiles: ProfilesDep):
    app = handlers.create_application(uow, repo, profiles, user, proposal_of(body))
    return uow.commit(answer(repo, app.id, uow.today), status_code=201)


@router.put("/applications/{application_id}", response_model=ApplicationRead,
            summary="Edit a draft or an application with changes requested (the owner)")
def edit_application(application_id: str, body: ApplicationCreate, user: Applicant,
                     uow: UnitOfWorkDep, repo: RepositoryDep, profiles: ProfilesDep):
    handlers.edit_application(uow, repo, profiles, user, application_id, proposal_of(body))
    return uow.commit(answer(repo, application_id, uow.today))


@router.post("/applications/{application_id}/submit", response_model=ApplicationRead,
             summary="Submit (the owner): starts the decision clock, or runs it on from "
                     "where it stopped when changes were requested")
def submit_application(application_id: str, user: Applicant, uow: UnitOfWorkDep,
                       repo: RepositoryDep, profiles: ProfilesDep):
    handlers.submit_application(uow, repo, profiles, user, application_id)
    return uow.commit(answer(repo, application_id, uow.today))


@router.post("/applications/{application_id}/withdraw", response_model=ApplicationRead,
             summary="Withdraw before the decision, with a reason (the owner)")
def withdraw_application(application_id: str, body: Withdrawal, user: Applicant,
                         uow: UnitOfWorkDep, repo: RepositoryDep):
    handlers.withdraw_application(uow, repo, user, application_id, body.reason)
    return uow.commit(answer(repo, application_id, uow.today))


# --- the reviewers' commands ---------------------------------------------------------------

@router.post("/applications/{application_id}/assessments", status_code=201,
             response_model=AssessmentRead,
             summary="Assess the six criteria, pass or fail with notes: one assessment per "
                     "reviewer and submission; refused (409) for a reviewer of the "
                     "applicant's organisation")
def create_assessment(application_id: str, body: AssessmentCreate, user: Reviewer,
                      uow: UnitOfWorkDep, repo: RepositoryDep):
    criteria = {name: Criterion(c.passed, c.note) for name, c in body.criteria}
    assessment = handlers.assess_application(uow, repo, user, application_id, criteria,
                                             body.summary)
    repo.session.flush()
    return uow.commit(assessment_read(repo.session.get(AssessmentRow, assessment.id)),
                      status_code=201)


@router.post("/applications/{application_id}/request-changes",
             response_model=ApplicationRead,
             summary="Send the application back to the firm with reasons; the decision "
                     "clock stops until it is resubmitted")
def request_changes(application_id: str, body: ChangesRequest, user: Reviewer,
                    uow: UnitOfWorkDep, repo: RepositoryDep):
    handlers.request_changes(uow, repo, user, application_id, body.reasons)
    return uow.commit(answer(repo, application_id, uow.today))


@router.post("/applications/{application_id}/decision", response_model=ApplicationRead,
             summary="Approve (four eyes: two assessments by two other reviewers, no "
                     "failed criterion; conditions, limits within the requested scope, "
                     "dates within the sector's profile; creates a pilot) or reject with "
                     "reasons. Numbered in the supervising agency's sandbox register")
def decide_application(application_id: str, body: Annotated[Decision, Body()],
                       user: Reviewer, uow: UnitOfWorkDep, repo: RepositoryDep,
                       profiles: ProfilesDep):
    if isinstance(body, Approve):
        terms = ApprovalTerms(conditions=tuple(body.conditions), limits=scope_of(body.limits),
                              starts_on=body.starts_on, ends_on=body.ends_on)
        handlers.decide_application(uow, repo, profiles, user, application_id, terms=terms)
    else:
        handlers.decide_application(uow, repo, profiles, user, application_id,
                                    reasons=body.reasons)
    return uow.commit(answer(repo, application_id, uow.today))


# --- reads ---------------------------------------------------------------------------------

@router.get("/applications", response_model=ApplicationPage,
            summary="Applications: a firm's own; every submitted one for the ministry roles "
                    "(except their own organisation's), drafts too for auditors and admins")
def read_applications(session: SessionDep, user: Reader, today: TodayDep,
                      profiles: ProfilesDep, status: ApplicationStatus | None = None,
                      sector: SectorQuery = None, limit: Limit = DEFAULT_LIMIT,
                      cursor: str | None = None) -> ApplicationPage:
    sector_filter(profiles, sector)
    stmt = access.scope_applications(user, select(ApplicationRow))
    if status is not None:
        stmt = stmt.where(ApplicationRow.status == status.value)
    if sector is not None:
        stmt = stmt.where(ApplicationRow.sector == sector)
    rows, next_cursor = keyset_page(session, stmt, ApplicationRow.created_at,
                                    ApplicationRow.id, limit=limit, cursor=cursor)
    counts = assessment_counts(session, [r.id for r in rows])
    return ApplicationPage(items=[application_read(r, today, counts.get(r.id, 0))
                                  for r in rows], next_cursor=next_cursor)


@router.get("/applications/{application_id}", response_model=ApplicationRead,
            summary="One application, with decision_due_on and overdue once submitted")
def read_application(application_id: str, session: SessionDep, user: Reader,
                     today: TodayDep) -> ApplicationRead:
    row = visible_row(session, application_id, user)
    return application_read(row, today, assessment_counts(session, [row.id]).get(row.id, 0))


@router.get("/applications/{application_id}/assessments", response_model=AssessmentPage,
            summary="The assessments, every submission's (ministry roles)")
def read_assessments(application_id: str, session: SessionDep, user: Ministry,
                     limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
                     ) -> AssessmentPage:
    visible_row(session, application_id, user)
    stmt = select(AssessmentRow).where(AssessmentRow.application_id == application_id)
    rows, next_cursor = keyset_page(session, stmt, AssessmentRow.created_at,
                                    AssessmentRow.id, limit=limit, cursor=cursor,
                                    newest_first=False)
    return AssessmentPage(items=[assessment_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/applications/{application_id}/history", response_model=HistoryPage,
            summary="The application's audit trail; the firm sees that an assessment "
                    "happened, not who made it or how")
def read_application_history(application_id: str, session: SessionDep, user: Reader,
                             limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    visible_row(session, application_id, user)
    page = history(session, handlers.APPLICATION, application_id, limit=limit, cursor=cursor)
    if not user.has(*access.MINISTRY):
        page.items = [_blind(e) if e.action == "assess" else e for e in page.items]
    return page


def _blind(entry: HistoryEntry) -> HistoryEntry:
    return entry.model_copy(update={"actor": "(reviewer)", "org": "", "data": None})
