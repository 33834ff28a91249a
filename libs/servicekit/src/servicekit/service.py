"""The FastAPI application every service is built on (its ``Kit``: ``servicekit.kit``).

``create_service_app`` is the only place where a service's components are connected:
database, bus, outbox relay, consumers, token verification, problems, telemetry,
health and readiness. Nothing is built at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from servicekit import idempotency, openapi, problems
from servicekit.auth import RevocationList, TokenVerifier
from servicekit.bus import Bus, InProcessBus, KafkaBus
from servicekit.clock import Clock, SystemClock
from servicekit.db import create_db_engine, ping
from servicekit.devtokens import ensure_dev_keys
from servicekit.head import HeadAsGet
from servicekit.hotpath.pipeline import open_pool
from servicekit.hotpath.statements import is_psycopg
from servicekit.inbox import EventConsumer
from servicekit.jwks import JwksKeys
from servicekit.kit import ConsumerSpec, Kit, PeriodicJob
from servicekit.limits import BodyLimit
from servicekit.outbox import OutboxRelay
from servicekit.readiness import BoundedCheck, NoAnswer
from servicekit.settings import ServiceSettings
from servicekit.telemetry import (
    SERVICE_TELEMETRY,
    configure_logging,
    instrument,
    observe_outbox,
    setup_tracing,
)

log = logging.getLogger(__name__)


def build_verifier(settings: ServiceSettings) -> tuple[TokenVerifier, JwksKeys | None]:
    """From the settings: the JWKS's keys, else the PEM file, else (dev) the dev issuer's
    key. The JWKS cache is returned too: the app fetches it before traffic."""
    common = {"issuer": settings.jwt_issuer, "audience": settings.jwt_audience,
              "leeway_seconds": settings.jwt_leeway_seconds,
              "revocations": RevocationList(path=settings.revocation_file)}
    if settings.jwt_jwks_url:
        jwks = JwksKeys(settings.jwt_jwks_url, cache_seconds=settings.jwt_jwks_cache_seconds,
                        cooldown_seconds=settings.jwt_jwks_cooldown_seconds,
                        timeout_seconds=settings.jwt_jwks_timeout_seconds)
        return TokenVerifier([], key_resolver=jwks.resolve, **common), jwks
    key_file = settings.jwt_public_key_file
    if key_file is None:
        if settings.profile != "dev":
            raise ValueError("jwt_jwks_url or jwt_public_key_file is required outside "
                             "the dev profile")
        _, key_file = ensure_dev_keys(settings.dev_key_dir)
    return TokenVerifier.from_pem_file(Path(key_file), **common), None


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    migrate: Callable[[str], None] | None = None,
    consumers: Sequence[ConsumerSpec] = (),
    jobs: Sequence[PeriodicJob] = (),
    bus: Bus | None = None,
    clock: Clock | None = None,
    background: bool = True,
    version: str = "1.0.0",
    tags: Sequence[str] = (),
) -> FastAPI:
    """Build a service app. ``background=False`` leaves relay, consumers and ``jobs`` (the
    service's own periodic work) to the caller.

    ``tags``: the order the API documentation shows the routers' tags in (otherwise the
    order they first appear in ``routers``, which is the order routing tries them).
    """
    name = settings.service_name
    configure_logging(settings.log_level, json=settings.log_json)
    setup_tracing(name, settings.otlp_endpoint)
    engine = create_db_engine(settings.database_url, pool_size=settings.db_pool_size,
                               max_overflow=settings.db_pool_overflow,
                               pool_timeout=settings.db_pool_timeout_seconds)
    clock = clock or SystemClock()
    owns_bus = bus is None
    if bus is None and settings.kafka_bootstrap:
        bus = KafkaBus(settings.kafka_bootstrap, client_id=name,
                       session_timeout_seconds=settings.consumer_session_timeout_seconds)
    elif bus is None:
        bus = InProcessBus()
    relay = OutboxRelay(engine, bus, name=name, batch_size=settings.relay_batch_size,
                        poll_seconds=settings.relay_poll_seconds,
                        linger_seconds=settings.relay_linger_seconds, clock=clock,
                        retry_max_seconds=settings.relay_retry_max_seconds)
    verifier, jwks = build_verifier(settings)
    kit = Kit(name=name, settings=settings, engine=engine, clock=clock, bus=bus,
              verifier=verifier, jwks=jwks, relay=relay, jobs=list(jobs))
    kit.consumers = [
        EventConsumer(
            name=spec.name, bus=bus, topics=spec.topics, group_id=settings.group_id,
            sessions=kit.sessions, handlers=spec.handlers,
            dead_letter_topic=f"{name}.deadletter.v1", clock=clock,
        )
        for spec in consumers
    ]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Each part's release is pushed as it starts (before it, for one that may start
        # halfway): at shutdown, or when a later part fails to start, what started is
        # released, in reverse order.
        async with contextlib.AsyncExitStack() as started:
            started.callback(engine.dispose)
            if owns_bus:
                started.callback(bus.close)
            if migrate is not None and settings.migrate_on_start:
                migrate(settings.database_url)
            if jwks is not None:
                await jwks.refresh(forced=False)  # the keys before traffic
            if is_psycopg(engine.dialect):
                kit.pipeline_pool = await open_pool(
                    engine, size=settings.db_pool_size,
                    timeout=settings.db_pool_timeout_seconds, name=f"{name}-pipelined")
                started.push_async_callback(_close_pipeline_pool, kit)
            if background:
                started.callback(kit.stop_background)
                kit.start_background()
            if jwks is not None:
                started.push_async_callback(_cancel, asyncio.create_task(jwks.keep_fresh()))
            yield

    # No redirect for a trailing slash: behind the gateway's proxy its Location would name
    # the service's own address, which clients must not go to; the path is a 404 instead.
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  telemetry=SERVICE_TELEMETRY, openapi_tags=[{"name": t} for t in tags] or None,
                  redirect_slashes=False)
    app.state.kit = kit
    problems.install(app)
    idempotency.install(app)
    openapi.install(app)
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    # Routing tries the routes in the order they were added, so the service's own come
    # before the probes and /metrics, in the order given (its busiest first).
    for router in routers:
        app.include_router(router)
    instrument(app, name)
    observe_outbox(app, name, relay.oldest_unsent_age)
    app.include_router(health_router(kit))
    return app


async def _close_pipeline_pool(kit: Kit) -> None:
    pool, kit.pipeline_pool = kit.pipeline_pool, None
    if pool is not None:
        await pool.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


READY_DESCRIPTION = (
    "Whether this replica takes requests. Its database decides; the broker is reported, "
    "not required (docs/decisions/0011):\n\n"
    "- database does not answer `SELECT 1`: `503` problem+json, `checks` naming it "
    "(`\"database\": \"unreachable: OperationalError\"`, or `\"unreachable: no answer "
    "within 1.8 s\"` when it accepts connections and never answers, as a stopped server "
    "does);\n"
    "- database and broker answer, no outbox row waiting past "
    "`<SVC>_RELAY_DEGRADED_AFTER_SECONDS`: `200`, `\"status\": \"ready\"`, every check "
    "`ok`;\n"
    "- broker does not answer (1.5 s): `200`, `\"status\": \"degraded\"`, "
    "`\"broker\": \"unreachable: KafkaTimeoutError\"`;\n"
    "- the oldest unsent outbox row waited past that limit: `200`, `degraded`, "
    "`\"relay\": \"degraded: the oldest unsent event has waited 95 s (limit 60 s)\"` "
    "(`\"relay\": \"unknown: ...\"` when its age cannot be read).\n\n"
    "Each check waits at most `<SVC>_READY_TIMEOUT_SECONDS` (default 1.8 s), all at once, so "
    "the answer comes within it whatever a dependency does.\n\n"
    "A broker outage keeps the replica in service because writes still commit: each "
    "command's events are stored in the transactional outbox in the same transaction and "
    "published by the relay once the broker answers again.")
READY_200 = ("The database answers: `ready`, or `degraded` naming the broker or the relay "
             "(writes still commit to the outbox).")
READY_503 = "The database does not answer: not ready; `checks` names each dependency."


def health_router(kit: Kit) -> APIRouter:
    api = APIRouter(tags=["operations"])
    database_check = BoundedCheck("database", lambda: ping(kit.engine))
    broker_check = BoundedCheck("broker", kit.bus.ready)
    relay_check = BoundedCheck("relay", kit.relay.oldest_unsent_age)

    @api.get("/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": kit.name}

    @api.get("/ready", summary="Readiness: database reachable; broker and relay reported",
             description=READY_DESCRIPTION,
             responses={200: {"model": openapi.Readiness, "description": READY_200},
                        503: {"description": READY_503}})
    async def ready(request: Request) -> JSONResponse:
        # Each check on a thread of its own, all at once, each bounded: a database or
        # broker that accepts connections and never answers is named unreachable.
        timeout = kit.settings.ready_timeout_seconds
        database, broker, waited = await asyncio.gather(
            database_check(timeout), broker_check(timeout), relay_check(timeout),
            return_exceptions=True)
        checks = {"database": "ok" if database is None else _unreachable(database),
                  "broker": "ok" if broker is True else _unreachable(broker)}
        if checks["database"] != "ok":
            return problems.problem_response(
                request, 503, "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items()),
                extensions={"checks": checks},
            )
        # Without the broker the service stays ready: commands still commit and their
        # events wait in the outbox. The body names it, and a relay that falls behind.
        limit = kit.settings.relay_degraded_after_seconds
        if isinstance(waited, BaseException):
            checks["relay"] = f"unknown: {_reason(waited)}"
        elif waited > limit:
            checks["relay"] = (f"degraded: the oldest unsent event has waited "
                               f"{waited:.0f} s (limit {limit:g} s)")
        status = "ready" if all(v == "ok" for v in checks.values()) else "degraded"
        return JSONResponse({"status": status, "service": kit.name, "checks": checks})

    return api


def _reason(exc: BaseException) -> str:
    """Why a check failed: the error's class, or how long it went unanswered."""
    return str(exc) if isinstance(exc, NoAnswer) else type(exc).__name__


def _unreachable(outcome: object) -> str:
    """A failed check (an exception, or ``False`` from the broker) as ``checks`` says it."""
    return f"unreachable: {_reason(outcome)}" if isinstance(outcome, BaseException) \
        else "unreachable"
