"""Income, distributions, reversals, payee statements and the trial balance.

The income path is the hot write path: a ``PipelinedCommand`` (two round trips, on the
event loop), prebuilt Core statements on the same tables and rows queued on the unit of
work rather than the ORM's unit of work, which costs several times the SQL itself
(architecture.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlmodel import Session

from ipshare import access, events
from ipshare.api.deps import DEFAULT_PAGE, Limit
from ipshare.domain.assets import DistributionStatus, reverse
from ipshare.domain.ledger import Entry, income_entries, reversing_entries
from ipshare.models import AgreementRow, AssetRow, DistributionRow, LedgerEntryRow, LineRow
from ipshare.schemas import (
    AccountBalance,
    DistributionPage,
    DistributionRead,
    IncomeCreate,
    Line,
    PolicyUsed,
    Reason,
    Statement,
    StatementItem,
    TrialBalance,
)
from ipshare.store import agreement_from_row, income_inputs, income_inputs_query
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal, require_roles
from servicekit.clock import as_utc
from servicekit.hotpath.reads import ReadsDep
from servicekit.hotpath.statements import Load
from servicekit.hotpath.unit_of_work import HotUnitOfWork, hot_unit_of_work
from servicekit.inputs import CalendarDate, UtcTime
from servicekit.paging import keyset_page, position_cursor
from servicekit.problems import Conflict, Forbidden, Invalid, NotFound
from servicekit.responses import model_response
from servicekit.unit_of_work import SessionDep, UnitOfWork, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["income"])

DIST = DistributionRow.__table__
LINES = LineRow.__table__
LEDGER = LedgerEntryRow.__table__
AGREEMENTS = AgreementRow.__table__
ASSETS = AssetRow.__table__

# The income path's statements, built once (building and keying a statement per request
# costs about as much CPU as executing it).
_LOCK_AGREEMENT = (
    select(AGREEMENTS.c.id, AGREEMENTS.c.asset_id, AGREEMENTS.c.institution_id,
           AGREEMENTS.c.kind, AGREEMENTS.c.status, ASSETS.c.source_grant_id)
    .join(ASSETS, ASSETS.c.id == AGREEMENTS.c.asset_id)
    .where(AGREEMENTS.c.id == bindparam("lock_agreement_id"))
    .with_for_update(of=AGREEMENTS)
)
_INSERT_LEDGER = insert(LEDGER)

POSTERS = ("institution", "finance")
Poster = Annotated[Principal, Depends(require_roles(*POSTERS))]
PostingUnitOfWork = Annotated[HotUnitOfWork, Depends(hot_unit_of_work(*POSTERS))]
Books = Annotated[Principal, Depends(require_roles("finance", "auditor", "admin"))]


def _payload(dist: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The distribution as the API and the finance events show it."""
    return {
        "id": dist["id"], "agreement_id": dist["agreement_id"], "asset_id": dist["asset_id"],
        "institution_id": dist["institution_id"], "source_grant_id": dist["source_grant_id"],
        "reference": dist["reference"], "period": dist["period"],
        "gross_vnd": dist["gross_vnd"], "costs_vnd": dist["costs_vnd"],
        "basis_vnd": dist["basis_vnd"], "researcher_pool_vnd": dist["researcher_pool_vnd"],
        "institution_vnd": dist["institution_vnd"],
        "policy": {"researcher_share_bp": dist["researcher_share_bp"],
                   "basis": dist["basis"], "version": dist["policy_version"]},
        "lines": [{"payee_id": ln["payee_id"], "payee_kind": ln["payee_kind"],
                   "amount_vnd": ln["amount_vnd"]} for ln in lines],
        "in_kind": dist["in_kind"], "status": dist["status"],
        "reversal_reason": dist.get("reversal_reason"),
        "created_at": as_utc(dist["created_at"]),
        "reversed_at": as_utc(dist["reversed_at"]) if dist.get("reversed_at") else None,
    }


