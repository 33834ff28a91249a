"""On PostgreSQL the sandbox migrations go up, down and up again, and the models
(the sandbox's own metadata and the kit's) match the migrated schema exactly."""

from __future__ import annotations

import pytest

from devkit.testing import assert_migrations_round_trip, schema_drift
from sandbox.app import SERVICE_DIR
from sandbox.models import Base

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(postgres_server):
    postgres_server.create_database("sandbox_migrations")
    yield postgres_server.url("sandbox_migrations")
    postgres_server.drop_database("sandbox_migrations")


def test_migrations_go_up_down_and_up_on_postgresql(pg_url):
    assert_migrations_round_trip(SERVICE_DIR, pg_url, Base.metadata)


def test_the_models_match_the_migrated_schema(pg_url):
    assert schema_drift(SERVICE_DIR, pg_url, Base.metadata) == []
