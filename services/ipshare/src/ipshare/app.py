"""``create_app(settings)``: the ipshare service, wired."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from ipshare.api import agreements, assets, distributions, income, policies, statements
from ipshare.consumers import consumer_specs
from ipshare.settings import IpshareSettings
from servicekit import migrations
from servicekit.bus import Bus
from servicekit.clock import Clock
from servicekit.service import create_service_app

SERVICE_DIR = Path(__file__).resolve().parents[2]


def migrate(url: str) -> None:
    migrations.upgrade(SERVICE_DIR, url)


def create_app(
    settings: IpshareSettings | None = None,
    *,
    bus: Bus | None = None,
    clock: Clock | None = None,
    background: bool = True,
) -> FastAPI:
    settings = settings or IpshareSettings()
    return create_service_app(
        settings,
        title="ipshare",
        description="Institution-owned research results, licences and the 30/70 income split.",
        # Income first: posting it is the busiest route, and routing tries them in order.
        routers=[income.router, distributions.router, statements.router, assets.router,
                 policies.router, agreements.router],
        tags=["assets", "agreements", "income", "operations"],
        consumers=consumer_specs(),
        migrate=migrate,
        bus=bus,
        clock=clock,
        background=background,
    )
