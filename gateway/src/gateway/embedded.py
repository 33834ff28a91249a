"""The embedded default: the gateway and all three services in one process.

Each service keeps its own SQLite file under ``var/`` and its own Alembic migrations;
events go through one shared in-process bus by way of the same outbox relay and inbox
consumers the Kafka deployment uses. The services are mounted where the proxy mode
mounts its proxies (``/grants``, ``/sandbox``, ``/ipshare``).

Starlette does not run the lifespans of mounted apps, so this app's lifespan enters
each service's own: that is what migrates its database and starts its relay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from gateway.app import build_gateway
from gateway.settings import GatewaySettings
from servicekit.bus import InProcessBus
from servicekit.clock import Clock
from servicekit.settings import default_var_dir
from servicekit.telemetry import setup_tracing


def sqlite_url(var_dir: Path, service: str) -> str:
    return f"sqlite:///{var_dir / service}.db"


def create_service_apps(
    var_dir: Path, bus: InProcessBus, *, clock: Clock | None = None
) -> dict[str, FastAPI]:
    """The three services on SQLite files under ``var_dir``, sharing ``bus``."""
    # Imported here: the proxy-mode gateway does not need the services installed.
    from grants.app import create_app as create_grants
    from grants.settings import GrantsSettings
    from ipshare.app import create_app as create_ipshare
    from ipshare.settings import IpshareSettings
    from sandbox.app import create_app as create_sandbox
    from sandbox.settings import SandboxSettings

    key_dir = var_dir / "dev-keys"
    return {
        "grants": create_grants(
            GrantsSettings(database_url=sqlite_url(var_dir, "grants"), dev_key_dir=key_dir),
            bus=bus, clock=clock,
        ),
        "sandbox": create_sandbox(
            SandboxSettings(database_url=sqlite_url(var_dir, "sandbox"), dev_key_dir=key_dir),
            bus=bus, clock=clock,
        ),
        "ipshare": create_ipshare(
            IpshareSettings(database_url=sqlite_url(var_dir, "ipshare"), dev_key_dir=key_dir),
            bus=bus, clock=clock,
        ),
    }  # fmt: skip


def create_embedded_app(
    var_dir: Path = default_var_dir(),
    *,
    bus: InProcessBus | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """One app: gateway routes, the three services mounted, dev tokens on."""
    var_dir = Path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    setup_tracing("most-embedded")  # one process, one tracer provider for all services
    bus = bus or InProcessBus()
    services = create_service_apps(var_dir, bus, clock=clock)

    @asynccontextmanager
    async def run_services(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(bus.close)  # last, after every relay and consumer stopped
            for service in services.values():
                await stack.enter_async_context(service.router.lifespan_context(service))
            yield

    settings = GatewaySettings(profile="dev", dev_key_dir=var_dir / "dev-keys")
    app = build_gateway(
        settings,
        mounts=services,
        probes={
            name: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=service), base_url=f"http://{name}",
                timeout=settings.ready_timeout_seconds,
            )
            for name, service in services.items()
        },
        lifespan=run_services,
        title="MOST platform (embedded)",
        description="The gateway and the grants, sandbox and ipshare services in one "
        "process, each on its own SQLite database, events through an in-process bus.",
    )
    app.state.bus = bus
    app.state.services = services
    return app
