"""Fixtures for the sandbox service tests: the app on a fresh PostgreSQL database, with the
devkit plugin's ``key_dir`` and ``tokens``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devkit.testing import DatabaseFactory
from sandbox.app import create_app, migrate
from sandbox.settings import SandboxSettings
from servicekit.clock import FixedClock

# 09:00 in Hanoi on 23 November 2026.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    """A clock at 09:00 in Hanoi (the plugin's stands at 16:00)."""
    return FixedClock(NOW)


@pytest.fixture(scope="module")
def sandbox_db(databases: DatabaseFactory) -> str:
    """One migrated database per test module (tests use their own data in it)."""
    return databases.fresh("sandbox", migrate)


@pytest.fixture
def client(sandbox_db: str, key_dir: Path, clock: FixedClock) -> Iterator[TestClient]:
    settings = SandboxSettings(database_url=sandbox_db, dev_key_dir=key_dir,
                               migrate_on_start=False)
    app = create_app(settings, clock=clock, background=False)
    with TestClient(app) as test_client:
        yield test_client
