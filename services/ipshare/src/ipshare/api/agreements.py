"""Agreements: read, terminate (``/v1/agreements/{id}``)."""

from __future__ import annotations

from fastapi import APIRouter

from ipshare import handlers
from ipshare.api.assets import Institution, agreement_read
from ipshare.api.deps import RepositoryDep
from ipshare.repository import SqlRepository
from ipshare.schemas import AgreementRead, Reason
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal
from servicekit.paging import Limit
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])


@router.get("/{agreement_id}", response_model=AgreementRead, summary="One agreement")
def read_agreement(agreement_id: str, session: SessionDep, user: CurrentPrincipal):
    repo = SqlRepository(session)
    return agreement_read(handlers.visible_agreement(repo, user, agreement_id))


@router.post("/{agreement_id}/terminate", response_model=AgreementRead,
             summary="Terminate with a reason; income on it is refused afterwards")
def terminate_agreement(agreement_id: str, body: Reason, user: Institution,
                        uow: UnitOfWorkDep, repo: RepositoryDep):
    agreement = handlers.terminate_agreement(uow, repo, user, agreement_id, body.reason)
    return uow.commit(agreement_read(agreement))


@router.get("/{agreement_id}/history", response_model=HistoryPage,
            summary="The agreement's audit trail")
def read_agreement_history(agreement_id: str, session: SessionDep, user: CurrentPrincipal,
                           limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    repo = SqlRepository(session)
    handlers.visible_agreement(repo, user, agreement_id)
    return history(session, "agreement", agreement_id, limit=limit, cursor=cursor)
