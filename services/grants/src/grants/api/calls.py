"""Funding calls: ``/v1/calls``."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import func, select

from grants import access, events, handlers
from grants.api.deps import CallHistoryReader, ProgramManager
from grants.domain.applications import ApplicationStatus
from grants.domain.calls import Call, CallStatus, ReviewTier
from grants.models import ApplicationRow, CallRow
from grants.repository import add_call, call_from_row, get_call_row, save_call
from grants.schemas import CallCreate, CallPage, CallRead, Reason, ReviewTierOut
from servicekit.audit import HistoryPage, history
from servicekit.auth import OptionalPrincipal, Principal
from servicekit.clock import as_utc
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import NowDep, SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1/calls", tags=["calls"])

AGGREGATE = "call"


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


def visible_call(row: CallRow | None, principal: Principal | None, call_id: str) -> CallRow:
    if row is None or (not call_from_row(row).published
                       and not access.sees_call_drafts(principal, row.agency_id)):
        raise NotFound(f"call {call_id} not found")
    return row


def _own_agency_call(row: CallRow | None, principal: Principal, call_id: str) -> CallRow:
    row = visible_call(row, principal, call_id)
    if not access.acts_for_agency(principal, row.agency_id):
        raise Forbidden(f"call {call_id} belongs to agency {row.agency_id}; "
                        "programme managers act only on their own agency's calls")
    return row


def drafted(call_id: str, agency_id: str, body: CallCreate) -> Call:
    """The call ``body`` describes, checked by the domain's rules."""
    return Call.draft(
        id=call_id, agency_id=agency_id, title=body.title, description=body.description,
        budget_vnd=body.budget_vnd, max_award_vnd=body.max_award_vnd,
        opens_at=body.opens_at, closes_at=body.closes_at, min_reviews=body.min_reviews,
        review_mode=body.review_mode,
        review_tiers=[ReviewTier(t.up_to_vnd, t.min_reviews) for t in body.review_tiers],
        requires_endorsement=body.requires_endorsement,
    )


@router.post("", status_code=201, response_model=CallRead, summary="Draft a call")
def create_call(body: CallCreate, user: ProgramManager, uow: UnitOfWorkDep):
    call = drafted(str(uuid.uuid4()), user.org, body)
    row = add_call(uow.session, call, created_by=user.sub, now=uow.now)
    uow.record(AGGREGATE, call.id, "draft", to_status=call.status.value, new=True)
    return uow.commit(to_read(row, uow.now), status_code=201)


def _transition(call_id: str, user: Principal, uow: UnitOfWorkDep, action: str):
    row = _own_agency_call(get_call_row(uow.session, call_id, for_update=True), user, call_id)
    call = call_from_row(row)
    before = call.status.value
    if action == "open":
        call.open(uow.now)
    else:
        call.close()
    save_call(row, call, now=uow.now)
    uow.record(AGGREGATE, call.id, action, from_status=before, to_status=call.status.value)
    events.publish(uow, call.events)
    return uow.commit(to_read(row, uow.now))


@router.post("/{call_id}/open", response_model=CallRead, summary="Open a call for submissions")
def open_call(call_id: str, user: ProgramManager, uow: UnitOfWorkDep):
    return _transition(call_id, user, uow, "open")


@router.post("/{call_id}/close", response_model=CallRead, summary="Close a call")
def close_call(call_id: str, user: ProgramManager, uow: UnitOfWorkDep):
    return _transition(call_id, user, uow, "close")


@router.put("/{call_id}", response_model=CallRead,
            summary="Edit a draft call (the creation body); the history keeps each change")
def edit_call(call_id: str, body: CallCreate, user: ProgramManager, uow: UnitOfWorkDep):
    row = _own_agency_call(get_call_row(uow.session, call_id, for_update=True), user, call_id)
    call = call_from_row(row)
    changes = call.revise(drafted(call.id, call.agency_id, body))
    save_call(row, call, now=uow.now)
    uow.record(AGGREGATE, call.id, "edit", from_status=call.status.value,
               to_status=call.status.value, data={"changes": changes})
    return uow.commit(to_read(row, uow.now))


@router.post("/{call_id}/cancel", response_model=CallRead,
             summary="Cancel a call that has no decision yet, with a reason")
def cancel_call(call_id: str, body: Reason, user: ProgramManager, uow: UnitOfWorkDep):
    # The call's row lock: a decision on one of its applications waits for it.
    row = _own_agency_call(get_call_row(uow.session, call_id, for_update=True), user, call_id)
    call = call_from_row(row)
    before = call.status.value
    decided = uow.session.execute(select(func.count()).where(
        ApplicationRow.call_id == call.id,
        ApplicationRow.status.in_((ApplicationStatus.APPROVED.value,
                                   ApplicationStatus.REJECTED.value)))).scalar_one()
    call.cancel(body.reason, decided=decided, now=uow.now)
    save_call(row, call, now=uow.now)
    uow.record(AGGREGATE, call.id, "cancel", from_status=before, to_status=call.status.value,
               reason=body.reason)
    events.publish(uow, call.events)
    handlers.release_open(uow, "the call was cancelled", call_id=call.id)
    return uow.commit(to_read(row, uow.now))


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
    row = visible_call(get_call_row(session, call_id), principal, call_id)
    return to_read(row, now)


@router.get("/{call_id}/history", response_model=HistoryPage, summary="The call's audit trail")
def read_call_history(call_id: str, session: SessionDep, user: CallHistoryReader,
                      limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    visible_call(get_call_row(session, call_id), user, call_id)
    return history(session, AGGREGATE, call_id, limit=limit, cursor=cursor)
