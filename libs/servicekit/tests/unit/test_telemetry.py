from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry import trace

from servicekit.telemetry import configure_logging, current_traceparent, setup_tracing


def test_logs_are_json_lines_carrying_the_active_trace_id():
    setup_tracing("test")
    configure_logging("INFO")
    stream = io.StringIO()
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_servicekit", False))
    previous = handler.setStream(stream)
    with trace.get_tracer("t").start_as_current_span("work") as span:
        logging.getLogger("svc").info("tranche released", extra={"amount_vnd": 5})
        trace_id = format(span.get_span_context().trace_id, "032x")
        traceparent = current_traceparent()
    handler.setStream(previous)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["message"] == "tranche released"
    assert line["level"] == "INFO"
    assert line["trace_id"] == trace_id
    assert line["amount_vnd"] == 5
    assert traceparent is not None and traceparent.split("-")[1] == trace_id


def test_metrics_count_every_request_by_route_template_method_and_status():
    from fastapi import FastAPI, HTTPException
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from servicekit.telemetry import instrument

    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "gone":
            raise HTTPException(404)
        return {"id": thing_id}

    instrument(app, "svc")
    registry: CollectorRegistry = app.state.metrics_registry
    with TestClient(app) as client:
        for thing_id in ("a", "b", "c", "gone", "gone"):
            client.get(f"/things/{thing_id}")
        client.post("/things/a")
        client.get("/elsewhere")

    def count(method: str, route: str, status: str) -> float | None:
        return registry.get_sample_value("http_requests_total", {
            "service": "svc", "method": method, "route": route, "status": status})

    assert count("GET", "/things/{thing_id}", "200") == 3
    assert count("GET", "/things/{thing_id}", "404") == 2
    assert count("POST", "/things/{thing_id}", "405") == 1
    assert count("GET", "unmatched", "404") == 1
    assert registry.get_sample_value("http_request_duration_seconds_count", {
        "service": "svc", "method": "GET", "route": "/things/{thing_id}"}) == 5


CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def test_without_an_exporter_a_request_continues_the_callers_trace_unrecorded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No SDK span is recorded, yet the request runs in the caller's trace under a span
    id of its own (what its logs and its events' ``traceparent`` name), or in a new
    sampled trace when the caller sent none; the caller's baggage goes on with it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry import baggage

    import servicekit.telemetry as telemetry

    setup_tracing("test")
    monkeypatch.setattr(telemetry, "_exporting", False)
    app = FastAPI(telemetry=telemetry.SERVICE_TELEMETRY)

    @app.get("/work")
    def work() -> dict[str, object]:
        span = trace.get_current_span()
        return {"traceparent": current_traceparent(), "recording": span.is_recording(),
                "tenant": baggage.get_baggage("tenant")}

    telemetry.instrument(app, "test")
    with TestClient(app) as client:
        continued = client.get("/work", headers={
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "baggage": "tenant=most"}).json()
        fresh = client.get("/work").json()
    version, trace_id, span_id, flags = continued["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE, "01")
    assert span_id not in (CALLER_SPAN, "0" * 16)
    assert continued["recording"] is False and continued["tenant"] == "most"
    _, new_trace, new_span, new_flags = fresh["traceparent"].split("-")
    assert new_trace not in (CALLER_TRACE, "0" * 32) and new_span != "0" * 16
    assert new_flags == "01" and fresh["tenant"] is None
