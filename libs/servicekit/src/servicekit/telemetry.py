"""OpenTelemetry tracing, Prometheus metrics and JSON logs carrying trace ids."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from fastapi import FastAPI, Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_setup_lock = threading.Lock()
_tracing_ready = False


def setup_tracing(service_name: str, otlp_endpoint: str | None = None) -> None:
    """Install the SDK tracer provider once per process (OTLP export when configured).

    Without a provider spans are not recorded and no ``traceparent`` could be carried
    into events, so the SDK is always installed; exporting is optional.
    """
    global _tracing_ready
    with _setup_lock:
        if _tracing_ready:
            return
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(provider)
        _tracing_ready = True
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        export_spans(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))


_exporting = False


def export_spans(processor: SpanProcessor) -> None:
    """Every span ended from now on goes to ``processor`` too (OTLP; tests' exporters)."""
    global _exporting
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError("setup_tracing() installs the SDK tracer provider first")
    provider.add_span_processor(processor)
    _exporting = True


def exporting() -> bool:
    """Whether ended spans go anywhere: a span nobody exports need not be recorded."""
    return _exporting


_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_ids = RandomIdGenerator()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)  # as the SDK's default sampler marks a new trace


def caller_context(headers: Iterable[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """The caller's trace context (W3C ``traceparent``, ``tracestate``, ``baggage``) from
    a request's raw headers; None when it sent none."""
    carrier: dict[str, str] | None = None
    for k, v in headers:
        if k in _TRACE_HEADERS:
            if carrier is None:
                carrier = {}
            carrier[k.decode("latin-1")] = v.decode("latin-1")
    return propagate.extract(carrier) if carrier else None


def unrecorded_child(parent: otel_context.Context | None,
                     ) -> tuple[int, int, TraceFlags, TraceState | None]:
    """The ids of a span that is not recorded but continues the trace, as W3C Trace
    Context asks of a hop: ``(trace id, span id, flags, state)``, a span id of its own
    under the caller's trace (a new, sampled trace without one)."""
    caller = trace.get_current_span(parent).get_span_context() if parent else None
    if caller is not None and caller.is_valid:
        return (caller.trace_id, _ids.generate_span_id(), caller.trace_flags,
                caller.trace_state)
    return _ids.generate_trace_id(), _ids.generate_span_id(), _SAMPLED, None


class TraceContinued:
    """With no exporter, a request's trace continued without recording a span (FastAPI's
    own span is for exported traces: ``SERVICE_TELEMETRY``). The request runs under a span
    id of its own, child of the caller's ``traceparent`` (or in a new trace), so that its
    log lines and the events it emits name the trace, without the SDK span, its ~15
    attributes and the parsing behind them (a tenth of a service's CPU per GET, more
    with a ``traceparent``: bench/README.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exporting or _is_probe(scope):
            await self.app(scope, receive, send)
            return
        parent = caller_context(scope["headers"])
        trace_id, span_id, flags, state = unrecorded_child(parent)
        span = NonRecordingSpan(SpanContext(trace_id, span_id, False, flags, state))
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the active span, if any."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


_PROBES = frozenset({"/health", "/ready", "/metrics"})


def _is_probe(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _PROBES


def _unexported_or_probe(scope: MutableMapping[str, Any]) -> bool:
    return not _exporting or scope.get("path") in _PROBES


# FastAPI's own OpenTelemetry support, given to every app (``FastAPI(telemetry=...)``): one
# SERVER span per request, continuing the caller's ``traceparent``, named by the route
# template that routing found. Not traced: the probes and ``/metrics``. Off: per-operation
# spans (dependencies, endpoint, serialisation: three more spans on every request), OTel
# metrics (Prometheus serves them, below) and OTel logs (JSON logs carry the trace ids).
TELEMETRY: TelemetryConfig = {
    "tracing": True,
    "operation_spans": False,
    "metrics": False,
    "logs": False,
    "exclude": _is_probe,
}


# A service's: FastAPI's span only while spans are exported; otherwise TraceContinued
# (``instrument``) carries the trace on without recording one.
SERVICE_TELEMETRY: TelemetryConfig = {**TELEMETRY, "exclude": _unexported_or_probe}


def instrument(app: FastAPI, service_name: str) -> None:
    """Request count and latency per route, served on ``/metrics`` for Prometheus.

    (Server spans come from FastAPI itself when the app is built with
    ``SERVICE_TELEMETRY`` and spans are exported; ``TraceContinued`` otherwise.)
    """
    registry = CollectorRegistry()
    requests = Counter(
        "http_requests_total", "HTTP requests", ["service", "method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
        registry=registry,
    )
    app.state.metrics_registry = registry
    # A plain ASGI middleware, not ``@app.middleware("http")``: Starlette's
    # BaseHTTPMiddleware runs every request through a task group and memory streams,
    # which costs more CPU than many endpoints do. Same measurements: latency up to the
    # response start, counted by route template and status.
    app.add_middleware(_Metrics, service_name=service_name, requests=requests,
                       latency=latency)
    app.add_middleware(TraceContinued)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


OUTBOX_AGE = "outbox_oldest_unsent_age_seconds"


def observe_outbox(app: FastAPI, service_name: str, oldest_unsent_age: Callable[[], float]
                   ) -> None:
    """``outbox_oldest_unsent_age_seconds{service}`` on ``/metrics``: how long the oldest
    unsent outbox row has waited (0 when none waits), read from the database at each
    scrape, so every replica reports the same truth whichever one's relay is active."""
    app.state.metrics_registry.register(_OutboxAge(service_name, oldest_unsent_age))


class _OutboxAge(Collector):
    def __init__(self, service_name: str, read: Callable[[], float]) -> None:
        self.service_name = service_name
        self.read = read

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering asks for the names; without this it would collect, reading a
        # database that may not be migrated yet.
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            age = self.read()
        except Exception:
            # No sample: the metric goes absent while the database does not answer
            # (/ready answers 503 then).
            log.warning("%s not read for %s", OUTBOX_AGE, self.service_name, exc_info=True)
            return
        family = self._family()
        family.add_metric([self.service_name], age)
        yield family

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            OUTBOX_AGE, "Seconds the oldest unsent outbox row has waited (0: none waits)",
            labels=["service"])


# Label sets whose metric children ``_Metrics`` keeps at hand (methods × route templates ×
# statuses a service answers; past this, looked up by ``labels()`` on each request).
_CHILDREN_KEPT = 1024


class _Metrics:
    """Request count and latency (to the response start) per route template."""

    def __init__(self, app: ASGIApp, *, service_name: str, requests: Counter,
                 latency: Histogram) -> None:
        self.app = app
        self.service_name = service_name
        self.requests = requests
        self.latency = latency
        # (method, template, status) -> the histogram's and the counter's child:
        # ``labels()`` checks and locks on every call, 2-3× the cost of the update.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _children_of(self, method: str, template: str, status: int) -> tuple[Any, Any]:
        key = (method, template, status)
        found = self._children.get(key)
        if found is None:
            found = (self.latency.labels(self.service_name, method, template),
                     self.requests.labels(self.service_name, method, template, str(status)))
            if len(self._children) < _CHILDREN_KEPT:
                self._children[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        recorded = False

        async def measured_send(message: Message) -> None:
            nonlocal recorded
            if not recorded and message["type"] == "http.response.start":
                recorded = True
                latency, count = self._children_of(
                    scope["method"], getattr(scope.get("route"), "path", "unmatched"),
                    message["status"])
                latency.observe(time.perf_counter() - start)
                count.inc()
            await send(message)

        await self.app(scope, receive, measured_send)


class _TraceIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        return True


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """JSON lines on stderr, each with ``trace_id``/``span_id`` when inside a span.

    Idempotent: one such handler on the root logger, others (pytest's, say) untouched.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(getattr(h, "_servicekit", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._servicekit = True  # type: ignore[attr-defined]
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_TraceIds())
    root.addHandler(handler)
