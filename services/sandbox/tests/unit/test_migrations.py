"""The sandbox migrations upgrade to head and downgrade back to an empty database."""

from pathlib import Path

from sqlalchemy import create_engine, inspect

from sandbox.app import SERVICE_DIR, migrate
from servicekit import migrations


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_the_kit_tables_and_downgrade_removes_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sandbox.db'}"
    migrate(url)
    assert {"outbox", "processed_events", "idempotency_keys", "audit_log"} <= _tables(url)
    migrations.downgrade(SERVICE_DIR, url, "base")
    assert _tables(url) == set()
