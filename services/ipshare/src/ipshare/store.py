"""Reading and writing ipshare rows: the only place rows and domain objects meet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlmodel import Session

from ipshare.domain.assets import (
    Agreement,
    AgreementKind,
    AgreementStatus,
    AssetRegistered,
    Author,
    Policy,
)
from ipshare.domain.split import Basis
from ipshare.models import AgreementRow, AssetRow, AuthorRow, PolicyRow

AUTHORS = AuthorRow.__table__


def authors_of(session: Session, asset_id: str) -> list[Author]:
    rows = session.execute(
        select(AUTHORS.c.researcher_id, AUTHORS.c.name, AUTHORS.c.contribution_bp)
        .where(AUTHORS.c.asset_id == asset_id).order_by(AUTHORS.c.position)).all()
    return [Author(r.researcher_id, r.name, r.contribution_bp) for r in rows]


def add_asset(session: Session, *, asset_id: str, institution_id: str, kind: str, title: str,
              authors: list[Author], source_grant_id: str | None,
              source_result_id: str | None, registered_by: str,
              now: datetime) -> AssetRegistered:
    session.add(AssetRow(id=asset_id, institution_id=institution_id, kind=kind, title=title,
                         source_grant_id=source_grant_id, source_result_id=source_result_id,
                         registered_by=registered_by, created_at=now))
    session.flush()
    session.execute(insert(AUTHORS), [
        {"asset_id": asset_id, "researcher_id": a.researcher_id, "position": i,
         "name": a.name, "contribution_bp": a.contribution_bp}
        for i, a in enumerate(authors)])
    return AssetRegistered(
        asset_id=asset_id, institution_id=institution_id, kind=kind, title=title,
        authors=[{"researcher_id": a.researcher_id, "name": a.name,
                  "contribution_bp": a.contribution_bp} for a in authors],
        source_grant_id=source_grant_id, source_result_id=source_result_id,
        registered_at=now)


def current_policy(session: Session, institution_id: str) -> tuple[Policy, datetime | None]:
    row = session.execute(
        select(PolicyRow).where(PolicyRow.institution_id == institution_id)
        .order_by(PolicyRow.version.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        return Policy(institution_id), None
    return Policy(institution_id, row.researcher_share_bp, Basis(row.basis),
                  row.version), row.created_at


def agreement_from_row(row: AgreementRow) -> Agreement:
    return Agreement(id=row.id, asset_id=row.asset_id, institution_id=row.institution_id,
                     kind=AgreementKind(row.kind), status=AgreementStatus(row.status))
