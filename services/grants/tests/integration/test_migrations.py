"""Migrations are the only way the schema is made: they go up, down and up again, and
the models match what they make."""

from __future__ import annotations

import pytest

import grants.models  # noqa: F401 - every service's models share SQLModel.metadata
import ipshare.models  # noqa: F401
from devkit.testing import assert_migrations_round_trip, schema_drift
from grants.app import SERVICE_DIR

TABLES = {"calls", "applications", "application_team", "application_milestones", "reviews",
          "grants", "milestones", "results", "breaches", "commercialisation_income"}


@pytest.fixture
def pg_url(postgres_server):
    postgres_server.create_database("grants_migrations")
    yield postgres_server.url("grants_migrations")
    postgres_server.drop_database("grants_migrations")


@pytest.mark.postgres
def test_migrations_go_up_down_and_up_on_postgresql(pg_url):
    assert_migrations_round_trip(SERVICE_DIR, pg_url, TABLES)


def test_migrations_go_up_down_and_up_on_sqlite(tmp_path):
    assert_migrations_round_trip(SERVICE_DIR, f"sqlite:///{tmp_path / 'grants.db'}", TABLES)


@pytest.mark.postgres
def test_the_models_match_the_migrated_schema(pg_url):
    assert schema_drift(SERVICE_DIR, pg_url, TABLES) == []
