"""The sandbox migrations go up, down to an empty database and up again, and the models
match what they make (SQLite here; PostgreSQL in tests/integration)."""

from pathlib import Path

from devkit.testing import assert_migrations_round_trip
from sandbox.app import SERVICE_DIR
from sandbox.models import Base


def test_migrations_go_up_down_and_up_on_sqlite(tmp_path: Path) -> None:
    assert {"applications", "assessments", "pilots", "decisions", "reports",
            "incidents", "exits"} <= set(Base.metadata.tables)
    url = f"sqlite:///{tmp_path / 'sandbox.db'}"
    assert_migrations_round_trip(SERVICE_DIR, url, Base.metadata)
