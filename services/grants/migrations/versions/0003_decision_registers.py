"""The kit's decision registers (servicekit.decisions): numbered formal decisions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from servicekit.migrations import create_kit_tables_v2, drop_kit_tables_v2

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables_v2()


def downgrade() -> None:
    drop_kit_tables_v2()