def _own_line(line: dict[str, Any], user: Principal) -> bool:
    """A researcher's line: matched on the id *and* the kind, so a researcher whose
    ``sub`` happens to equal an organisation's id never reads that institution's line."""
    return line["payee_kind"] == "researcher" and line["payee_id"] == user.sub


def _read(payload: dict[str, Any], viewer: Principal | None = None) -> DistributionRead:
    lines = payload["lines"]
    if viewer is not None and not access.can_read_institution_data(
            viewer, payload["institution_id"]):
        lines = [ln for ln in lines if _own_line(ln, viewer)]  # a payee: their own line
    return DistributionRead(**{**payload, "policy": PolicyUsed(**payload["policy"]),
                               "lines": [Line(**ln) for ln in lines]})


@router.post("/agreements/{agreement_id}/income", status_code=201,
             response_model=DistributionRead,
             summary="Record income: exactly one distribution, split to the đồng")
async def post_income(agreement_id: str, body: IncomeCreate, uow: PostingUnitOfWork):
    # The hot write path: the agreement's lock first, then (read after the lock, so a
    # concurrent posting of the same reference has committed, and shows as standing, or
    # has not started) the policy, authors and standing reference; then the decision.
    reads = [(_LOCK_AGREEMENT, {"lock_agreement_id": agreement_id}),
             income_inputs_query(agreement_id, body.reference)]
    async with uow:
        locked, inputs_rows = await uow.load(Load(reads, lambda *rows: rows))
        return _post_income(uow, locked, inputs_rows, agreement_id, body, uow.principal)


def _post_income(uow: HotUnitOfWork, locked: list[Any], inputs_rows: list[Any],
                 agreement_id: str, body: IncomeCreate, user: Principal):
    row = locked[0] if locked else None
    if row is None or not access.can_read_institution_data(user, row.institution_id):
        raise NotFound(f"agreement {agreement_id} not found")
    if not access.can_post_income(user, row.institution_id):
        raise Forbidden("only the owning institution or finance records income")
    agreement = agreement_from_row(row)
    inputs = income_inputs(row.institution_id, inputs_rows)
    policy = inputs.policy
    split = agreement.split_income(gross_vnd=body.gross_vnd, costs_vnd=body.costs_vnd,
                                   policy=policy, authors=inputs.authors)
    if inputs.standing_id is not None:
        raise Conflict(f"reference '{body.reference}' is already posted on this agreement "
                       f"(distribution {inputs.standing_id}); reverse it first to post again",
                       kind="duplicate-reference")

    dist_id = str(uuid.uuid4())
    dist = {
        "id": dist_id, "agreement_id": agreement_id, "asset_id": row.asset_id,
        "institution_id": row.institution_id, "source_grant_id": row.source_grant_id,
        "reference": body.reference, "period": body.period, "gross_vnd": split.gross_vnd,
        "costs_vnd": split.costs_vnd, "basis_vnd": split.basis_vnd,
        "researcher_pool_vnd": split.researcher_pool_vnd,
        "institution_vnd": split.institution_vnd,
        "researcher_share_bp": policy.researcher_share_bp, "basis": policy.basis.value,
        "policy_version": policy.version, "in_kind": agreement.in_kind,
        "status": DistributionStatus.POSTED.value, "created_by": user.sub,
        "created_at": uow.now,
    }
    lines = [{"distribution_id": dist_id, "seq": i, "payee_id": rid,
              "payee_kind": "researcher", "amount_vnd": amount}
             for i, (rid, amount) in enumerate(split.researcher_lines)]
    lines.append({"distribution_id": dist_id, "seq": len(lines),
                  "payee_id": row.institution_id, "payee_kind": "institution",
                  "amount_vnd": split.institution_vnd})
    # Queued, not executed: the unit of work writes them with the audit record, the
    # event and the idempotency record in one round trip at commit.
    uow.insert(DIST, [dist])
    uow.insert(LINES, lines)
    uow.insert(LEDGER, _ledger_rows(uow, dist, dist_id, "distribution",
                                    income_entries(split, row.institution_id)))
    payload = _payload(dist, lines)
    uow.record("distribution", dist_id, "post", to_status=dist["status"], new=True,
               data={"reference": body.reference, "gross_vnd": body.gross_vnd,
                     "agreement_id": agreement_id})
    uow.emit(events.DISTRIBUTION_POSTED, dist_id, _event_data(payload))
    return uow.commit(_read(payload), status_code=201)


