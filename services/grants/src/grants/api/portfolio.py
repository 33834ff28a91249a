"""The portfolio view: the state judges the portfolio, not each project (domain.md §2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from grants import repository
from grants.schemas import CallMetrics, Metrics, Portfolio
from servicekit.auth import Principal, require_roles
from servicekit.inputs import UtcTime
from servicekit.problems import Forbidden, Invalid
from servicekit.unit_of_work import SessionDep

router = APIRouter(prefix="/v1", tags=["portfolio"])

Reader = Annotated[Principal, Depends(require_roles("program_manager", "auditor", "admin"))]


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
    overall, by_call = repository.portfolio(session, agency=agency, call_id=call_id,
                                            from_=from_, to=to)
    return Portfolio(
        agency_id=agency,
        filters={"agency": agency, "call_id": call_id,
                 "from": from_.isoformat() if from_ else None,
                 "to": to.isoformat() if to else None},
        overall=Metrics.model_validate(overall, from_attributes=True),
        by_call=[CallMetrics.model_validate({**vars(c.metrics), "call_id": c.call_id,
                                             "title": c.title, "agency_id": c.agency_id},
                                            from_attributes=True) for c in by_call],
    )
