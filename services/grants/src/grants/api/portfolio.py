"""The portfolio view: the state judges the portfolio, not each project (domain.md §2)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import case, func, select

from grants.domain.grants import Outcome, ResultKind
from grants.models import CallRow, GrantRow, IncomeRow, ResultRow
from servicekit.auth import Principal, require_roles
from servicekit.inputs import UtcTime
from servicekit.problems import Forbidden, Invalid
from servicekit.unit_of_work import SessionDep

router = APIRouter(prefix="/v1", tags=["portfolio"])

Reader = Annotated[Principal, Depends(require_roles("program_manager", "auditor", "admin"))]


class AcceptedRisk(BaseModel):
    """Failed in good faith: accepted risk, never counted as a loss."""

    count: int
    awarded_vnd: int
    disbursed_vnd: int


class Commercialisation(BaseModel):
    gross_vnd: int
    researchers_vnd: int
    distributions: int


class Metrics(BaseModel):
    grants: int
    active: int
    closed: int
    by_outcome: dict[str, int]
    success_rate: float | None
    success_rate_bp: int | None
    accepted_risk: AcceptedRisk
    awarded_vnd: int
    committed_vnd: int
    disbursed_vnd: int
    cancelled_vnd: int
    refund_due_vnd: int
    results_by_kind: dict[str, int]
    commercialisation: Commercialisation


class CallMetrics(Metrics):
    call_id: str
    title: str
    agency_id: str


class Portfolio(BaseModel):
    agency_id: str | None  # the agency whose portfolio this is; None: national
    filters: dict[str, Any]
    overall: Metrics
    by_call: list[CallMetrics]


def _metrics(row: Any, results: dict[str, int], income: Any) -> dict[str, Any]:
    by_outcome = {o.value: int(getattr(row, o.value) or 0) for o in Outcome}
    closed = int(row.closed or 0)
    successes = by_outcome["completed"] + by_outcome["partially_completed"]
    return dict(
        grants=int(row.grants or 0), active=int(row.grants or 0) - closed, closed=closed,
        by_outcome=by_outcome,
        success_rate=round(successes / closed, 4) if closed else None,
        success_rate_bp=successes * 10_000 // closed if closed else None,
        accepted_risk=AcceptedRisk(count=by_outcome["failed_in_good_faith"],
                                   awarded_vnd=int(row.risk_awarded or 0),
                                   disbursed_vnd=int(row.risk_disbursed or 0)),
        awarded_vnd=int(row.awarded or 0),
        committed_vnd=int(row.awarded or 0) - int(row.cancelled or 0),
        disbursed_vnd=int(row.disbursed or 0), cancelled_vnd=int(row.cancelled or 0),
        refund_due_vnd=int(row.refund or 0),
        results_by_kind={k.value: results.get(k.value, 0) for k in ResultKind},
        commercialisation=Commercialisation(
            gross_vnd=int(getattr(income, "gross", 0) or 0),
            researchers_vnd=int(getattr(income, "researchers", 0) or 0),
            distributions=int(getattr(income, "distributions", 0) or 0)),
    )


@router.get("/portfolio", response_model=Portfolio,
            summary="Portfolio metrics: programme managers for their agency, auditors and "
                    "admins nationally")
def read_portfolio(
    session: SessionDep, user: Reader,
    agency: str | None = None, call_id: str | None = None,
    from_: Annotated[UtcTime | None, Query(alias="from")] = None,
    to: UtcTime | None = None,
) -> Portfolio:
    if not user.has("auditor", "admin"):
        if not user.org:  # no agency to scope to: never the national figures
            raise Forbidden("a programme manager's token names no agency (org)")
        if agency not in (None, user.org):
            raise Forbidden("programme managers see their own agency's portfolio only")
        agency = user.org
    if from_ and to and to <= from_:
        raise Invalid("'to' must be after 'from'", loc=["query", "to"])

    where = []
    if agency:
        where.append(GrantRow.agency_id == agency)
    if call_id:
        where.append(GrantRow.call_id == call_id)
    if from_:
        where.append(GrantRow.created_at >= from_)
    if to:
        where.append(GrantRow.created_at < to)

    def outcome_count(o: Outcome) -> Any:
        return func.sum(case((GrantRow.outcome == o.value, 1), else_=0)).label(o.value)

    good_faith = GrantRow.outcome == Outcome.FAILED_IN_GOOD_FAITH.value
    columns = [
        func.count(GrantRow.id).label("grants"),
        func.sum(case((GrantRow.status == "closed", 1), else_=0)).label("closed"),
        *[outcome_count(o) for o in Outcome],
        func.sum(GrantRow.awarded_vnd).label("awarded"),
        func.sum(GrantRow.disbursed_vnd).label("disbursed"),
        func.sum(GrantRow.cancelled_vnd).label("cancelled"),
        func.sum(GrantRow.refund_due_vnd).label("refund"),
        func.sum(case((good_faith, GrantRow.awarded_vnd), else_=0)).label("risk_awarded"),
        func.sum(case((good_faith, GrantRow.disbursed_vnd), else_=0)).label("risk_disbursed"),
    ]
    overall = session.execute(select(*columns).where(*where)).one()
    per_call = session.execute(
        select(GrantRow.call_id, *columns).where(*where).group_by(GrantRow.call_id)).all()

    results: dict[str | None, dict[str, int]] = {}
    for cid, kind, n in session.execute(
        select(GrantRow.call_id, ResultRow.kind, func.count(ResultRow.id))
        .join(GrantRow, GrantRow.id == ResultRow.grant_id).where(*where)
        .group_by(GrantRow.call_id, ResultRow.kind)
    ):
        for key in (cid, None):
            bucket = results.setdefault(key, {})
            bucket[kind] = bucket.get(kind, 0) + n

    income_cols = [
        func.sum(IncomeRow.gross_vnd).label("gross"),
        func.sum(IncomeRow.researchers_vnd).label("researchers"),
        func.sum(case((IncomeRow.gross_vnd >= 0, 1), else_=-1)).label("distributions"),
    ]
    joined = select(*income_cols).join(GrantRow, GrantRow.id == IncomeRow.source_grant_id)
    income_overall = session.execute(joined.where(*where)).one()
    income_by_call = {r.call_id: r for r in session.execute(
        select(GrantRow.call_id, *income_cols)
        .join(GrantRow, GrantRow.id == IncomeRow.source_grant_id)
        .where(*where).group_by(GrantRow.call_id))}
    calls = {c.id: c for c in session.execute(
        select(CallRow).where(CallRow.id.in_([r.call_id for r in per_call]))).scalars()}

    by_call = [
        CallMetrics(call_id=r.call_id, title=calls[r.call_id].title,
                    agency_id=calls[r.call_id].agency_id,
                    **_metrics(r, results.get(r.call_id, {}), income_by_call.get(r.call_id)))
        for r in per_call
    ]
    by_call.sort(key=lambda c: c.call_id)
    return Portfolio(
        agency_id=agency,
        filters={"agency": agency, "call_id": call_id,
                 "from": from_.isoformat() if from_ else None,
                 "to": to.isoformat() if to else None},
        overall=Metrics(**_metrics(overall, results.get(None, {}), income_overall)),
        by_call=by_call,
    )

