"""Distributions: read one, reverse it, its trail, an agreement's list
(``/v1/distributions/{id}``, ``/v1/agreements/{id}/distributions``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import select

from ipshare import access, handlers, repository
from ipshare.api.deps import RepositoryDep
from ipshare.domain.distributions import Distribution, DistributionStatus
from ipshare.models import DistributionRow
from ipshare.repository import SqlRepository
from ipshare.schemas import DistributionPage, DistributionRead, Reason
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal, require_roles
from servicekit.hotpath.reads import ReadsDep
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import NotFound
from servicekit.responses import model_response
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["income"])

POSTERS = ("institution", "finance")
Poster = Annotated[Principal, Depends(require_roles(*POSTERS))]


def distribution_read(distribution: Distribution, viewer: Principal | None = None
                      ) -> DistributionRead:
    """The distribution as the API shows it: to a payee, the totals and their own line."""
    read = DistributionRead.model_validate(distribution, from_attributes=True)
    if viewer is not None and not access.can_read_institution_data(
            viewer, distribution.institution_id):
        read.lines = [read.lines[i] for i, line in enumerate(distribution.lines)
                      if access.owns_line(viewer, line)]
    return read


@router.get("/distributions/{distribution_id}", response_model=DistributionRead,
            summary="A distribution's lines (a payee sees the totals and their own line)")
async def read_distribution(distribution_id: str, reads: ReadsDep, user: CurrentPrincipal):
    # The busiest read: its two statements in one round trip, on the event loop.
    loaded = await reads.load(repository.distribution_load(distribution_id))
    distribution = handlers.seen_by(user, distribution_id, loaded)
    return model_response(distribution_read(distribution, viewer=user))


@router.post("/distributions/{distribution_id}/reverse", response_model=DistributionRead,
             summary="Reverse with compensating entries, never an edit")
def reverse_distribution(distribution_id: str, body: Reason, user: Poster,
                         uow: UnitOfWorkDep, repo: RepositoryDep):
    distribution = handlers.reverse_distribution(uow, repo, user, distribution_id,
                                                 body.reason)
    return uow.commit(distribution_read(distribution))


@router.get("/distributions/{distribution_id}/history", response_model=HistoryPage,
            summary="The distribution's audit trail")
def read_distribution_history(distribution_id: str, session: SessionDep,
                              user: CurrentPrincipal, limit: Limit = 100,
                              cursor: str | None = None) -> HistoryPage:
    repo = SqlRepository(session)
    distribution = handlers.visible_distribution(repo, user, distribution_id)
    if not access.can_read_institution_data(user, distribution.institution_id):
        raise NotFound(f"distribution {distribution_id} not found")
    return history(session, "distribution", distribution_id, limit=limit,
                   cursor=cursor)


@router.get("/agreements/{agreement_id}/distributions", response_model=DistributionPage,
            summary="An agreement's distributions")
def read_distributions(agreement_id: str, session: SessionDep, user: CurrentPrincipal,
                       status: DistributionStatus | None = None, limit: Limit = DEFAULT_LIMIT,
                       cursor: str | None = None) -> DistributionPage:
    repo = SqlRepository(session)
    agreement = repo.agreement(agreement_id)
    if agreement is None or not access.can_read_institution_data(user,
                                                                 agreement.institution_id):
        raise NotFound(f"agreement {agreement_id} not found")
    stmt = select(DistributionRow).where(DistributionRow.agreement_id == agreement_id)
    if status:
        stmt = stmt.where(DistributionRow.status == status.value)
    rows, next_cursor = keyset_page(session, stmt, DistributionRow.created_at,
                                    DistributionRow.id, limit=limit, cursor=cursor)
    return DistributionPage(items=[distribution_read(d) for d in repo.distributions(rows)],
                            next_cursor=next_cursor)
