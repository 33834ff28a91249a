"""Request ids, the W3C trace from the caller through the gateway into a real service and
the event it emits, the access log and the gateway's metrics."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.tests.conftest import Bearer, open_gateway
from grants.app import create_app as create_grants
from grants.app import migrate as migrate_grants
from grants.settings import GrantsSettings
from servicekit.bus import InProcessBus

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALL = {"title": "Tidal energy", "budget_vnd": 5_000_000_000, "max_award_vnd": 1_000_000_000,
        "opens_at": "2026-01-01T00:00:00Z", "closes_at": "2099-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends, from the gateway and the service alike."""
    from servicekit.telemetry import export_spans, setup_tracing

    setup_tracing("gateway-tests")
    exporter = InMemorySpanExporter()
    export_spans(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@pytest.fixture
def system(tmp_path: Path, key_dir: Path,
           way: str) -> Iterator[tuple[TestClient, InProcessBus]]:
    """The proxy gateway in front of a real grants service (in-process bus)."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    migrate_grants(url)
    bus = InProcessBus()
    grants = create_grants(GrantsSettings(database_url=url, dev_key_dir=key_dir,
                                          relay_poll_seconds=0.05), bus=bus)
    app = create_app(GatewaySettings(dev_key_dir=key_dir),
                     transports={"grants": httpx.ASGITransport(app=grants)})
    with TestClient(grants), open_gateway(app, way) as client:  # grants' lifespan: its relay
        yield client, bus
    bus.close()


def _by_id(spans: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {format(s.context.span_id, "016x"): s for s in spans.get_finished_spans()}


def test_the_callers_trace_runs_through_the_gateway_into_the_service_and_its_event(
    system: tuple[TestClient, InProcessBus], bearer: Bearer, spans: InMemorySpanExporter
) -> None:
    client, bus = system
    pm = bearer("program_manager", org="MOST")
    call = client.post("/grants/v1/calls", json=CALL, headers=pm).json()
    spans.clear()
    opened = client.post(f"/grants/v1/calls/{call['id']}/open",
                         headers={**pm, "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
    assert opened.status_code == 200, opened.text

    deadline, events = time.monotonic() + 10, []
    while not events and time.monotonic() < deadline:
        events = [json.loads(m.value) for m in bus.messages("grants.events.v1")
                  if json.loads(m.value)["subject"] == call["id"]]
        time.sleep(0.05)
    assert [e["type"] for e in events] == ["vn.gov.most.grants.call.opened.v1"]
    _, event_trace, event_parent, _ = events[0]["traceparent"].split("-")
    assert event_trace == TRACE_ID

    by_id = _by_id(spans)
    service_span = by_id[event_parent]  # the service's span emitted the event...
    gateway_span = by_id[format(service_span.parent.span_id, "016x")]  # ...under the gateway's
    assert gateway_span.name == "POST /grants/v1/calls/{call_id}/open"
    assert gateway_span.attributes["http.route"] == "/grants/v1/calls/{call_id}/open"
    assert (gateway_span.kind, gateway_span.attributes["http.request.method"],
            gateway_span.attributes["http.response.status_code"]) == (SpanKind.SERVER,
                                                                      "POST", 200)
    assert format(gateway_span.parent.span_id, "016x") == CALLER_SPAN
    assert {format(s.context.trace_id, "032x") for s in (gateway_span, service_span)} == {
        TRACE_ID}


def test_a_request_id_is_echoed_and_reaches_the_service(
    key_dir: Path,
) -> None:
    seen: list[str] = []

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-request-id"])
        return httpx.Response(200, json={}, headers={"x-request-id": "from-the-service"})

    app = create_app(GatewaySettings(dev_key_dir=key_dir),
                     transports={"grants": httpx.MockTransport(service)})
    with TestClient(app) as client:
        given = client.get("/grants/v1/calls", headers={"X-Request-Id": "abc-123"})
        made = client.get("/grants/v1/calls")
        bad = client.get("/grants/v1/calls", headers={"X-Request-Id": "no spaces allowed"})
    assert given.headers.get_list("x-request-id") == ["abc-123"]
    assert len(made.headers["x-request-id"]) == 32
    assert bad.headers["x-request-id"] != "no spaces allowed"
    assert seen == ["abc-123", made.headers["x-request-id"], bad.headers["x-request-id"]]


def test_each_request_leaves_one_json_access_line(
    key_dir: Path, bearer: Bearer, access_lines: Callable[[], list[dict[str, Any]]], way: str
) -> None:
    app = create_app(GatewaySettings(dev_key_dir=key_dir),
                     transports={"ipshare": httpx.MockTransport(
                         lambda r: httpx.Response(201, json={}))})
    with open_gateway(app, way) as client:
        client.post("/ipshare/v1/agreements/a-7/income", json={},
                    headers={**bearer("finance", sub="fin-9"), "X-Request-Id": "rid-1",
                             "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
        client.get("/ipshare/v1/ledger/trial-balance")
    lines = access_lines()
    assert len(lines) == 2
    posted, refused = lines
    assert (posted["subject"], posted["route"], posted["status"], posted["request_id"],
            posted["method"]) == ("fin-9", "/ipshare/v1/agreements/{agreement_id}/income", 201,
                                  "rid-1", "POST")
    assert posted["path"] == "/ipshare/v1/agreements/a-7/income"
    assert posted["latency_ms"] > 0
    assert (refused["subject"], refused["status"]) == ("-", 401)
    assert (posted["logger"], posted["level"], posted["message"], posted["trace_id"]) == (
        "gateway.access", "INFO", "access", TRACE_ID)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", posted["time"])
    logged = datetime.fromisoformat(posted["time"])
    assert abs((datetime.now(UTC) - logged).total_seconds()) < 30


def test_metrics_have_a_latency_histogram_per_route_template(
    key_dir: Path, bearer: Bearer
) -> None:
    app = create_app(GatewaySettings(dev_key_dir=key_dir),
                     transports={"grants": httpx.MockTransport(
                         lambda r: httpx.Response(200, json={}))})
    with TestClient(app, client=("10.0.0.5", 4000)) as client:
        for call_id in ("c-1", "c-2", "c-3"):
            client.get(f"/grants/v1/calls/{call_id}")
        client.get("/grants/v1/nowhere")
        text = client.get("/metrics").text
    assert ('gateway_request_duration_seconds_count{method="GET",'
            'route="/grants/v1/calls/{call_id}"} 3.0') in text
    assert ('gateway_requests_total{method="GET",route="/grants/v1/calls/{call_id}",'
            'status="200"} 3.0') in text
    assert 'route="unmatched",status="404"' in text
    assert "c-1" not in text  # templates, never raw paths


def test_metrics_are_not_served_to_the_public(key_dir: Path) -> None:
    app = create_app(GatewaySettings(dev_key_dir=key_dir))
    with TestClient(app, client=("203.0.113.50", 4000)) as client:
        response = client.get("/metrics")
    assert response.status_code == 404


def test_access_lines_are_written_within_seconds_when_several_loops_log(
) -> None:
    """The flush timer follows the loops that write: a line logged on one loop while
    another loop's timer is pending is written after that other loop has stopped."""
    import asyncio
    import io
    import threading

    from gateway.access import FLUSH_SECONDS, AccessLog

    stream = io.StringIO()
    access_log = AccessLog(stream)
    stop_first = threading.Event()

    async def first() -> None:
        access_log.write({"from": "first"})  # its loop's timer is armed
        await asyncio.to_thread(stop_first.wait)

    thread = threading.Thread(target=asyncio.run, args=(first(),))
    thread.start()
    time.sleep(0.1)

    async def second() -> str:
        access_log.write({"from": "second"})  # while the first loop still runs
        stop_first.set()
        thread.join()  # the first loop, and the timer it held, gone
        await asyncio.sleep(FLUSH_SECONDS + 0.5)
        return stream.getvalue()

    written = asyncio.run(second())
    assert [json.loads(line)["from"] for line in written.splitlines()] == ["first", "second"]
