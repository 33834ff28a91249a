"""Fixtures for the kit's own tests: a database holding only the kit's tables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Engine

from devkit.localservers import PostgresServer
from devkit.testing import DatabaseFactory, apply_operations
from servicekit.db import create_db_engine
from servicekit.migrations import create_kit_tables_v1, create_kit_tables_v2


def _kit_schema(url: str) -> None:
    def operations() -> None:
        create_kit_tables_v1()
        create_kit_tables_v2()
        # A consumer's business table, to count effects of handled events.
        op.create_table(
            "effects",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("event_id", sa.String(64), nullable=False),
        )

    apply_operations(url, operations)


@pytest.fixture
def kit_engine(databases: DatabaseFactory) -> Iterator[Engine]:
    """A fresh PostgreSQL database migrated with the kit's schema."""
    engine = create_db_engine(databases.fresh("kit", _kit_schema))
    yield engine
    engine.dispose()


@pytest.fixture
def restartable_kit_url(restartable_postgres: PostgresServer) -> str:
    """The kit's schema on a PostgreSQL of the test's own, which it may kill and restart."""
    restartable_postgres.create_database("kit")
    url = restartable_postgres.url("kit")
    _kit_schema(url)
    return url


@pytest.fixture
def sqlite_kit_engine(tmp_path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'kit.db'}"
    _kit_schema(url)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()
