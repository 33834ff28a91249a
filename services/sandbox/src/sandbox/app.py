"""``create_app(settings)``: the sandbox service, wired."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sandbox.api import applications, pilots, register, sectors, supervision
from sandbox.domain.sectors import load_profiles
from sandbox.scheduler import Scheduler
from sandbox.settings import SandboxSettings
from servicekit import migrations
from servicekit.bus import Bus
from servicekit.clock import Clock
from servicekit.kit import Kit, PeriodicJob
from servicekit.service import create_service_app

SERVICE_DIR = Path(__file__).resolve().parents[2]


def migrate(url: str) -> None:
    migrations.upgrade(SERVICE_DIR, url)


def run_scheduler(kit: Kit) -> None:
    Scheduler(kit).run()


def create_app(
    settings: SandboxSettings | None = None,
    *,
    bus: Bus | None = None,
    clock: Clock | None = None,
    background: bool = True,
) -> FastAPI:
    settings = settings or SandboxSettings()
    profiles = load_profiles(settings.sectors_file)  # a malformed file stops the start
    app = create_service_app(
        settings,
        title="sandbox",
        description="Regulatory sandbox: sector profiles, applications assessed with four "
        "eyes, pilots under conditions and limits, and the public register.",
        routers=[register.router, pilots.router, supervision.router, applications.router,
                 sectors.router],
        migrate=migrate,
        jobs=[PeriodicJob("scheduler", settings.scheduler_seconds, run_scheduler,
                          first_after=min(settings.scheduler_seconds, 5.0))],
        bus=bus,
        clock=clock,
        background=background,
        tags=["sectors", "applications", "pilots", "register"],
    )
    app.state.sector_profiles = profiles
    return app
