"""On PostgreSQL the sandbox migrations go up, down and up again, and the models
(the sandbox's own metadata and the kit's) match the migrated schema exactly."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from devkit.testing import KIT_TABLES, assert_migrations_round_trip
from sandbox.app import SERVICE_DIR
from sandbox.models import Base
from servicekit import migrations

pytestmark = pytest.mark.postgres

TABLES = set(Base.metadata.tables)


@pytest.fixture
def pg_url(postgres_server):
    postgres_server.create_database("sandbox_migrations")
    yield postgres_server.url("sandbox_migrations")
    postgres_server.drop_database("sandbox_migrations")


def test_migrations_go_up_down_and_up_on_postgresql(pg_url):
    assert_migrations_round_trip(SERVICE_DIR, pg_url, TABLES)


def test_the_models_match_the_migrated_schema(pg_url):
    migrations.upgrade(SERVICE_DIR, pg_url)
    own = {*TABLES, *KIT_TABLES, "decision_registers"}

    def ours(obj: Any, name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name",
                                                      None)
        return table is None or table in own

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": ours,
                                                             "compare_type": True})
            diff = compare_metadata(context, [Base.metadata, SQLModel.metadata])
    finally:
        engine.dispose()
    assert diff == []
