from __future__ import annotations

import io
import json
import logging

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
