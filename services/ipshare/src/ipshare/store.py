"""Reading and writing ipshare rows: the only place rows and domain objects meet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, literal_column, select
from sqlmodel import Session

from ipshare.domain.assets import (
    Agreement,
    AgreementKind,
    AgreementStatus,
    AssetRegistered,
    Author,
    DistributionStatus,
    Policy,
)
from ipshare.domain.split import Basis
from ipshare.models import AgreementRow, AssetRow, AuthorRow, DistributionRow, PolicyRow

AUTHORS = AuthorRow.__table__
POLICIES = PolicyRow.__table__
DISTRIBUTIONS = DistributionRow.__table__
AGREEMENTS = AgreementRow.__table__

# Built once (asset reads and the policy endpoints run them).
_AUTHORS_OF = (
    select(AUTHORS.c.researcher_id, AUTHORS.c.name, AUTHORS.c.contribution_bp)
    .where(AUTHORS.c.asset_id == bindparam("authors_asset_id"))
    .order_by(AUTHORS.c.position)
)
_CURRENT_POLICY = (
    select(POLICIES.c.researcher_share_bp, POLICIES.c.basis, POLICIES.c.version,
           POLICIES.c.created_at)
    .where(POLICIES.c.institution_id == bindparam("policy_institution_id"))
    .order_by(POLICIES.c.version.desc())
    .limit(1)
)
# In the SQL text, not a bound parameter: once psycopg prepares a statement (its fifth
# run on a connection) PostgreSQL may switch to a generic plan, and a generic plan cannot
# prove a parameter equal to the partial index's `status = 'posted'`; it then reads
# every distribution of the agreement instead of one index entry, on every posting.
_IS_STANDING = DISTRIBUTIONS.c.status == literal_column(f"'{DistributionStatus.POSTED.value}'")

_LATEST = POLICIES.alias("latest")
_LATEST_VERSION = (
    select(func.max(_LATEST.c.version))
    .where(_LATEST.c.institution_id == AGREEMENTS.c.institution_id)
    .scalar_subquery()
)
_STANDING_ID = (
    select(DISTRIBUTIONS.c.id)
    .where(DISTRIBUTIONS.c.agreement_id == AGREEMENTS.c.id,
           DISTRIBUTIONS.c.reference == bindparam("inputs_reference"),
           _IS_STANDING)
    .limit(1)
    .scalar_subquery()
)
# What an income posting reads once it holds the agreement's lock, in one statement: the
# asset's authors (one row each, or one row of NULLs), the institution's current policy
# and the distribution (if any) that already stands under the same reference.
_INCOME_INPUTS = (
    select(AUTHORS.c.researcher_id, AUTHORS.c.name, AUTHORS.c.contribution_bp,
           POLICIES.c.researcher_share_bp, POLICIES.c.basis, POLICIES.c.version,
           _STANDING_ID.label("standing_id"))
    .select_from(
        AGREEMENTS
        .outerjoin(AUTHORS, AUTHORS.c.asset_id == AGREEMENTS.c.asset_id)
        .outerjoin(POLICIES, and_(POLICIES.c.institution_id == AGREEMENTS.c.institution_id,
                                  POLICIES.c.version == _LATEST_VERSION)))
    .where(AGREEMENTS.c.id == bindparam("inputs_agreement_id"))
    .order_by(AUTHORS.c.position)
)


@dataclass(frozen=True)
class IncomeInputs:
    policy: Policy
    authors: list[Author]
    standing_id: str | None  # a posted distribution with the same reference


def income_inputs_query(agreement_id: str, reference: str) -> tuple[Any, dict[str, Any]]:
    """The read of :func:`income_inputs`: one statement, keyed by the agreement only, so
    that it can be sent with the lock that precedes it (``servicekit.hotpath``)."""
    return _INCOME_INPUTS, {"inputs_agreement_id": agreement_id,
                            "inputs_reference": reference}


def income_inputs(institution_id: str, rows: list[Any]) -> IncomeInputs:
    """The agreement's policy, authors and standing distribution, from the rows of
    :func:`income_inputs_query` (the agreement exists: at least one row)."""
    first = rows[0]
    policy = Policy(institution_id) if first.version is None else Policy(
        institution_id, first.researcher_share_bp, Basis(first.basis), first.version)
    authors = [Author(r.researcher_id, r.name, r.contribution_bp)
               for r in rows if r.researcher_id is not None]
    return IncomeInputs(policy, authors, first.standing_id)


def authors_of(session: Session, asset_id: str) -> list[Author]:
    rows = session.execute(_AUTHORS_OF, {"authors_asset_id": asset_id}).all()
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
    row = session.execute(_CURRENT_POLICY, {"policy_institution_id": institution_id}).first()
    if row is None:
        return Policy(institution_id), None
    return Policy(institution_id, row.researcher_share_bp, Basis(row.basis),
                  row.version), row.created_at


def agreement_from_row(row: AgreementRow | Any) -> Agreement:
    """The domain agreement from its row (an ``AgreementRow`` or a Core row with its
    ``id``, ``asset_id``, ``institution_id``, ``kind`` and ``status``)."""
    return Agreement(id=row.id, asset_id=row.asset_id, institution_id=row.institution_id,
                     kind=AgreementKind(row.kind), status=AgreementStatus(row.status))
