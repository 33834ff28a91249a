"""The SERVER span of a proxied request: the caller's W3C trace continued at the edge.

FastAPI's own request span (``FastAPI(telemetry=...)``) is built for an app's routes: it
reads the request's headers into a ``Headers`` object, parses the authority, names
attributes, keeps exception telemetry, and costs about as much CPU as the rest of the
hop together (``bench/_hop.py``: 341 → 196 µs a proxied GET without it). A proxied request
needs less: the trace context from its headers, one span named by the route table's
template, the answer's status, and the span current while the proxy injects its context
into the request it sends on. The gateway's own routes (``/ready``, ``/openapi.json``...)
keep FastAPI's span.

A span is recorded only when spans are exported (``servicekit.telemetry.exporting``:
OTLP configured). Otherwise the trace is still continued, as W3C Trace Context asks of
a hop: the request gets a span id of its own under the caller's trace (or a new trace),
which the access line names and the service's span takes as its parent, without the
SDK building a span that nobody would read (a sixth of the hop's CPU, bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceState,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.telemetry import caller_context, exporting, unrecorded_child

_tracer = trace.get_tracer("gateway")


class ServerSpan:
    """A proxied request's span. The gateway's protocol passes it where it is needed
    (``trace_headers``, the access line's ``ids``); ``traced`` makes it current for the
    ASGI app. Unexported, it is only ids: the ``Span`` object is made when something asks
    for it (``current``, a failure logged under the request's trace)."""

    __slots__ = ("_span", "_parent", "_token", "trace_id", "span_id", "_flags", "_state")

    def __init__(self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
        parent = caller_context(headers)
        self._parent = parent
        self._token: object | None = None
        if exporting():
            span = _tracer.start_span(
                method, context=parent, kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path})
            context = span.get_span_context()
            self._span: Span | None = span
            self.trace_id, self.span_id = context.trace_id, context.span_id
            self._flags, self._state = context.trace_flags, context.trace_state
            return
        self._span = None
        self.trace_id, self.span_id, self._flags, self._state = unrecorded_child(parent)

    @property
    def span(self) -> Span:
        """The OpenTelemetry span (a non-recording one, made now, when unexported)."""
        if self._span is None:
            self._span = NonRecordingSpan(SpanContext(self.trace_id, self.span_id, False,
                                                      self._flags, self._state))
        return self._span

    @property
    def ids(self) -> tuple[int, int]:
        """Its trace id and span id, for the access line."""
        return self.trace_id, self.span_id

    def trace_headers(self) -> list[tuple[bytes, bytes]]:
        """``trace_headers`` of this span: the service's span becomes its child."""
        return _trace_headers(self.trace_id, self.span_id, self._flags, self._state)

    def activate(self) -> None:
        """Make the span current (until ``end``), for code that reads the current one."""
        self._token = otel_context.attach(trace.set_span_in_context(self.span, self._parent))

    @contextmanager
    def current(self) -> Iterator[None]:
        """The span current for a block: what is logged in it names the request's trace
        (the protocol serves a request in callbacks, outside any context of its own)."""
        token = otel_context.attach(trace.set_span_in_context(self.span, self._parent))
        try:
            yield
        finally:
            otel_context.detach(token)

    def name(self, method: str, template: str) -> None:
        """Named by the route table's template (``GET /ipshare/v1/distributions/{id}``)."""
        span = self._span
        if span is not None and span.is_recording():
            span.update_name(f"{method} {template}")
            span.set_attribute("http.route", template)

    def end(self, status: int, exc: BaseException | None = None) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        span = self._span
        if span is None or not span.is_recording():
            return  # nothing recorded: nothing to end
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        if status:
            span.set_attribute("http.response.status_code", status)
            if status >= 500 and exc is None:
                span.set_status(Status(StatusCode.ERROR))
        span.end()


def trace_headers(span: Span | None = None) -> list[tuple[bytes, bytes]]:
    """The W3C ``traceparent`` (and ``tracestate``) of ``span`` (the current one by
    default), for the request the gateway sends on: the service's span becomes its
    child. What the OpenTelemetry propagator writes, without its generic carrier; the
    caller's ``baggage`` goes on as it came."""
    context = (span or trace.get_current_span()).get_span_context()
    if not context.is_valid:
        return []
    return _trace_headers(context.trace_id, context.span_id, context.trace_flags,
                          context.trace_state)


def _trace_headers(trace_id: int, span_id: int, flags: int, state: TraceState | None,
                   ) -> list[tuple[bytes, bytes]]:
    headers = [(b"traceparent", b"00-%032x-%016x-%02x" % (trace_id, span_id, flags))]
    if state:
        headers.append((b"tracestate", state.to_header().encode("latin-1")))
    return headers


async def traced(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app`` on a proxied request inside its SERVER span, child of the caller's."""
    span = ServerSpan(scope["method"], scope["path"], scope["headers"])
    span.activate()
    status = 0

    async def send_observed(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_observed)
    except BaseException as exc:
        span.end(status, exc)
        raise
    span.end(status)
