"""Assets, their agreements, and institution policies."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import or_, select
from sqlmodel import Session

from ipshare import access, events
from ipshare.api.deps import DEFAULT_PAGE, Limit
from ipshare.domain.assets import AgreementSigned, AgreementStatus, Author, validate_authors
from ipshare.models import AgreementRow, AssetRow, AuthorRow, PolicyRow
from ipshare.schemas import (
    AgreementCreate,
    AgreementPage,
    AgreementRead,
    AssetCreate,
    AssetPage,
    AssetRead,
    AuthorRead,
    PolicyRead,
    PolicyUpdate,
)
from ipshare.store import add_asset, authors_of, current_policy
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal, require_roles
from servicekit.clock import as_utc
from servicekit.paging import keyset_page
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["assets"])

Institution = Annotated[Principal, Depends(require_roles("institution"))]


def asset_read(session: Session, row: AssetRow) -> AssetRead:
    return AssetRead(id=row.id, institution_id=row.institution_id, kind=row.kind,
                     title=row.title,
                     authors=[AuthorRead(researcher_id=a.researcher_id, name=a.name,
                                         contribution_bp=a.contribution_bp)
                              for a in authors_of(session, row.id)],
                     source_grant_id=row.source_grant_id,
                     source_result_id=row.source_result_id, created_at=as_utc(row.created_at))


def agreement_read(row: AgreementRow) -> AgreementRead:
    return AgreementRead(id=row.id, asset_id=row.asset_id, institution_id=row.institution_id,
                         kind=row.kind, counterparty=row.counterparty, signed_on=row.signed_on,
                         terms=row.terms, status=row.status,
                         termination_reason=row.termination_reason,
                         created_at=as_utc(row.created_at))


def is_author(session: Session, asset_id: str, researcher_id: str) -> bool:
    return session.execute(select(AuthorRow.asset_id).where(
        AuthorRow.asset_id == asset_id, AuthorRow.researcher_id == researcher_id)).first() \
        is not None


def visible_asset(session: Session, asset_id: str, p: Principal) -> AssetRow:
    row = session.get(AssetRow, asset_id)
    if row is None or not (access.can_read_institution_data(p, row.institution_id) or (
            p.has("researcher") and is_author(session, asset_id, p.sub))):
        raise NotFound(f"asset {asset_id} not found")
    return row


@router.post("/assets", status_code=201, response_model=AssetRead,
             summary="Register an asset not born of a grant")
def create_asset(body: AssetCreate, user: Institution, uow: UnitOfWorkDep):
    institution_id = body.institution_id or user.org
    if not user.org:
        raise Forbidden("the token carries no organisation (org) to own the asset")
    if institution_id != user.org:
        raise Forbidden("an institution registers assets for its own organisation only")
    authors = [Author(a.researcher_id, a.name, a.contribution_bp) for a in body.authors]
    validate_authors(authors)
    asset_id = str(uuid.uuid4())
    event = add_asset(uow.session, asset_id=asset_id, institution_id=institution_id,
                      kind=body.kind.value, title=body.title, authors=authors,
                      source_grant_id=body.source_grant_id, source_result_id=None,
                      registered_by=user.sub, now=uow.now)
    uow.record("asset", asset_id, "register", to_status="registered")
    events.publish(uow, [event])
    return uow.commit(asset_read(uow.session, uow.session.get(AssetRow, asset_id)),
                      status_code=201)


@router.get("/assets", response_model=AssetPage,
            summary="Assets: an institution's own, the ones a researcher authors; all for "
                    "finance and auditors")
def read_assets(session: SessionDep, user: CurrentPrincipal,
                institution_id: str | None = None, source_grant_id: str | None = None,
                limit: Limit = DEFAULT_PAGE, cursor: str | None = None) -> AssetPage:
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
    return AssetPage(items=[asset_read(session, r) for r in rows], next_cursor=next_cursor)


@router.get("/assets/{asset_id}", response_model=AssetRead, summary="One asset")
def read_asset(asset_id: str, session: SessionDep, user: CurrentPrincipal) -> AssetRead:
    return asset_read(session, visible_asset(session, asset_id, user))


@router.get("/assets/{asset_id}/history", response_model=HistoryPage,
            summary="The asset's audit trail")
def read_asset_history(asset_id: str, session: SessionDep, user: CurrentPrincipal,
                       limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    visible_asset(session, asset_id, user)
    return history(session, "asset", asset_id, limit=limit, cursor=cursor)


@router.post("/assets/{asset_id}/agreements", status_code=201, response_model=AgreementRead,
             summary="Sign a licence, assignment or spin-off on an asset")
def create_agreement(asset_id: str, body: AgreementCreate, user: Institution,
                     uow: UnitOfWorkDep):
    asset = visible_asset(uow.session, asset_id, user)
    if not access.owns(user, asset.institution_id):
        raise Forbidden("only the owning institution signs agreements on its assets")
    row = AgreementRow(id=str(uuid.uuid4()), asset_id=asset.id,
                       institution_id=asset.institution_id, kind=body.kind.value,
                       counterparty=body.counterparty, signed_on=body.signed_on,
                       terms=body.terms, status=AgreementStatus.ACTIVE.value,
                       created_at=uow.now, updated_at=uow.now)
    uow.session.add(row)
    uow.record("agreement", row.id, "sign", to_status=row.status,
               data={"asset_id": asset.id, "kind": row.kind})
    events.publish(uow, [AgreementSigned(
        agreement_id=row.id, asset_id=asset.id, institution_id=asset.institution_id,
        kind=row.kind, counterparty=row.counterparty, signed_on=row.signed_on,
        source_grant_id=asset.source_grant_id)])
    return uow.commit(agreement_read(row), status_code=201)


@router.get("/assets/{asset_id}/agreements", response_model=AgreementPage,
            summary="An asset's agreements")
def read_agreements(asset_id: str, session: SessionDep, user: CurrentPrincipal,
                    status: AgreementStatus | None = None, limit: Limit = DEFAULT_PAGE,
                    cursor: str | None = None) -> AgreementPage:
    visible_asset(session, asset_id, user)
    stmt = select(AgreementRow).where(AgreementRow.asset_id == asset_id)
    if status:
        stmt = stmt.where(AgreementRow.status == status.value)
    rows, next_cursor = keyset_page(session, stmt, AgreementRow.created_at, AgreementRow.id,
                                    limit=limit, cursor=cursor)
    return AgreementPage(items=[agreement_read(r) for r in rows], next_cursor=next_cursor)


def policy_read(institution_id: str, session: Session) -> PolicyRead:
    policy, changed_at = current_policy(session, institution_id)
    return PolicyRead(institution_id=institution_id,
                      researcher_share_bp=policy.researcher_share_bp,
                      basis=policy.basis.value, version=policy.version,
                      updated_at=as_utc(changed_at) if changed_at else None)


@router.put("/institutions/{institution_id}/policy", response_model=PolicyRead,
            summary="Set the sharing policy (≥ 30% to researchers; net or gross basis)")
def put_policy(institution_id: str, body: PolicyUpdate, user: Institution, uow: UnitOfWorkDep):
    if not access.owns(user, institution_id):
        raise Forbidden("an institution sets its own policy only")
    policy, _ = current_policy(uow.session, institution_id)
    if policy.version and (body.researcher_share_bp, body.basis) == (
            policy.researcher_share_bp, policy.basis):
        return uow.commit(policy_read(institution_id, uow.session))  # PUT again: no change
    new = policy.changed(body.researcher_share_bp, body.basis)
    uow.session.add(PolicyRow(institution_id=institution_id, version=new.version,
                              researcher_share_bp=new.researcher_share_bp,
                              basis=new.basis.value, changed_by=user.sub, created_at=uow.now))
    uow.record("policy", institution_id, "change", from_status=f"v{policy.version}",
               to_status=f"v{new.version}",
               data={"researcher_share_bp": new.researcher_share_bp, "basis": new.basis})
    uow.emit(events.POLICY_CHANGED, institution_id, {
        "institution_id": institution_id, "researcher_share_bp": new.researcher_share_bp,
        "basis": new.basis.value, "version": new.version})
    uow.session.flush()
    return uow.commit(policy_read(institution_id, uow.session))


@router.get("/institutions/{institution_id}/policy", response_model=PolicyRead,
            summary="The current sharing policy (version 0: the statutory default)")
def read_policy(institution_id: str, session: SessionDep, user: CurrentPrincipal) -> PolicyRead:
    _may_read_policy(user, institution_id)
    return policy_read(institution_id, session)


def _may_read_policy(user: Principal, institution_id: str) -> None:
    """The institution, the books, and its researchers (whose share the policy sets)."""
    if not (access.can_read_institution_data(user, institution_id)
            or (user.has("researcher") and user.org == institution_id)):
        raise NotFound(f"institution {institution_id} has no policy for you to read")


@router.get("/institutions/{institution_id}/policy/history", response_model=HistoryPage,
            summary="Every change of the sharing policy: who, when, from which version")
def read_policy_history(institution_id: str, session: SessionDep, user: CurrentPrincipal,
                        limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    _may_read_policy(user, institution_id)
    return history(session, "policy", institution_id, limit=limit, cursor=cursor)
