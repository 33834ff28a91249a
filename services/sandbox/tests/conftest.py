"""Fixtures for the sandbox service tests: the app on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devkit.testing import DatabaseFactory, Tokens
from sandbox.app import create_app, migrate
from sandbox.settings import SandboxSettings
from servicekit.clock import FixedClock

# 09:00 in Hanoi on 23 November 2026.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dev-keys")


@pytest.fixture(scope="session")
def tokens(key_dir: Path) -> Tokens:
    return Tokens(key_dir)


@pytest.fixture
def clock() -> FixedClock:
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
