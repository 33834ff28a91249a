"""Fixtures for the ipshare service tests: the app on a fresh PostgreSQL database, with the
devkit plugin's ``key_dir``, ``tokens`` and ``clock``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devkit.testing import DatabaseFactory
from ipshare.app import create_app, migrate
from ipshare.settings import IpshareSettings
from servicekit.clock import FixedClock


@pytest.fixture(scope="module")
def ipshare_db(databases: DatabaseFactory) -> str:
    """One migrated database per test module (tests use their own data in it)."""
    return databases.fresh("ipshare", migrate)


@pytest.fixture
def client(ipshare_db: str, key_dir: Path, clock: FixedClock) -> Iterator[TestClient]:
    settings = IpshareSettings(database_url=ipshare_db, dev_key_dir=key_dir,
                              migrate_on_start=False)
    app = create_app(settings, clock=clock, background=False)
    with TestClient(app) as test_client:
        yield test_client
