"""Funding calls: ``/v1/calls``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select

from grants import access
from grants.api.deps import CallHistoryReader, ProgramManager, RepositoryDep
from grants.domain.calls import Call, CallStatus, ReviewTier
from grants.handlers import CALL
from grants.handlers import calls as handlers
from grants.handlers.calls import CallTerms
from grants.models import CallRow
from grants.repository import SqlRepository, call_from_row
from grants.schemas import CallCreate, CallPage, CallRead, Reason, ReviewTierOut
from servicekit.audit import HistoryPage, history
from servicekit.auth import OptionalPrincipal
from servicekit.clock import as_utc
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.unit_of_work import NowDep, SessionDep, UnitOfWork, UnitOfWorkDep

router = APIRouter(prefix="/v1/calls", tags=["calls"])


def to_read(row: CallRow, now: datetime) -> CallRead:
    call = call_from_row(row)
    return CallRead(
        id=row.id, agency_id=row.agency_id, title=row.title, description=row.description,
        budget_vnd=row.budget_vnd, max_award_vnd=row.max_award_vnd,
        awarded_vnd=row.awarded_vnd, remaining_budget_vnd=call.remaining_budget_vnd,
        opens_at=call.opens_at, closes_at=call.closes_at, min_reviews=row.min_reviews,
        review_mode=call.review_mode.value,
        review_tiers=[ReviewTierOut(up_to_vnd=t.up_to_vnd, min_reviews=t.min_reviews)
                      for t in call.review_tiers],
        requires_endorsement=call.requires_endorsement,
        status=row.status, accepting_submissions=call.accepting_submissions(now),
        cancel_reason=call.cancel_reason, created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def terms_of(body: CallCreate) -> CallTerms:
    return CallTerms(
        title=body.title, description=body.description, budget_vnd=body.budget_vnd,
        max_award_vnd=body.max_award_vnd, opens_at=body.opens_at, closes_at=body.closes_at,
        min_reviews=body.min_reviews, review_mode=body.review_mode,
        review_tiers=tuple(ReviewTier(t.up_to_vnd, t.min_reviews) for t in body.review_tiers),
        requires_endorsement=body.requires_endorsement)


def answer(uow: UnitOfWork, repo: SqlRepository, call: Call, status_code: int = 200):
    """Commit a call command with the call as the API shows it."""
    return uow.commit(to_read(repo.call_row(call), uow.now), status_code=status_code)


@router.post("", status_code=201, response_model=CallRead, summary="Draft a call")
def create_call(body: CallCreate, user: ProgramManager, uow: UnitOfWorkDep,
                repo: RepositoryDep):
    call = handlers.create_call(uow, repo, user, terms_of(body))
    return answer(uow, repo, call, status_code=201)


@router.post("/{call_id}/open", response_model=CallRead, summary="Open a call for submissions")
def open_call(call_id: str, user: ProgramManager, uow: UnitOfWorkDep, repo: RepositoryDep):
    return answer(uow, repo, handlers.open_call(uow, repo, user, call_id))


@router.post("/{call_id}/close", response_model=CallRead, summary="Close a call")
def close_call(call_id: str, user: ProgramManager, uow: UnitOfWorkDep, repo: RepositoryDep):
    return answer(uow, repo, handlers.close_call(uow, repo, user, call_id))


@router.put("/{call_id}", response_model=CallRead,
            summary="Edit a draft call (the creation body); the history keeps each change")
def edit_call(call_id: str, body: CallCreate, user: ProgramManager, uow: UnitOfWorkDep,
              repo: RepositoryDep):
    return answer(uow, repo, handlers.edit_call(uow, repo, user, call_id, terms_of(body)))


@router.post("/{call_id}/cancel", response_model=CallRead,
             summary="Cancel a call that has no decision yet, with a reason")
def cancel_call(call_id: str, body: Reason, user: ProgramManager, uow: UnitOfWorkDep,
                repo: RepositoryDep):
    return answer(uow, repo, handlers.cancel_call(uow, repo, user, call_id, body.reason))


@router.get("", response_model=CallPage, summary="Published calls (and your agency's drafts)")
def read_calls(
    session: SessionDep,
    principal: OptionalPrincipal,
    now: NowDep,
    status: CallStatus | None = None,
    agency_id: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> CallPage:
    stmt = access.scope_calls(principal, select(CallRow))
    if status is not None:
        stmt = stmt.where(CallRow.status == status.value)
    if agency_id is not None:
        stmt = stmt.where(CallRow.agency_id == agency_id)
    rows, next_cursor = keyset_page(session, stmt, CallRow.created_at, CallRow.id,
                                    limit=limit, cursor=cursor)
    items = [to_read(r, now) for r in rows]
    return CallPage(items=items, next_cursor=next_cursor)


@router.get("/{call_id}", response_model=CallRead, summary="One call")
def read_call(call_id: str, session: SessionDep, principal: OptionalPrincipal,
              now: NowDep) -> CallRead:
    repo = SqlRepository(session)
    return to_read(repo.call_row(handlers.visible_call(repo, principal, call_id)), now)


@router.get("/{call_id}/history", response_model=HistoryPage, summary="The call's audit trail")
def read_call_history(call_id: str, session: SessionDep, user: CallHistoryReader,
                      limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    handlers.visible_call(SqlRepository(session), user, call_id)
    return history(session, CALL, call_id, limit=limit, cursor=cursor)
