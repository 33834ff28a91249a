"""Reviewer assignments and their declarations; each application keeps the reviews a
decision on it needs (existing ones: their call's min_reviews, as no call had tiers).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("agency_id", sa.String(200), nullable=False),
        sa.Column("reviewer_id", sa.String(200), nullable=False),
        sa.Column("reviewer_org", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("assigned_by", sa.String(200), nullable=False),
        sa.Column("conflict_of_interest", sa.Boolean(), nullable=True),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"]),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_assignments_application_id"), "assignments", ["application_id"],
                    unique=False)
    op.create_index("ix_assignments_reviewer", "assignments",
                    ["reviewer_id", "created_at", "id"], unique=False)
    op.create_index("ix_assignments_agency", "assignments", ["agency_id", "created_at", "id"],
                    unique=False)
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("reviews_needed", sa.Integer(), nullable=True))
    op.execute("UPDATE applications SET reviews_needed = "
               "(SELECT calls.min_reviews FROM calls WHERE calls.id = applications.call_id)")
    with op.batch_alter_table("applications") as batch:
        batch.alter_column("reviews_needed", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("reviews_needed")
    op.drop_index("ix_assignments_agency", table_name="assignments")
    op.drop_index("ix_assignments_reviewer", table_name="assignments")
    op.drop_index(op.f("ix_assignments_application_id"), table_name="assignments")
    op.drop_table("assignments")
