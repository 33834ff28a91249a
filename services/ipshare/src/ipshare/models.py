"""SQLModel tables of the ipshare database (schema made only by Alembic migrations).

Every table derives from :class:`Base`, whose metadata is the service's own; the kit's tables
(outbox, inbox, idempotency keys, audit, decision registers) are on SQLModel's metadata,
and ``migrations/env.py`` targets both.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from servicekit.types import BigIntPK, UtcDateTime


class Base(SQLModel, registry=registry()):
    """The ipshare tables: their own metadata (``Base.metadata``)."""


class AssetRow(Base, table=True):
    __tablename__ = "assets"
    __table_args__ = (Index("ix_assets_institution", "institution_id", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    institution_id: str = Field(max_length=200)
    kind: str = Field(max_length=30)
    title: str = Field(max_length=300)
    source_grant_id: str | None = Field(default=None, max_length=64, index=True)
    source_result_id: str | None = Field(default=None, max_length=64, unique=True)
    registered_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class AuthorRow(Base, table=True):
    __tablename__ = "asset_authors"
    __table_args__ = (Index("ix_asset_authors_researcher", "researcher_id"),)

    asset_id: str = Field(foreign_key="assets.id", primary_key=True, max_length=36)
    researcher_id: str = Field(primary_key=True, max_length=200)
    position: int
    name: str = Field(max_length=200)
    contribution_bp: int


class PolicyRow(Base, table=True):
    """Every version an institution's policy had; the highest is current."""

    __tablename__ = "policies"

    institution_id: str = Field(primary_key=True, max_length=200)
    version: int = Field(primary_key=True)
    researcher_share_bp: int
    basis: str = Field(max_length=10)
    changed_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class AgreementRow(Base, table=True):
    __tablename__ = "agreements"
    __table_args__ = (Index("ix_agreements_asset", "asset_id", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    asset_id: str = Field(foreign_key="assets.id", max_length=36)
    institution_id: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    counterparty: str = Field(max_length=300)
    signed_on: date
    terms: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=20)
    termination_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class DistributionRow(Base, table=True):
    __tablename__ = "distributions"
    __table_args__ = (
        Index("ix_distributions_agreement", "agreement_id", "created_at", "id"),
        # One standing posting per reference and agreement; a reversal frees it.
        Index("uq_distributions_standing_reference", "agreement_id", "reference",
              unique=True, postgresql_where=text("status = 'posted'"),
              sqlite_where=text("status = 'posted'")),
    )

    id: str = Field(primary_key=True, max_length=36)
    agreement_id: str = Field(foreign_key="agreements.id", max_length=36)
    asset_id: str = Field(max_length=36)
    institution_id: str = Field(max_length=200)
    source_grant_id: str | None = Field(default=None, max_length=64)
    reference: str = Field(max_length=200)
    period: str = Field(max_length=100)
    gross_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    costs_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    basis_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    researcher_pool_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    institution_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    researcher_share_bp: int
    basis: str = Field(max_length=10)
    policy_version: int
    in_kind: bool
    status: str = Field(max_length=20)
    reversal_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    reversed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))


class LineRow(Base, table=True):
    __tablename__ = "distribution_lines"

    distribution_id: str = Field(foreign_key="distributions.id", primary_key=True,
                                 max_length=36)
    seq: int = Field(primary_key=True)
    payee_id: str = Field(max_length=200)
    payee_kind: str = Field(max_length=20)
    amount_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerEntryRow(Base, table=True):
    """Append-only double-entry ledger: debit positive, credit negative."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_payee", "payee_id", "id"),
        Index("ix_ledger_account", "account"),
        UniqueConstraint("posting_id", "seq", name="uq_ledger_posting_seq"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntPK, primary_key=True,
                                                          autoincrement=True))
    posting_id: str = Field(max_length=36)
    seq: int
    kind: str = Field(max_length=20)  # distribution | reversal
    distribution_id: str = Field(max_length=36, index=True)
    institution_id: str = Field(max_length=200)
    account: str = Field(max_length=300)
    amount_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    payee_id: str | None = Field(default=None, max_length=200)
    payee_kind: str | None = Field(default=None, max_length=20)
    reference: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
