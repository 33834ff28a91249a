"""Loading and saving grants aggregates: the only place rows and domain objects meet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from grants.domain.calls import Call, CallStatus
from grants.models import CallRow
from servicekit.clock import as_utc


def call_from_row(row: CallRow) -> Call:
    return Call(
        id=row.id, agency_id=row.agency_id, title=row.title, description=row.description,
        budget_vnd=row.budget_vnd, max_award_vnd=row.max_award_vnd,
        opens_at=as_utc(row.opens_at), closes_at=as_utc(row.closes_at),
        min_reviews=row.min_reviews, status=CallStatus(row.status),
        awarded_vnd=row.awarded_vnd,
    )


def get_call_row(session: Session, call_id: str, *, for_update: bool = False) -> CallRow | None:
    stmt = select(CallRow).where(CallRow.id == call_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def add_call(session: Session, call: Call, *, created_by: str, now: datetime) -> CallRow:
    row = CallRow(
        id=call.id, agency_id=call.agency_id, title=call.title, description=call.description,
        budget_vnd=call.budget_vnd, max_award_vnd=call.max_award_vnd,
        awarded_vnd=call.awarded_vnd, opens_at=call.opens_at, closes_at=call.closes_at,
        min_reviews=call.min_reviews, status=call.status.value, created_by=created_by,
        created_at=now, updated_at=now,
    )
    session.add(row)
    return row


def save_call(row: CallRow, call: Call, *, now: datetime) -> None:
    row.status = call.status.value
    row.awarded_vnd = call.awarded_vnd
    row.updated_at = now
