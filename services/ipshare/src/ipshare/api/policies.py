"""Institutions' sharing policies (``/v1/institutions/{id}/policy``): at least 30 % of
the income to the researchers, on a net or gross basis; versioned, never edited."""

from __future__ import annotations

from fastapi import APIRouter

from ipshare import access, handlers
from ipshare.api.assets import Institution
from ipshare.api.deps import RepositoryDep
from ipshare.repository import SqlRepository
from ipshare.schemas import PolicyRead, PolicyUpdate
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal
from servicekit.paging import Limit
from servicekit.problems import NotFound
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["assets"])


def policy_read(repo: SqlRepository, institution_id: str) -> PolicyRead:
    policy, changed_at = repo.policy(institution_id)
    return PolicyRead(institution_id=institution_id,
                      researcher_share_bp=policy.researcher_share_bp,
                      basis=policy.basis.value, version=policy.version,
                      updated_at=changed_at)


@router.put("/institutions/{institution_id}/policy", response_model=PolicyRead,
            summary="Set the sharing policy (≥ 30% to researchers; net or gross basis)")
def put_policy(institution_id: str, body: PolicyUpdate, user: Institution, uow: UnitOfWorkDep,
               repo: RepositoryDep):
    handlers.change_policy(uow, repo, user, institution_id, body.researcher_share_bp,
                           body.basis)
    return uow.commit(policy_read(repo, institution_id))


@router.get("/institutions/{institution_id}/policy", response_model=PolicyRead,
            summary="The current sharing policy (version 0: the statutory default)")
def read_policy(institution_id: str, session: SessionDep, user: CurrentPrincipal
                ) -> PolicyRead:
    repo = SqlRepository(session)
    _may_read_policy(user, institution_id)
    return policy_read(repo, institution_id)


def _may_read_policy(user: Principal, institution_id: str) -> None:
    if not access.can_read_policy(user, institution_id):
        raise NotFound(f"institution {institution_id} has no policy for you to read")


@router.get("/institutions/{institution_id}/policy/history", response_model=HistoryPage,
            summary="Every change of the sharing policy: who, when, from which version")
def read_policy_history(institution_id: str, session: SessionDep, user: CurrentPrincipal,
                        limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    _may_read_policy(user, institution_id)
    return history(session, "policy", institution_id, limit=limit, cursor=cursor)
