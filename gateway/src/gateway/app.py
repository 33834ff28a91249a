"""The gateway app: ``create_app(settings)`` is the proxy in front of separate services.

``build_gateway`` is shared with the embedded runner (``gateway.embedded``), which
mounts the services themselves where this module mounts proxies. Everything that
belongs to the gateway rather than a service sits here: the edge (``gateway.edge``:
request ids, the route table, authentication, rate limits, access log and metrics),
the body limit, ``/health``, ``/ready`` over every service, ``/metrics``, the merged
API document (``/openapi.json``, Swagger UI on ``/docs``), and the development token
issuer in the dev profile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access import AccessRecorder, configure_access_log
from gateway.addresses import ClientAddresses, Networks
from gateway.authn import build_authenticator
from gateway.edge import Edge
from gateway.openapi import DocumentUnavailable, MergedDocuments
from gateway.proxy import ProxyApp, Upstream
from gateway.ratelimits import RateLimits
from gateway.revocations import SharedRevocations, redis_url
from gateway.routes import RouteTable
from gateway.server import FastPath, HeadLimits
from gateway.settings import GatewaySettings
from gateway.spans import traced
from servicekit import devtokens, problems
from servicekit import openapi as kit_openapi
from servicekit.auth import RevocationList
from servicekit.head import HeadAsGet
from servicekit.limits import BodyLimit
from servicekit.telemetry import TELEMETRY, setup_tracing

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


_PROXY = "gateway.proxy"  # the scope key naming the proxy a request goes to


class GatewayApp(FastAPI):
    """FastAPI, with a shorter way through for the requests it proxies.

    A request under the prefix of a service the gateway proxies to (``/<name>/...``, a
    :class:`ProxyApp` mounted at ``/<name>``) gets the same error handling, body limit,
    edge and exception handlers as every other request, inside a lean request span of
    its own (``gateway.spans``) rather than FastAPI's, then goes straight to its proxy: it
    skips the router, which would try every route of the gateway's own before the
    mounts, and the middleware only those routes need. Each of the two is a good part
    of the gateway's CPU per proxied request (bench/README.md).
    """

    head_limits = HeadLimits()  # what the gateway's protocol takes of a request's head

    def proxy_through(self, proxies: Mapping[str, ProxyApp], edge: Mapping[str, object],
                      max_body_bytes: int) -> None:
        self._proxies = {f"/{name}": proxy for name, proxy in proxies.items()}
        self._proxy_edge, self._proxy_body_limit = edge, max_body_bytes
        self._proxy_stack: ASGIApp | None = None
        self._edge: Edge | None = None
        self._fast_path: FastPath | None = None

    def fast_path(self) -> FastPath | None:
        """What ``gateway.server.GatewayProtocol`` needs to serve the proxied requests
        itself: the same edge, upstreams and body limit as this app's own way through.
        Built once; every connection's protocol asks."""
        proxies = getattr(self, "_proxies", None)
        if not proxies:
            return None
        if self._fast_path is None:
            if self._proxy_stack is None:
                self._build_proxy_stack()
            assert self._edge is not None
            self._fast_path = FastPath(self._edge, {p.encode("latin-1"): proxy.upstream
                                                    for p, proxy in proxies.items()},
                                       self._proxy_body_limit)
        return self._fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxies = getattr(self, "_proxies", None)
        if proxies and scope["type"] == "http" and "fastapi.telemetry" not in scope:
            path: str = scope["path"]
            end = path.find("/", 1)
            proxy = proxies.get(path[:end]) if end > 0 else None
            if proxy is not None:
                scope["app"], scope[_PROXY] = self, proxy
                scope["root_path"] = scope.get("root_path", "") + path[:end]
                stack = self._proxy_stack or self._build_proxy_stack()
                await traced(stack, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _build_proxy_stack(self) -> ASGIApp:
        """The proxies behind what FastAPI's own stack puts around its routes, in its
        order: errors as problems (500 and the registered handlers), the edge (so a 413
        carries its request id too), the body limit."""
        handlers = dict(self.exception_handlers)
        error_handler = handlers.pop(Exception, None) or handlers.pop(500, None)

        async def to_proxy(scope: Scope, receive: Receive, send: Send) -> None:
            await scope[_PROXY](scope, receive, send)

        stack: ASGIApp = ExceptionMiddleware(to_proxy, handlers=handlers)
        stack = BodyLimit(stack, max_bytes=self._proxy_body_limit)
        stack = self._edge = Edge(stack, **self._proxy_edge)  # type: ignore[arg-type]
        self._proxy_stack = ServerErrorMiddleware(stack, handler=error_handler)
        return self._proxy_stack


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
    table = RouteTable.default()
    store = redis_url(settings.rate_limit_storage_url)
    redis = Redis.from_url(store, socket_timeout=settings.rate_limit_store_timeout_seconds,
                           socket_connect_timeout=settings.rate_limit_store_timeout_seconds,
                           ) if store else None
    revocations = (SharedRevocations(redis, path=settings.revocation_file,
                                     refresh_seconds=settings.revocation_refresh_seconds)
                   if redis is not None else RevocationList(path=settings.revocation_file))
    authenticator = build_authenticator(settings, revocations)
    recorder = AccessRecorder(table)
    configure_access_log()

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for client in probes.values():
                stack.push_async_callback(client.aclose)
            if redis is not None:
                stack.push_async_callback(redis.aclose)
            background = []
            if isinstance(revocations, SharedRevocations):
                background.append(revocations.keep_fresh())
            if authenticator.jwks is not None:
                await authenticator.jwks.refresh(forced=False)  # the keys before traffic
                background.append(authenticator.jwks.keep_fresh())
            tasks = [asyncio.create_task(job) for job in background]
            stack.push_async_callback(_cancel, tasks)
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            yield

    app = GatewayApp(title=title, description=description, version="1.0.0", lifespan=_lifespan,
                  telemetry=TELEMETRY, redirect_slashes=False, openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.head_limits = HeadLimits(settings.max_header_bytes, settings.max_header_fields)
    problems.install(app)
    kit_openapi.install(app)  # its own operations declare the problems they answer
    app.add_middleware(HeadAsGet)  # its own GET routes answer HEAD, as the Allow says
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    edge = {"table": table, "authenticator": authenticator, "limits": RateLimits(settings),
            "addresses": ClientAddresses(settings.trusted_proxies),
            "metrics_networks": Networks(settings.metrics_networks), "recorder": recorder}
    app.add_middleware(Edge, **edge)  # type: ignore[arg-type]
    app.include_router(operations_router(probes))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(recorder.metrics(), media_type=CONTENT_TYPE_LATEST)

    documents = MergedDocuments(app.openapi, probes, table,
                                cache_seconds=settings.openapi_cache_seconds)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await documents.document())
        except DocumentUnavailable as exc:
            return problems.problem_response(
                request, 503, "the API document is incomplete: no document from "
                + ", ".join(exc.services), headers={"Retry-After": "5"})

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="MOST platform API")

    if settings.profile == "dev":
        issuer = devtokens.DevIssuer(
            settings.dev_key_dir, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
        app.include_router(devtokens.router(issuer))
    for name, mounted in mounts.items():
        app.mount(f"/{name}", mounted, name=name)
    app.proxy_through({n: m for n, m in mounts.items() if isinstance(m, ProxyApp)}, edge,
                      settings.max_body_bytes)
    app.state.settings = settings
    return app


def operations_router(probes: Mapping[str, httpx.AsyncClient]) -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get("/health", summary="Liveness of the gateway itself")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    @api.get("/ready", summary="Readiness: every service answers its own /ready",
             description=GATEWAY_READY_DESCRIPTION,
             responses={200: {"model": kit_openapi.Readiness, "description": "Every service's "
                              "`/ready` answered 200: `ready`, or `degraded` naming each "
                              "degraded service's reasons."},
                        503: {"description": "A service's `/ready` did not answer 200; "
                              "`checks` names each service's state."}})
    async def ready(request: Request) -> JSONResponse:
        results = await asyncio.gather(*(_probe(client) for client in probes.values()))
        checks = dict(zip(probes, results, strict=True))
        if all(v == "ok" or v.startswith(DEGRADED) for v in checks.values()):
            # A service that is ready but degraded (its broker or relay) is named, and
            # the gateway stays ready as the service does.
            status = "ready" if all(v == "ok" for v in checks.values()) else "degraded"
            return JSONResponse({"status": status, "service": "gateway", "checks": checks})
        return problems.problem_response(
            request, 503,
            "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"),
            extensions={"checks": checks},
        )  # fmt: skip

    return api


