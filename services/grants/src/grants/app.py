"""``create_app(settings)``: the grants service, wired."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from grants.api import applications, assignments, calls, grants, portfolio
from grants.consumers import consumer_specs
from grants.settings import GrantsSettings
from servicekit import migrations
from servicekit.bus import Bus
from servicekit.clock import Clock
from servicekit.service import create_service_app

SERVICE_DIR = Path(__file__).resolve().parents[2]


def migrate(url: str) -> None:
    migrations.upgrade(SERVICE_DIR, url)


def create_app(
    settings: GrantsSettings | None = None,
    *,
    bus: Bus | None = None,
    clock: Clock | None = None,
    background: bool = True,
) -> FastAPI:
    settings = settings or GrantsSettings()
    return create_service_app(
        settings,
        title="grants",
        description="Lump-sum research grants managed by outputs, with risk-tolerant closure.",
        routers=[calls.router, applications.router, assignments.router, grants.router,
                 portfolio.router],
        consumers=consumer_specs(),
        migrate=migrate,
        bus=bus,
        clock=clock,
        background=background,
    )
