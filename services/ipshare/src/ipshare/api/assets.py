"""Assets and the agreements signed on them (``/v1/assets``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import or_, select

from ipshare import access, handlers
from ipshare.api.deps import RepositoryDep
from ipshare.domain.assets import Agreement, AgreementStatus, Asset, Author
from ipshare.models import AgreementRow, AssetRow, AuthorRow
from ipshare.repository import SqlRepository
from ipshare.schemas import (
    AgreementCreate,
    AgreementPage,
    AgreementRead,
    AssetCreate,
    AssetPage,
    AssetRead,
)
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal, require_roles
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import Forbidden
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["assets"])

Institution = Annotated[Principal, Depends(require_roles("institution"))]
# Whoever may ever see an asset: institutions (their own), researchers (what they author),
# finance, auditors and admins.
AssetReader = Annotated[Principal, Depends(require_roles(
    "institution", "researcher", *access.ALL_SEEING))]


def asset_read(asset: Asset) -> AssetRead:
    return AssetRead.model_validate(asset, from_attributes=True)


def agreement_read(agreement: Agreement) -> AgreementRead:
    return AgreementRead.model_validate(agreement, from_attributes=True)


@router.post("/assets", status_code=201, response_model=AssetRead,
             summary="Register an asset not born of a grant")
def create_asset(body: AssetCreate, user: Institution, uow: UnitOfWorkDep,
                 repo: RepositoryDep):
    institution_id = body.institution_id or user.org
    if not user.org:
        raise Forbidden("the token carries no organisation (org) to own the asset")
    if institution_id != user.org:
        raise Forbidden("an institution registers assets for its own organisation only")
    asset = handlers.register_asset(
        uow, repo, institution_id=institution_id, kind=body.kind, title=body.title,
        authors=[Author(a.researcher_id, a.name, a.contribution_bp) for a in body.authors],
        source_grant_id=body.source_grant_id)
    return uow.commit(asset_read(asset), status_code=201)


@router.get("/assets", response_model=AssetPage,
            summary="Assets: an institution's own, the ones a researcher authors; all for "
                    "finance and auditors")
def read_assets(session: SessionDep, user: AssetReader,
                institution_id: str | None = None, source_grant_id: str | None = None,
                limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> AssetPage:
    repo = SqlRepository(session)
    stmt = select(AssetRow)
    if not user.has(*access.ALL_SEEING):
        clauses = []
        if user.has("institution"):
            clauses.append(AssetRow.institution_id == user.org)
        if user.has("researcher"):
            clauses.append(AssetRow.id.in_(select(AuthorRow.asset_id).where(
                AuthorRow.researcher_id == user.sub)))
        if not clauses:
            return AssetPage(items=[])
        stmt = stmt.where(or_(*clauses))
    if institution_id:
        stmt = stmt.where(AssetRow.institution_id == institution_id)
    if source_grant_id:
        stmt = stmt.where(AssetRow.source_grant_id == source_grant_id)
    rows, next_cursor = keyset_page(session, stmt, AssetRow.created_at, AssetRow.id,
                                    limit=limit, cursor=cursor)
    return AssetPage(items=[asset_read(a) for a in repo.assets(rows)],
                     next_cursor=next_cursor)


@router.get("/assets/{asset_id}", response_model=AssetRead, summary="One asset")
def read_asset(asset_id: str, session: SessionDep, user: CurrentPrincipal) -> AssetRead:
    repo = SqlRepository(session)
    return asset_read(handlers.visible_asset(repo, user, asset_id))


@router.get("/assets/{asset_id}/history", response_model=HistoryPage,
            summary="The asset's audit trail")
def read_asset_history(asset_id: str, session: SessionDep, user: CurrentPrincipal,
                       limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    repo = SqlRepository(session)
    handlers.visible_asset(repo, user, asset_id)
    return history(session, "asset", asset_id, limit=limit, cursor=cursor)


@router.post("/assets/{asset_id}/agreements", status_code=201, response_model=AgreementRead,
             summary="Sign a licence, assignment or spin-off on an asset")
def create_agreement(asset_id: str, body: AgreementCreate, user: Institution,
                     uow: UnitOfWorkDep, repo: RepositoryDep):
    agreement = handlers.sign_agreement(
        uow, repo, user, asset_id, kind=body.kind, counterparty=body.counterparty,
        signed_on=body.signed_on, terms=body.terms)
    return uow.commit(agreement_read(agreement), status_code=201)


@router.get("/assets/{asset_id}/agreements", response_model=AgreementPage,
            summary="An asset's agreements")
def read_agreements(asset_id: str, session: SessionDep, user: CurrentPrincipal,
                    status: AgreementStatus | None = None, limit: Limit = DEFAULT_LIMIT,
                    cursor: str | None = None) -> AgreementPage:
    repo = SqlRepository(session)
    asset = handlers.visible_asset(repo, user, asset_id)
    stmt = select(AgreementRow).where(AgreementRow.asset_id == asset_id)
    if status:
        stmt = stmt.where(AgreementRow.status == status.value)
    rows, next_cursor = keyset_page(session, stmt, AgreementRow.created_at,
                                    AgreementRow.id, limit=limit, cursor=cursor)
    return AgreementPage(items=[agreement_read(a) for a in
                                repo.agreements(rows, asset.source_grant_id)],
                         next_cursor=next_cursor)
