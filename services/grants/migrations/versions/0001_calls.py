"""The kit's tables (outbox, inbox, idempotency, audit) and funding calls.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from servicekit.migrations import create_kit_tables_v1, drop_kit_tables_v1
from servicekit.types import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables_v1()
    op.create_table(
        "calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agency_id", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("budget_vnd", sa.BigInteger, nullable=False),
        sa.Column("max_award_vnd", sa.BigInteger, nullable=False),
        sa.Column("awarded_vnd", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("opens_at", UtcDateTime, nullable=False),
        sa.Column("closes_at", UtcDateTime, nullable=False),
        sa.Column("min_reviews", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.CheckConstraint("budget_vnd > 0", name="ck_calls_budget_positive"),
        sa.CheckConstraint("max_award_vnd > 0 AND max_award_vnd <= budget_vnd",
                           name="ck_calls_max_award"),
        sa.CheckConstraint("awarded_vnd >= 0 AND awarded_vnd <= budget_vnd",
                           name="ck_calls_not_overcommitted"),
        sa.CheckConstraint("closes_at > opens_at", name="ck_calls_window"),
    )
    op.create_index("ix_calls_status_created", "calls", ["status", "created_at", "id"])
    op.create_index("ix_calls_agency", "calls", ["agency_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_table("calls")
    drop_kit_tables_v1()
