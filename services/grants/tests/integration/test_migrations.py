"""Migrations are the only way the schema is made: they go up, down and up again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from grants.app import SERVICE_DIR
from servicekit import migrations

GRANTS_TABLES = {"calls", "applications", "application_team", "application_milestones",
                 "reviews", "grants", "milestones", "results", "breaches",
                 "commercialisation_income"}
KIT_TABLES = {"outbox", "processed_events", "idempotency_keys", "audit_log", "audit_checkpoints"}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def round_trip(url: str) -> None:
    migrations.upgrade(SERVICE_DIR, url)
    assert {*GRANTS_TABLES, *KIT_TABLES} <= tables(url)
    migrations.downgrade(SERVICE_DIR, url, "base")
    assert tables(url) == set()
    migrations.upgrade(SERVICE_DIR, url)
    assert {*GRANTS_TABLES, *KIT_TABLES} <= tables(url)


@pytest.mark.postgres
def test_migrations_go_up_down_and_up_on_postgresql(postgres_server):
    postgres_server.create_database("grants_migrations")
    try:
        round_trip(postgres_server.url("grants_migrations"))
    finally:
        postgres_server.drop_database("grants_migrations")


def test_migrations_go_up_down_and_up_on_sqlite(tmp_path):
    round_trip(f"sqlite:///{tmp_path / 'grants.db'}")


@pytest.mark.postgres
def test_the_models_match_the_migrated_schema(postgres_server):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import grants.models  # noqa: F401 - other services' tables are in the metadata too
    import ipshare.models  # noqa: F401

    postgres_server.create_database("grants_drift")
    url = postgres_server.url("grants_drift")
    try:
        migrations.upgrade(SERVICE_DIR, url)
        engine = create_engine(url)
        own = {t.name for t in SQLModel.metadata.sorted_tables
               if t.name in GRANTS_TABLES | KIT_TABLES}

        def mine(obj, name, type_, reflected, compare_to) -> bool:
            table = name if type_ == "table" else getattr(obj, "table", None)
            table_name = table if isinstance(table, str) else getattr(table, "name", None)
            return table_name is None or table_name in own

        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": mine})
            diff = compare_metadata(context, SQLModel.metadata)
        engine.dispose()
    finally:
        postgres_server.drop_database("grants_drift")
    # The kit's tables are part of the schema too; nothing may differ.
    assert diff == []
