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

The gateway's ``LOG_LEVEL`` above INFO turns the lines off (the ``gateway.access``
logger's level). Each line is built and written here rather than through ``logging``
(a record, a handler lock and a formatter per request were a sixth of the hop's CPU),
in batches as nginx's ``access_log ... buffer= flush=`` does. A request leaves only its
raw facts (a tuple); every ``BATCH`` requests, at most ``FLUSH_SECONDS`` after the first
of them, before ``/metrics`` answers and at exit, the batch is settled in one loop:
each request's metrics observed, its line formatted, all lines written at once. Built
one by one, between the other steps of each request, the line and the metrics cost the
hop a fifth of its CPU (``bench/_hop.py``); in one loop, a fraction of that.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, TextIO

import orjson
from opentelemetry import trace
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gateway.routes import Route, RouteTable

log = logging.getLogger("gateway.access")
_log = logging.getLogger(__name__)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           30.0)
BATCH = 256
FLUSH_SECONDS = 1.0

# What a request leaves to be settled: its recorder and (wall time, route, status,
# seconds, access-line fields, trace id, span id); or no recorder and a line's fields.
Entry = tuple[Any, Any]


class AccessLog:
    """Requests' access lines and metrics, settled and written to ``stream`` (stderr) in
    batches."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._entries: list[Entry] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._timer_thread = 0
        self._lock = threading.Lock()  # the served gateway's loop, tests', /metrics, exit
        atexit.register(self.flush)

    def write(self, fields: dict[str, Any]) -> None:
        """A line of ``fields``, written with the next batch."""
        self.add((None, fields))

    def add(self, entry: Entry) -> None:
        with self._lock:
            entries = self._entries
            entries.append(entry)
            later = len(entries) < BATCH
            timer_loop = self._timer_loop
            if later and (self._timer is None or self._timer_thread != threading.get_ident()
                          or not timer_loop.is_running()):  # type: ignore[union-attr]
                # The first entry since the last batch, or one from another thread's loop
                # (tests run several), or a timer on a loop now stopped: a timer on this
                # loop. Looked up only then: each lookup of the running loop is a getpid().
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # added outside an event loop: nothing to wait with
                    later = False
                else:
                    if self._timer is None or loop is not timer_loop:
                        self._timer = loop.call_later(FLUSH_SECONDS, self.flush)
                        self._timer_loop, self._timer_thread = loop, threading.get_ident()
        if not later:
            self.flush()

    def flush(self) -> None:
        """Settle the batch: metrics observed, lines written."""
        with self._lock:
            timer, self._timer, self._timer_loop = self._timer, None, None
            entries, self._entries = self._entries, []
            lines = []
            for recorder, facts in entries:
                fields = facts if recorder is None else recorder.settle(facts)
                if fields is not None:
                    lines.append(orjson.dumps(fields))
            if lines:
                stream = self.stream or sys.stderr
                try:
                    stream.write(b"\n".join(lines).decode() + "\n")
                    stream.flush()
                except (OSError, ValueError) as exc:  # stderr closed or gone: say so once
                    _log.warning("%d access lines lost: %r", len(lines), exc)
        if timer is not None:
            timer.cancel()


ACCESS_LOG = AccessLog()  # one per process, however many gateways it builds


class RouteMetrics(Collector):
    """``gateway_request_duration_seconds{method, route}`` and
    ``gateway_requests_total{method, route, status}``, counted in plain numbers as
    batches settle (a ``Histogram`` and a ``Counter`` took a lock per bucket and count)
    and exposed as Prometheus families when collected. Every route of the table is
    exposed from the start, with zero counts."""

    def __init__(self, routes: list[Route]) -> None:
        self._lock = threading.Lock()  # settled on the loop, collected on /metrics' thread
        # route -> requests in each bucket (the last: past every bound), and their sum
        self._latency: dict[Route, tuple[list[int], list[float]]] = {
            route: ([0] * (len(BUCKETS) + 1), [0.0]) for route in routes}
        self._answers: dict[tuple[Route, int], int] = {}

    def observe(self, route: Route, status: int, seconds: float) -> None:
        with self._lock:
            latency = self._latency.get(route)
            if latency is None:
                latency = self._latency[route] = ([0] * (len(BUCKETS) + 1), [0.0])
            latency[0][bisect_left(BUCKETS, seconds)] += 1  # the first bound >= seconds
            latency[1][0] += seconds
            key = (route, status)
            self._answers[key] = self._answers.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            latency = [(route, list(counts), total[0])
                       for route, (counts, total) in self._latency.items()]
            answers = list(self._answers.items())
        histogram = HistogramMetricFamily(
            "gateway_request_duration_seconds", "Gateway request latency, to the response's "
            "end", labels=["method", "route"])
        for route, counts, total in latency:
            cumulative = list(accumulate(counts))
            histogram.add_metric(
                [route.method, route.template],
                [(floatToGoString(bound), n) for bound, n in zip(BUCKETS, cumulative,
                                                                 strict=False)]
                + [("+Inf", cumulative[-1])], total)
        yield histogram
        requests = CounterMetricFamily("gateway_requests", "Gateway requests by answer",
                                       labels=["method", "route", "status"])
        for (route, status), n in answers:
            requests.add_metric([route.method, route.template, str(status)], n)
        yield requests


class AccessRecorder:
    def __init__(self, table: RouteTable, access_log: AccessLog = ACCESS_LOG) -> None:
        self.access_log = access_log
        self.registry = CollectorRegistry()
        # Requests the table has no row for (counted apart, as every route is).
        self.unmatched = Route("-", "unmatched", "unmatched", frozenset(), "read")
        self._metrics = RouteMetrics([*table.routes, self.unmatched])
        self.registry.register(self._metrics)
        self._second, self._stamp = -1, ""  # the last line's second, as ISO 8601

    def record(self, route: Route, status: int, seconds: float, fields: dict[str, Any],
               ids: tuple[int, int] | None = None) -> None:
        """The request's metrics and access line, settled with the next batch; its trace
        and span ids are ``ids`` (the current span's by default)."""
        if ids is None:
            context = trace.get_current_span().get_span_context()
            ids = context.trace_id, context.span_id
        self.access_log.add((self, (time.time(), route, status, seconds, fields, *ids)))

    def metrics(self) -> bytes:
        """The Prometheus exposition, every request recorded so far counted."""
        self.access_log.flush()
        return generate_latest(self.registry)

    def settle(self, facts: tuple[Any, ...]) -> dict[str, Any] | None:
        """One recorded request's metrics observed; its access line's fields (None when
        the lines are off)."""
        at, route, status, seconds, fields, trace_id, span_id = facts
        self._metrics.observe(route, status, seconds)
        if not log.isEnabledFor(logging.INFO):
            return None
        second = int(at)
        if second != self._second:  # the date and time formatted once a second
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        line = {"time": f"{self._stamp}.{int((at - second) * 1000):03d}+00:00",
                "level": "INFO", "logger": log.name, "message": "access", **fields,
                "route": route.template, "status": status,
                "latency_ms": round(seconds * 1000, 3)}
        if trace_id and span_id:  # a valid context (INVALID_SPAN's ids are 0)
            line["trace_id"] = format(trace_id, "032x")
            line["span_id"] = format(span_id, "016x")
        return line


def configure_access_log() -> None:
    """Access lines at INFO, unless the gateway's log level turns them off."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    log.propagate = False
