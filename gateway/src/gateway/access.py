"""What the gateway records of each request: one JSON access-log line and Prometheus
metrics per route template.

The log line (logger ``gateway.access``, on stderr, JSON whatever ``LOG_JSON`` says,
with ``time``, ``level``, ``logger``, ``message`` and the trace ids as the other lines)
carries ``request_id``, ``method``, ``path``, ``route`` (the table's template, or
``unmatched``), ``status``, ``latency_ms``, ``subject`` (``-`` when anonymous) and
``client``. The metrics, served by the gateway on ``/metrics``:
``gateway_request_duration_seconds{method, route}`` (a histogram, to the end of the
response) and ``gateway_requests_total{method, route, status}``. Labels are the table's
methods and templates only, never raw paths or a client's made-up method.

Access lines are written in batches, as nginx's ``access_log ... buffer= flush=`` does:
one write for every ``BUFFER_BYTES`` of lines, and at most ``FLUSH_SECONDS`` after a
line was logged (and at exit). A write per line was a tenth of the hop's CPU.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.routes import Route, RouteTable

log = logging.getLogger("gateway.access")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           30.0)


class AccessRecorder:
    def __init__(self, table: RouteTable) -> None:
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "gateway_request_duration_seconds", "Gateway request latency, to the response's "
            "end", ["method", "route"], registry=self.registry, buckets=BUCKETS)
        self._requests = Counter(
            "gateway_requests_total", "Gateway requests by answer", ["method", "route", "status"],
            registry=self.registry)
        # Requests the table has no row for (their own instruments, as every route's).
        self.unmatched = Route("-", "unmatched", "unmatched", frozenset(), "read")
        for route in [*table.routes, self.unmatched]:
            route.instruments["latency"] = self._latency.labels(route.method, route.template)

    def record(self, route: Route, status: int, seconds: float, fields: dict[str, Any]) -> None:
        route.instruments["latency"].observe(seconds)
        counter = route.instruments.get(status)
        if counter is None:
            counter = route.instruments[status] = self._requests.labels(
                route.method, route.template, str(status))
        counter.inc()
        if not log.isEnabledFor(logging.INFO):
            return
        fields["route"] = route.template
        fields["status"] = status
        fields["latency_ms"] = round(seconds * 1000, 3)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            fields["trace_id"] = format(context.trace_id, "032x")
            fields["span_id"] = format(context.span_id, "016x")
        # The record log.info would make, without looking up the caller's frame.
        record = logging.LogRecord(log.name, logging.INFO, __file__, 0, "access", None, None)
        record.__dict__.update(fields)
        log.handle(record)


class AccessFormatter(logging.Formatter):
    """One JSON object per access line, by orjson: a fifth of the generic JSON
    formatter's cost, on every request."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.msg}
        line.update((k, record.__dict__[k]) for k in _FIELDS if k in record.__dict__)
        return orjson.dumps(line).decode()


_FIELDS = ("request_id", "method", "path", "route", "status", "latency_ms", "subject",
           "client", "trace_id", "span_id")


class BufferedStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes its lines in batches (see the module's docstring)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        self._lines.append(line + "\n")
        self._size += len(line) + 1
        if self._size >= BUFFER_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # logged outside an event loop: nothing to wait with
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._lines:
                lines, self._lines, self._size = self._lines, [], 0
                self.stream.write("".join(lines))
            super().flush()
        finally:
            self.release()


BUFFER_BYTES = 32 * 1024
FLUSH_SECONDS = 1.0


def configure_access_log() -> None:
    """Access lines go to their own stderr handler (JSON, fast), not through the root's.

    Idempotent: one such handler however many gateways a process builds."""
    if any(getattr(h, "_gateway_access", False) for h in log.handlers):
        return
    handler = BufferedStream(sys.stderr)
    handler._gateway_access = True  # type: ignore[attr-defined]
    handler.setFormatter(AccessFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
