"""The SERVER span of a proxied request: the caller's W3C trace continued at the edge.

FastAPI's own request span (``FastAPI(telemetry=...)``) is built for an app's routes: it
reads the request's headers into a ``Headers`` object, parses the authority, names
attributes, keeps exception telemetry, and costs about as much CPU as the rest of the
hop together (``bench/_hop.py``: 341 → 196 µs a proxied GET without it). A proxied request
needs less: the trace context from its headers, one span named by the route (the edge
renames it by the route table's template), the answer's status, and the span current
while the proxy injects its context into the request it sends on. The gateway's own
routes (``/ready``, ``/openapi.json``...) keep FastAPI's span.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_tracer = trace.get_tracer("gateway")


async def traced(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app`` on a proxied request inside its SERVER span, child of the caller's."""
    carrier = {k.decode("latin-1"): v.decode("latin-1")
               for k, v in scope["headers"] if k in _TRACE_HEADERS}
    parent = propagate.extract(carrier) if carrier else None
    method = scope["method"]
    span = _tracer.start_span(
        method, context=parent, kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": scope["path"]})
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    status = 0

    async def send_observed(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_observed)
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        if status:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        otel_context.detach(token)
        span.end()
