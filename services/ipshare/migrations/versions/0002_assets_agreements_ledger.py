"""Assets and authors, versioned policies, agreements, distributions and their lines,
and the append-only double-entry ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 08:15:53.197687
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("institution_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("source_grant_id", sa.String(64), nullable=True),
        sa.Column("source_result_id", sa.String(64), nullable=True),
        sa.Column("registered_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_result_id"),
    )
    op.create_index(
        "ix_assets_institution", "assets", ["institution_id", "created_at", "id"], unique=False
    )
    op.create_index(op.f("ix_assets_source_grant_id"), "assets", ["source_grant_id"], unique=False)
    op.create_table(
        "ledger_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("posting_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("distribution_id", sa.String(36), nullable=False),
        sa.Column("institution_id", sa.String(200), nullable=False),
        sa.Column("account", sa.String(300), nullable=False),
        sa.Column("amount_vnd", sa.BigInteger(), nullable=False),
        sa.Column("payee_id", sa.String(200), nullable=True),
        sa.Column("payee_kind", sa.String(20), nullable=True),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("posting_id", "seq", name="uq_ledger_posting_seq"),
    )
    op.create_index("ix_ledger_account", "ledger_entries", ["account"], unique=False)
    op.create_index(
        op.f("ix_ledger_entries_distribution_id"),
        "ledger_entries",
        ["distribution_id"],
        unique=False,
    )
    op.create_index("ix_ledger_payee", "ledger_entries", ["payee_id", "id"], unique=False)
    op.create_table(
        "policies",
        sa.Column("institution_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("researcher_share_bp", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(10), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", "version"),
    )
    op.create_table(
        "agreements",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("asset_id", sa.String(36), nullable=False),
        sa.Column("institution_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("counterparty", sa.String(300), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("termination_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_agreements_asset", "agreements", ["asset_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "asset_authors",
        sa.Column("asset_id", sa.String(36), nullable=False),
        sa.Column("researcher_id", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("contribution_bp", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
        ),
        sa.PrimaryKeyConstraint("asset_id", "researcher_id"),
    )
    op.create_index("ix_asset_authors_researcher", "asset_authors", ["researcher_id"], unique=False)
    op.create_table(
        "distributions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("agreement_id", sa.String(36), nullable=False),
        sa.Column("asset_id", sa.String(36), nullable=False),
        sa.Column("institution_id", sa.String(200), nullable=False),
        sa.Column("source_grant_id", sa.String(64), nullable=True),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("period", sa.String(100), nullable=False),
        sa.Column("gross_vnd", sa.BigInteger(), nullable=False),
        sa.Column("costs_vnd", sa.BigInteger(), nullable=False),
        sa.Column("basis_vnd", sa.BigInteger(), nullable=False),
        sa.Column("researcher_pool_vnd", sa.BigInteger(), nullable=False),
        sa.Column("institution_vnd", sa.BigInteger(), nullable=False),
        sa.Column("researcher_share_bp", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(10), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("in_kind", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reversal_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_distributions_agreement",
        "distributions",
        ["agreement_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "uq_distributions_standing_reference",
        "distributions",
        ["agreement_id", "reference"],
        unique=True,
        postgresql_where=sa.text("status = 'posted'"),
        sqlite_where=sa.text("status = 'posted'"),
    )
    op.create_table(
        "distribution_lines",
        sa.Column("distribution_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("payee_id", sa.String(200), nullable=False),
        sa.Column("payee_kind", sa.String(20), nullable=False),
        sa.Column("amount_vnd", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["distribution_id"],
            ["distributions.id"],
        ),
        sa.PrimaryKeyConstraint("distribution_id", "seq"),
    )

    _ledger_is_append_only()


_REFUSE_PG = """
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the ledger is append-only (% refused): post a reversal instead', TG_OP;
END $$ LANGUAGE plpgsql;
"""


def _ledger_is_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE_PG)
        op.execute(
            "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE "
            "ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_entries_no_{verb.lower()} BEFORE {verb} ON "
                "ledger_entries BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
            )

def downgrade() -> None:
    op.drop_table("distribution_lines")
    op.drop_index(
        "uq_distributions_standing_reference",
        table_name="distributions",
        postgresql_where=sa.text("status = 'posted'"),
        sqlite_where=sa.text("status = 'posted'"),
    )
    op.drop_index("ix_distributions_agreement", table_name="distributions")
    op.drop_table("distributions")
    op.drop_index("ix_asset_authors_researcher", table_name="asset_authors")
    op.drop_table("asset_authors")
    op.drop_index("ix_agreements_asset", table_name="agreements")
    op.drop_table("agreements")
    op.drop_table("policies")
    op.drop_index("ix_ledger_payee", table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_distribution_id"), table_name="ledger_entries")
    op.drop_index("ix_ledger_account", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_assets_source_grant_id"), table_name="assets")
    op.drop_index("ix_assets_institution", table_name="assets")
    op.drop_table("assets")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