GATEWAY_READY_DESCRIPTION = (
    "Every service's `/ready`, asked at once; `checks` has one entry per service:\n\n"
    "- every service answers `200 ready`: `200`, `\"status\": \"ready\"`;\n"
    "- every service answers `200` and some say `degraded` (their broker unreachable or "
    "their relay behind; their writes still commit to the outbox): `200`, "
    "`\"status\": \"degraded\"`, naming each one's reasons "
    "(`\"ipshare\": \"degraded: broker unreachable: KafkaTimeoutError\"`);\n"
    "- a service does not answer (`unreachable: ConnectError`) or answers anything but "
    "`200`, e.g. `503` when its database is down (`not ready (503)`): `503` "
    "problem+json.\n\n"
    "See docs/decisions/0011 for why a broker outage leaves the services ready.")


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


DEGRADED = "degraded"


async def _probe(client: httpx.AsyncClient) -> str:
    """"ok", "degraded: <what the service names>", or why the service is not ready."""
    try:
        response = await client.get("/ready")
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}"
    if response.status_code != 200:
        return f"not ready ({response.status_code})"
    try:
        body = response.json()
        if body["status"] != DEGRADED:
            return "ok"
        reasons = [f"{k} {v}" for k, v in body["checks"].items() if v != "ok"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return "ok"  # a 200 without the kit's body: ready, nothing named
    return f"{DEGRADED}: " + ", ".join(reasons)


def create_app(
    settings: GatewaySettings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway as a prefix router in front of separately running services.

    ``transports`` replaces the HTTP transport of named upstreams (tests).
    """
    settings = settings or GatewaySettings()
    setup_tracing("gateway", settings.otlp_endpoint)
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
