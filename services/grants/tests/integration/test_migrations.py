"""Migrations are the only way the schema is made: they go up, down and up again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from grants.app import SERVICE_DIR
from servicekit import migrations

KIT_TABLES = {"outbox", "processed_events", "idempotency_keys", "audit_log", "audit_checkpoints"}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def round_trip(url: str) -> None:
    migrations.upgrade(SERVICE_DIR, url)
    assert {"calls", *KIT_TABLES} <= tables(url)
    migrations.downgrade(SERVICE_DIR, url, "base")
    assert tables(url) == set()
    migrations.upgrade(SERVICE_DIR, url)
    assert {"calls", *KIT_TABLES} <= tables(url)


@pytest.mark.postgres
def test_migrations_go_up_down_and_up_on_postgresql(postgres_server):
    postgres_server.create_database("grants_migrations")
    try:
        round_trip(postgres_server.url("grants_migrations"))
    finally:
        postgres_server.drop_database("grants_migrations")


def test_migrations_go_up_down_and_up_on_sqlite(tmp_path):
    round_trip(f"sqlite:///{tmp_path / 'grants.db'}")
