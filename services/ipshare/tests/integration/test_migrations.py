"""Migrations are the only way the schema is made: they go up, down and up again, and
the models match what they make."""

from __future__ import annotations

import pytest

from devkit.testing import assert_migrations_round_trip, schema_drift
from ipshare.app import SERVICE_DIR
from ipshare.models import Base


@pytest.fixture
def pg_url(postgres_server):
    postgres_server.create_database("ipshare_migrations")
    yield postgres_server.url("ipshare_migrations")
    postgres_server.drop_database("ipshare_migrations")


@pytest.mark.postgres
def test_migrations_go_up_down_and_up_on_postgresql(pg_url):
    assert_migrations_round_trip(SERVICE_DIR, pg_url, Base.metadata)


def test_migrations_go_up_down_and_up_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'ipshare.db'}"
    assert_migrations_round_trip(SERVICE_DIR, url, Base.metadata)


@pytest.mark.postgres
def test_the_models_match_the_migrated_schema(pg_url):
    assert schema_drift(SERVICE_DIR, pg_url, Base.metadata) == []
