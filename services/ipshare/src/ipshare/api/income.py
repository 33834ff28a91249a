"""Income: ``POST /v1/agreements/{id}/income``, the busiest write, on the hot path
(``servicekit.hotpath``): the agreement's lock, the key and the inputs in one round trip,
the handler, then the distribution, its lines, its ledger entries, the audit record, the
event and the key's record with the ``COMMIT`` in a second."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ipshare import handlers, repository
from ipshare.api.distributions import POSTERS, distribution_read
from ipshare.schemas import DistributionRead, IncomeCreate
from servicekit.hotpath.unit_of_work import HotUnitOfWork, hot_unit_of_work

router = APIRouter(prefix="/v1", tags=["income"])

PostingUnitOfWork = Annotated[HotUnitOfWork, Depends(hot_unit_of_work(*POSTERS))]


@router.post("/agreements/{agreement_id}/income", status_code=201,
             response_model=DistributionRead,
             summary="Record income: exactly one distribution, split to the đồng")
async def post_income(agreement_id: str, body: IncomeCreate, uow: PostingUnitOfWork):
    async with uow:
        inputs = await uow.load(repository.income_inputs(agreement_id, body.reference))
        distribution = handlers.post_income(
            uow, inputs, uow.principal, agreement_id, reference=body.reference,
            period=body.period, gross_vnd=body.gross_vnd, costs_vnd=body.costs_vnd)
        return uow.commit(distribution_read(distribution), status_code=201)
