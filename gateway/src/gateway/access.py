"""What the gateway records of each request: one JSON access-log line and Prometheus
metrics per route template.

The log line (logger ``gateway.access``, JSON with the trace ids like every other line)
carries ``request_id``, ``method``, ``path``, ``route`` (the table's template, or
``unmatched``), ``status``, ``latency_ms``, ``subject`` (``-`` when anonymous) and
``client``. The metrics, served by the gateway on ``/metrics``:
``gateway_request_duration_seconds{method, route}`` (a histogram, to the end of the
response) and ``gateway_requests_total{method, route, status}``. Labels are the table's
methods and templates only, never raw paths or a client's made-up method.
"""

from __future__ import annotations

import logging
from typing import Any

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
        fields["route"] = route.template
        fields["status"] = status
        fields["latency_ms"] = round(seconds * 1000, 3)
        log.info("access", extra=fields)