def _post_entries(uow: UnitOfWork, dist: dict[str, Any], posting_id: str, kind: str,
                  entries: list[Entry]) -> None:
    uow.session.execute(_INSERT_LEDGER, _ledger_rows(uow, dist, posting_id, kind, entries))


def _ledger_rows(uow: UnitOfWork, dist: dict[str, Any], posting_id: str, kind: str,
                 entries: list[Entry]) -> list[dict[str, Any]]:
    return [
        {"posting_id": posting_id, "seq": i, "kind": kind, "distribution_id": dist["id"],
         "institution_id": dist["institution_id"], "account": e.account,
         "amount_vnd": e.amount_vnd, "payee_id": e.payee_id, "payee_kind": e.payee_kind,
         "reference": dist["reference"], "created_at": uow.now}
        for i, e in enumerate(entries)]


def _event_data(payload: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in payload.items()
            if k not in ("id", "status", "reversal_reason", "created_at", "reversed_at")}
    data["distribution_id"] = payload["id"]
    data["posted_at"] = payload["created_at"]
    return data


def _load(session: Session, distribution_id: str, *, for_update: bool = False
          ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    stmt = select(DIST).where(DIST.c.id == distribution_id)
    if for_update:
        stmt = stmt.with_for_update()
    dist = session.execute(stmt).mappings().first()
    if dist is None:
        return None
    lines = session.execute(select(LINES).where(LINES.c.distribution_id == distribution_id)
                            .order_by(LINES.c.seq)).mappings().all()
    return dict(dist), [dict(ln) for ln in lines]


def _visible(session: Session, distribution_id: str, user: Principal, *,
             for_update: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return _seen_by(user, distribution_id,
                    _load(session, distribution_id, for_update=for_update))


def _seen_by(user: Principal, distribution_id: str,
             loaded: tuple[dict[str, Any], list[dict[str, Any]]] | None
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The distribution and its lines if ``user`` may see them; 404 otherwise."""
    if loaded is None:
        raise NotFound(f"distribution {distribution_id} not found")
    dist, lines = loaded
    payee = user.has("researcher") and any(_own_line(ln, user) for ln in lines)
    if not (access.can_read_institution_data(user, dist["institution_id"]) or payee):
        raise NotFound(f"distribution {distribution_id} not found")
    return dist, lines


# The busiest read: both statements in one round trip, on the event loop.
_DIST_BY_ID = select(DIST).where(DIST.c.id == bindparam("distribution_id"))
_LINES_OF = (select(LINES).where(LINES.c.distribution_id == bindparam("distribution_id"))
             .order_by(LINES.c.seq))


def _distribution(distribution_id: str
                  ) -> Load[tuple[dict[str, Any], list[dict[str, Any]]] | None]:
    key = {"distribution_id": distribution_id}

    def make(found: list[Any], lines: list[Any]
             ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        return (found[0]._asdict(), [ln._asdict() for ln in lines]) if found else None

    return Load([(_DIST_BY_ID, key), (_LINES_OF, key)], make)


@router.get("/distributions/{distribution_id}", response_model=DistributionRead,
            summary="A distribution's lines (a payee sees the totals and their own line)")
async def read_distribution(distribution_id: str, reads: ReadsDep, user: CurrentPrincipal):
    loaded = await reads.load(_distribution(distribution_id))
    dist, lines = _seen_by(user, distribution_id, loaded)
    return model_response(_read(_payload(dist, lines), viewer=user))


@router.post("/distributions/{distribution_id}/reverse", response_model=DistributionRead,
             summary="Reverse with compensating entries, never an edit")
def reverse_distribution(distribution_id: str, body: Reason, user: Poster,
                         uow: UnitOfWorkDep):
    dist, lines = _visible(uow.session, distribution_id, user, for_update=True)
    if not access.can_post_income(user, dist["institution_id"]):
        raise Forbidden("only the owning institution or finance reverses income")
    new_status = reverse(DistributionStatus(dist["status"]))
    posted = uow.session.execute(
        select(LEDGER).where(LEDGER.c.posting_id == distribution_id).order_by(LEDGER.c.seq)
    ).mappings().all()
    reversal_id = str(uuid.uuid4())
    _post_entries(uow, dist, reversal_id, "reversal", reversing_entries(
        [Entry(e["account"], e["amount_vnd"], e["payee_id"], e["payee_kind"]) for e in posted]))
    uow.session.execute(update(DIST).where(DIST.c.id == distribution_id).values(
        status=new_status.value, reversed_at=uow.now, reversal_reason=body.reason))
    dist.update(status=new_status.value, reversed_at=uow.now, reversal_reason=body.reason)
    payload = _payload(dist, lines)
    uow.record("distribution", distribution_id, "reverse", from_status="posted",
               to_status=new_status.value, reason=body.reason,
               data={"reversal_id": reversal_id})
    data = _event_data(payload)
    data.update(
        reversal_id=reversal_id, reason=body.reason, reversed_at=uow.now,
        gross_vnd=-payload["gross_vnd"], costs_vnd=-payload["costs_vnd"],
        basis_vnd=-payload["basis_vnd"], researcher_pool_vnd=-payload["researcher_pool_vnd"],
        institution_vnd=-payload["institution_vnd"],
        lines=[{**ln, "amount_vnd": -ln["amount_vnd"]} for ln in payload["lines"]])
    uow.emit(events.DISTRIBUTION_REVERSED, distribution_id, data)
    return uow.commit(_read(payload))


@router.get("/distributions/{distribution_id}/history", response_model=HistoryPage,
            summary="The distribution's audit trail")
def read_distribution_history(distribution_id: str, session: SessionDep,
                              user: CurrentPrincipal, limit: Limit = 100,
                              cursor: str | None = None) -> HistoryPage:
    dist, _ = _visible(session, distribution_id, user)
    if not access.can_read_institution_data(user, dist["institution_id"]):
        raise NotFound(f"distribution {distribution_id} not found")
    return history(session, "distribution", distribution_id, limit=limit, cursor=cursor)


@router.get("/agreements/{agreement_id}/distributions", response_model=DistributionPage,
            summary="An agreement's distributions")
def read_distributions(agreement_id: str, session: SessionDep, user: CurrentPrincipal,
                       status: DistributionStatus | None = None, limit: Limit = DEFAULT_PAGE,
                       cursor: str | None = None) -> DistributionPage:
    agreement = session.get(AgreementRow, agreement_id)
    if agreement is None or not access.can_read_institution_data(user,
                                                                 agreement.institution_id):
        raise NotFound(f"agreement {agreement_id} not found")
    stmt = select(DistributionRow).where(DistributionRow.agreement_id == agreement_id)
    if status:
        stmt = stmt.where(DistributionRow.status == status.value)
    rows, next_cursor = keyset_page(session, stmt, DistributionRow.created_at,
                                    DistributionRow.id, limit=limit, cursor=cursor)
    items = []
    for r in rows:
        dist, lines = _load(session, r.id)
        items.append(_read(_payload(dist, lines)))
    return DistributionPage(items=items, next_cursor=next_cursor)


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

