"""Migrations are the only way the schema is made: they go up, down and up again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from ipshare.app import SERVICE_DIR
from servicekit import migrations

IPSHARE_TABLES = {"assets", "asset_authors", "policies", "agreements", "distributions",
                  "distribution_lines", "ledger_entries"}
KIT_TABLES = {"outbox", "processed_events", "idempotency_keys", "audit_log", "audit_checkpoints"}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def round_trip(url: str) -> None:
    migrations.upgrade(SERVICE_DIR, url)
    assert {*IPSHARE_TABLES, *KIT_TABLES} <= tables(url)
    migrations.downgrade(SERVICE_DIR, url, "base")
    assert tables(url) == set()
    migrations.upgrade(SERVICE_DIR, url)
    assert {*IPSHARE_TABLES, *KIT_TABLES} <= tables(url)


@pytest.mark.postgres
def test_migrations_go_up_down_and_up_on_postgresql(postgres_server):
    postgres_server.create_database("ipshare_migrations")
    try:
        round_trip(postgres_server.url("ipshare_migrations"))
    finally:
        postgres_server.drop_database("ipshare_migrations")


def test_migrations_go_up_down_and_up_on_sqlite(tmp_path):
    round_trip(f"sqlite:///{tmp_path / 'ipshare.db'}")


@pytest.mark.postgres
def test_the_models_match_the_migrated_schema(postgres_server):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import grants.models  # noqa: F401 - other services' tables are in the metadata too
    import ipshare.models  # noqa: F401

    postgres_server.create_database("ipshare_drift")
    url = postgres_server.url("ipshare_drift")
    try:
        migrations.upgrade(SERVICE_DIR, url)
        engine = create_engine(url)
        own = {t.name for t in SQLModel.metadata.sorted_tables
               if t.name in IPSHARE_TABLES | KIT_TABLES}

        def mine(obj, name, type_, reflected, compare_to) -> bool:
            table = name if type_ == "table" else getattr(obj, "table", None)
            table_name = table if isinstance(table, str) else getattr(table, "name", None)
            return table_name is None or table_name in own

        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": mine})
            diff = compare_metadata(context, SQLModel.metadata)
        engine.dispose()
    finally:
        postgres_server.drop_database("ipshare_drift")
    # The kit's tables are part of the schema too; nothing may differ.
    assert diff == []
