"""The gateway app: ``create_app(settings)`` is the proxy in front of separate services.

``build_gateway`` is shared with the embedded runner (``gateway.embedded``), which
mounts the services themselves where this module mounts proxies. Everything that
belongs to the gateway rather than a service sits here: request ids, problem+json for
unknown prefixes, ``/health``, ``/ready`` over every service, and the development token
issuer in the dev profile. Authentication and rate limits (the full gateway) go in
``build_gateway`` as middleware, so they cover the mounts of both modes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from gateway.edge import EdgeMiddleware
from gateway.proxy import ProxyApp, Upstream
from gateway.request_ids import RequestIdMiddleware
from gateway.settings import GatewaySettings
from servicekit import devtokens, problems
from servicekit.limits import BodyLimit
from servicekit.telemetry import TELEMETRY

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_gateway(
    settings: GatewaySettings,
    *,
    mounts: Mapping[str, ASGIApp],
    probes: Mapping[str, httpx.AsyncClient],
    lifespan: Lifespan | None = None,
    title: str = "MOST platform gateway",
    description: str = "",
) -> FastAPI:
    """A gateway serving ``mounts`` at ``/<name>`` and readiness over ``probes``.

    ``probes`` are clients whose base URL reaches each service; ``/ready`` asks every
    one for ``GET /ready``. They are closed when the app shuts down.
    """

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for client in probes.values():
                stack.push_async_callback(client.aclose)
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            yield

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=_lifespan,
                  telemetry=TELEMETRY)
    problems.install(app)
    app.add_middleware(EdgeMiddleware, services=list(mounts))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(operations_router(probes))
    if settings.profile == "dev":
        issuer = devtokens.DevIssuer(
            settings.dev_key_dir, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
        app.include_router(devtokens.router(issuer))
    for name, mounted in mounts.items():
        app.mount(f"/{name}", mounted, name=name)
    app.state.settings = settings
    return app


def operations_router(probes: Mapping[str, httpx.AsyncClient]) -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get("/health", summary="Liveness of the gateway itself")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    @api.get("/ready", summary="Readiness: every service answers its own /ready")
    async def ready(request: Request) -> JSONResponse:
        results = await asyncio.gather(*(_probe(client) for client in probes.values()))
        checks = dict(zip(probes, results, strict=True))
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ready", "service": "gateway", "checks": checks})
        return problems.problem_response(
            request, 503,
            "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"),
            extensions={"checks": checks},
        )  # fmt: skip

    return api


async def _probe(client: httpx.AsyncClient) -> str:
    try:
        response = await client.get("/ready")
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok" if response.status_code == 200 else f"not ready ({response.status_code})"


def create_app(
    settings: GatewaySettings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway as a prefix router in front of separately running services.

    ``transports`` replaces the HTTP transport of named upstreams (tests).
    """
    settings = settings or GatewaySettings()
    transports = transports or {}
    upstreams = [
        Upstream.from_settings(name, url, settings, transports.get(name))
        for name, url in settings.upstream_urls().items()
    ]

    @asynccontextmanager
    async def close_pools(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for upstream in upstreams:
                await upstream.aclose()

    return build_gateway(
        settings,
        mounts={u.name: ProxyApp(u) for u in upstreams},
        probes={u.name: u.client(settings.ready_timeout_seconds) for u in upstreams},
        lifespan=close_pools,
        description="Routes /grants, /sandbox and /ipshare to the services' own URLs.",
    )
