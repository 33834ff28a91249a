"""The system as ``make run`` and as ``make stack`` serve it, on a fixed clock, one per
test module and way of running.

- ``make-run``: the embedded gateway (``python -m gateway``): the three services mounted
  in it, each on its SQLite file, the in-process bus, dev tokens;
- ``make-stack``: the gateway's proxy mode in front of the services (each request
  forwarded as the stack's gateway forwards it over HTTP, here to the service's ASGI
  app), each service on its own PostgreSQL database; events on the in-process bus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.app import build_gateway
from gateway.embedded import create_embedded_app
from gateway.proxy import ProxyApp, Upstream
from gateway.settings import GatewaySettings
from servicekit.bus import InProcessBus
from servicekit.clock import FixedClock

from .desk import System

START = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # a Monday, 09:00 in Hanoi


def stack_app(databases, var: Path, clock: FixedClock) -> FastAPI:
    """The gateway in proxy mode, its upstreams the services on PostgreSQL."""
    import grants.app
    import ipshare.app
    import sandbox.app
    from grants.settings import GrantsSettings
    from ipshare.settings import IpshareSettings
    from sandbox.settings import SandboxSettings

    keys, bus = var / "dev-keys", InProcessBus()
    factories = {"grants": (grants.app, GrantsSettings), "sandbox": (sandbox.app, SandboxSettings),
                 "ipshare": (ipshare.app, IpshareSettings)}
    services = {
        name: module.create_app(settings(
            database_url=databases.fresh(name, module.migrate), dev_key_dir=keys,
            migrate_on_start=False, relay_poll_seconds=0.05), bus=bus, clock=clock)
        for name, (module, settings) in factories.items()}
    gateway_settings = GatewaySettings(profile="dev", dev_key_dir=keys)
    upstreams = {name: Upstream.from_settings(name, f"http://{name}", gateway_settings,
                                              httpx.ASGITransport(app=app))
                 for name, app in services.items()}

    @asynccontextmanager
    async def run_services(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(bus.close)
            for service in services.values():
                await stack.enter_async_context(service.router.lifespan_context(service))
            yield

    app = build_gateway(
        gateway_settings, mounts={n: ProxyApp(u) for n, u in upstreams.items()},
        probes={n: u.client(5.0) for n, u in upstreams.items()}, lifespan=run_services)
    app.state.bus, app.state.services = bus, services
    return app


@pytest.fixture(scope="module", params=[
    "make-run", pytest.param("make-stack", marks=pytest.mark.postgres)])
def system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[System]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SANDBOX_SCHEDULER_SECONDS", "0")  # the scenario runs it
        # A scenario writes faster than a person: the gateway's rate limits are off.
        for limit in ("READ_PER_SUBJECT", "WRITE_PER_SUBJECT", "READ_PER_ADDRESS",
                      "WRITE_PER_ADDRESS"):
            patch.setenv(f"GATEWAY_RATE_LIMIT_{limit}", "")
        clock = FixedClock(START)
        var = tmp_path_factory.mktemp(request.param) / "var"
        if request.param == "make-run":
            app = create_embedded_app(var, clock=clock)
        else:
            var.mkdir(parents=True)
            app = stack_app(request.getfixturevalue("databases"), var, clock)
        with TestClient(app) as client:
            yield System(app, client, clock)
