"""Numbered decisions: an application's award or rejection and a grant's award and
closure carry decision_no and decision_year, unique in their table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("decision_no", sa.String(120), nullable=True))
        batch.add_column(sa.Column("decision_year", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_applications_decision_no",
                                       ["decision_year", "decision_no"])
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("award_decision_no", sa.String(120), nullable=True))
        batch.add_column(sa.Column("award_decision_year", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("decision_no", sa.String(120), nullable=True))
        batch.add_column(sa.Column("decision_year", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_grants_decision_no", ["decision_year", "decision_no"])


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_constraint("uq_grants_decision_no", type_="unique")
        for column in ("decision_year", "decision_no", "award_decision_year",
                       "award_decision_no"):
            batch.drop_column(column)
    with op.batch_alter_table("applications") as batch:
        batch.drop_constraint("uq_applications_decision_no", type_="unique")
        batch.drop_column("decision_year")
        batch.drop_column("decision_no")
