"""Reviewer assignments and declarations: ``/v1/applications/{id}/assignments`` and
``/v1/assignments`` (calls with ``review_mode: assigned``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select

from grants import access
from grants.api.deps import ProgramManager, RepositoryDep, Reviewer
from grants.domain.assignments import OPEN, Assignment, AssignmentStatus
from grants.handlers import ASSIGNMENT
from grants.handlers import assignments as handlers
from grants.models import AssignmentRow
from grants.repository import SqlRepository, assignment_from_row
from grants.schemas import (
    AssignmentCreate,
    AssignmentPage,
    AssignmentRead,
    Declaration,
    Reason,
)
from servicekit.audit import HistoryPage, history
from servicekit.auth import Principal, require_roles
from servicekit.clock import as_utc
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.unit_of_work import SessionDep, TodayDep, UnitOfWork, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["assignments"])
# The contract's readers of the queue: a reviewer (their own), a programme manager (their
# agency's), an auditor (all).
QueueReader = Annotated[Principal, Depends(require_roles("reviewer", "program_manager",
                                                         "auditor"))]


def to_read(row: AssignmentRow, a: Assignment, today: date) -> AssignmentRead:
    return AssignmentRead(
        id=a.id, application_id=a.application_id, call_id=a.call_id, agency_id=a.agency_id,
        reviewer_id=a.reviewer_id, reviewer_org=a.reviewer_org, name=a.name,
        due_on=a.due_on, status=a.status.value, overdue=a.overdue(today),
        assigned_by=a.assigned_by, conflict_of_interest=a.conflict_of_interest,
        statement=a.statement, declared_at=a.declared_at, decline_reason=a.decline_reason,
        release_reason=a.release_reason, created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at))


def answer(uow: UnitOfWork, repo: SqlRepository, assignment: Assignment,
           status_code: int = 200):
    """Commit an assignment command with the assignment as the API shows it."""
    return uow.commit(to_read(repo.assignment_row(assignment), assignment, uow.today),
                      status_code=status_code)


@router.post("/applications/{application_id}/assignments", status_code=201,
             response_model=AssignmentRead,
             summary="Assign a reviewer with a due date (calls reviewed by assignment); a "
                     "known conflict is refused with its reason")
def assign_reviewer(application_id: str, body: AssignmentCreate, user: ProgramManager,
                    uow: UnitOfWorkDep, repo: RepositoryDep):
    assignment = handlers.assign_reviewer(
        uow, repo, user, application_id, reviewer_id=body.reviewer_id,
        reviewer_org=body.reviewer_org, name=body.name, due_on=body.due_on)
    return answer(uow, repo, assignment, status_code=201)


@router.get("/assignments", response_model=AssignmentPage,
            summary="The reviewer's queue (their own), a programme manager's agency's "
                    "assignments, or all (auditor): what is due and what is overdue")
def read_assignments(session: SessionDep, user: QueueReader, today: TodayDep,
                     status: AssignmentStatus | None = None, overdue: bool | None = None,
                     application_id: str | None = None, limit: Limit = DEFAULT_LIMIT,
                     cursor: str | None = None) -> AssignmentPage:
    stmt = access.scope_assignments(user, select(AssignmentRow))
    if status is not None:
        stmt = stmt.where(AssignmentRow.status == status.value)
    if application_id is not None:
        stmt = stmt.where(AssignmentRow.application_id == application_id)
    if overdue is not None:
        late = AssignmentRow.status.in_([s.value for s in OPEN]) & (
            AssignmentRow.due_on < today)
        stmt = stmt.where(late if overdue else ~late)
    rows, next_cursor = keyset_page(session, stmt, AssignmentRow.created_at, AssignmentRow.id,
                                    limit=limit, cursor=cursor, newest_first=False)
    return AssignmentPage(items=[to_read(r, assignment_from_row(r), today) for r in rows],
                          next_cursor=next_cursor)


@router.get("/assignments/{assignment_id}", response_model=AssignmentRead,
            summary="One assignment (the assignee, the agency's programme managers, auditors)")
def read_assignment(assignment_id: str, session: SessionDep, user: QueueReader,
                    today: TodayDep) -> AssignmentRead:
    repo = SqlRepository(session)
    assignment = handlers.readable(repo, user, assignment_id)
    return to_read(repo.assignment_row(assignment), assignment, today)


@router.get("/assignments/{assignment_id}/history", response_model=HistoryPage,
            summary="The assignment's audit trail: who declared what, when")
def read_assignment_history(assignment_id: str, session: SessionDep, user: QueueReader,
                            limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    handlers.readable(SqlRepository(session), user, assignment_id)
    return history(session, ASSIGNMENT, assignment_id, limit=limit, cursor=cursor)


@router.post("/assignments/{assignment_id}/declaration", response_model=AssignmentRead,
             summary="The assignee declares, once, whether they have a conflict of interest; "
                     "a conflict releases the assignment")
def declare(assignment_id: str, body: Declaration, user: Reviewer, uow: UnitOfWorkDep,
            repo: RepositoryDep):
    return answer(uow, repo, handlers.declare(
        uow, repo, user, assignment_id, conflict_of_interest=body.conflict_of_interest,
        statement=body.statement))


@router.post("/assignments/{assignment_id}/decline", response_model=AssignmentRead,
             summary="The assignee declines, before reviewing, with a reason")
def decline(assignment_id: str, body: Reason, user: Reviewer, uow: UnitOfWorkDep,
            repo: RepositoryDep):
    return answer(uow, repo, handlers.decline(uow, repo, user, assignment_id, body.reason))
