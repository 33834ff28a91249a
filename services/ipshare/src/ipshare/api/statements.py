"""Payee statements and the ledger's trial balance (``/v1/payees/{id}/statement``,
``/v1/ledger/trial-balance``): what the double-entry ledger says, read as it is."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, or_, select

from ipshare import access
from ipshare.models import LedgerEntryRow
from ipshare.schemas import AccountBalance, Statement, StatementItem, TrialBalance
from servicekit.auth import CurrentPrincipal, Principal, require_roles
from servicekit.clock import as_utc
from servicekit.inputs import CalendarDate, UtcTime
from servicekit.paging import Limit, position_cursor
from servicekit.problems import Invalid, NotFound
from servicekit.unit_of_work import SessionDep

router = APIRouter(prefix="/v1", tags=["income"])

LEDGER = LedgerEntryRow.__table__
Books = Annotated[Principal, Depends(require_roles("finance", "auditor", "admin"))]


@router.get("/payees/{payee_id}/statement", response_model=Statement,
            summary="Every line of a payee, with the running balance carried forward")
def read_statement(
    payee_id: str, session: SessionDep, user: CurrentPrincipal,
    from_: Annotated[UtcTime | CalendarDate | None, Query(alias="from", description=(
        "lines from this RFC 3339 time, or from the start of this date (UTC)"))] = None,
    to: Annotated[UtcTime | CalendarDate | None, Query(description=(
        "lines before this RFC 3339 time, or up to the end of this date (UTC)"))] = None,
    limit: Limit = 100, cursor: str | None = None,
) -> Statement:
    from_, to = _bound(from_, end=False), _bound(to, end=True)
    base = [LEDGER.c.payee_id == payee_id]
    # The payee by kind as well as id: a researcher's sub and an organisation's id could
    # be the same string, and neither may read the other's lines.
    own = []
    if user.sub == payee_id:
        own.append(LEDGER.c.payee_kind == "researcher")
    if access.owns(user, payee_id):
        own.append(LEDGER.c.payee_kind == "institution")
    if user.has(*access.ALL_SEEING):
        pass  # the books
    elif own:
        base.append(or_(*own))
    elif user.has("institution"):
        base.append(LEDGER.c.institution_id == user.org)  # lines from its own distributions
        if session.execute(select(LEDGER.c.id).where(*base).limit(1)).first() is None:
            # Another payee with nothing from this institution: private, as to anyone.
            raise NotFound(f"payee {payee_id} not found")
    else:
        raise NotFound(f"payee {payee_id} not found")
    if from_ and to and to <= from_:
        raise Invalid("'to' must be after 'from'", loc=["query", "to"])
    after = position_cursor(cursor)
    window = [*base]
    if from_:
        window.append(LEDGER.c.created_at >= from_)
    if to:
        window.append(LEDGER.c.created_at < to)
    owed = -func.coalesce(func.sum(LEDGER.c.amount_vnd), 0)
    opening = 0
    if from_:
        opening += session.execute(select(owed).where(*base, LEDGER.c.created_at < from_)
                                   ).scalar_one()
    if after:
        opening += session.execute(select(owed).where(*window, LEDGER.c.id <= after)
                                   ).scalar_one()
    rows = session.execute(select(LEDGER).where(*window, LEDGER.c.id > after)
                           .order_by(LEDGER.c.id).limit(limit + 1)).mappings().all()
    balance = int(opening)
    items = []
    for r in rows[:limit]:
        balance += -r["amount_vnd"]
        items.append(StatementItem(entry_id=r["id"], at=as_utc(r["created_at"]),
                                   distribution_id=r["distribution_id"], kind=r["kind"],
                                   account=r["account"], reference=r["reference"],
                                   amount_vnd=-r["amount_vnd"], balance_vnd=balance))
    next_cursor = str(items[-1].entry_id) if len(rows) > limit else None
    return Statement(payee_id=payee_id, opening_balance_vnd=int(opening), items=items,
                     closing_balance_vnd=balance, next_cursor=next_cursor)


def _bound(value: datetime | date | None, *, end: bool) -> datetime | None:
    """A statement's bound as a UTC time (a ``UtcTime`` is one already): a date stands
    for its whole day; the end of the last day there is is no bound at all."""
    if value is None or (end and value == date.max):
        return None
    if isinstance(value, datetime):
        return value
    day = value + timedelta(days=1) if end else value
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@router.get("/ledger/trial-balance", response_model=TrialBalance,
            summary="Balance per account; the grand total is always 0")
def read_trial_balance(session: SessionDep, user: Books) -> TrialBalance:
    rows = session.execute(select(LEDGER.c.account, func.sum(LEDGER.c.amount_vnd))
                           .group_by(LEDGER.c.account).order_by(LEDGER.c.account)).all()
    accounts = [AccountBalance(account=a, balance_vnd=int(b)) for a, b in rows]
    return TrialBalance(accounts=accounts, total_vnd=sum(a.balance_vnd for a in accounts))

