"""How a call is reviewed (review_mode, review_tiers, requires_endorsement), its
cancellation, and an application's version, endorsement and withdrawal.

Existing calls keep today's behaviour: open review, no tiers, no endorsement.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("review_mode", sa.String(10), nullable=False,
                                   server_default="open"))
        batch.add_column(sa.Column("review_tiers", sa.JSON(), nullable=False,
                                   server_default="[]"))
        batch.add_column(sa.Column("requires_endorsement", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("cancelled_from", sa.String(20), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("endorsed_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("endorsed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withdrawal_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("applications") as batch:
        for column in ("withdrawn_at", "withdrawal_reason", "endorsed_at", "endorsed_by",
                       "version"):
            batch.drop_column(column)
    with op.batch_alter_table("calls") as batch:
        for column in ("cancel_reason", "cancelled_from", "requires_endorsement",
                       "review_tiers", "review_mode"):
            batch.drop_column(column)
