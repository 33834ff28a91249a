"""The services whose OpenAPI documents are checked, each built by ``create_service_app``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from schemathesis.python import asgi

import grants.app
import ipshare.app
import sandbox.app
from devkit.testing import DatabaseFactory
from grants.settings import GrantsSettings
from ipshare.settings import IpshareSettings
from sandbox.settings import SandboxSettings
from servicekit.settings import ServiceSettings


@dataclass(frozen=True)
class Service:
    name: str
    create_app: Callable[..., FastAPI]
    settings: type[ServiceSettings]
    migrate: Callable[[str], None]

    def app(self, database_url: str, key_dir: Path, **settings: Any) -> FastAPI:
        return self.create_app(
            self.settings(database_url=database_url, dev_key_dir=key_dir,
                          migrate_on_start=False, **settings),
            background=False)


SERVICES = {
    "grants": Service("grants", grants.app.create_app, GrantsSettings, grants.app.migrate),
    "ipshare": Service("ipshare", ipshare.app.create_app, IpshareSettings,
                       ipshare.app.migrate),
    "sandbox": Service("sandbox", sandbox.app.create_app, SandboxSettings,
                       sandbox.app.migrate),
}


@pytest.fixture(params=sorted(SERVICES))
def service(request: pytest.FixtureRequest) -> Service:
    return SERVICES[request.param]


@pytest.fixture
def running(service: Service, databases: DatabaseFactory, tmp_path: Path) -> Iterator[Any]:
    """The service on a fresh database, its lifespan run by schemathesis' ASGI client."""
    app = service.app(databases.fresh(service.name, service.migrate), tmp_path / "keys")
    try:
        with asgi.get_client(app) as client:
            yield app, client
    finally:
        asgi.shutdown_lifespans()  # closes the app's pools before the database is dropped


# What each service's stateful run reached (tests/openapi/test_stateful.py).
STATEFUL_FIGURES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STATEFUL_FIGURES:
        terminalreporter.section("stateful fuzzing")
        for service, line in sorted(STATEFUL_FIGURES.items()):
            terminalreporter.write_line(f"{service}: {line}")
