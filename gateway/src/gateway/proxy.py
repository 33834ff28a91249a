"""A plain prefix router: ``/grants/...`` → ``{grants_url}/...``, and so on.

Each upstream is an ASGI app mounted at ``/<name>``, exactly where the embedded runner
mounts the service itself, so whatever the gateway puts in front of its mounts (request
ids now; authentication and rate limits later) applies the same way in both modes.

Requests and responses are buffered, not streamed: the API's bodies are small JSON.
One ``httpx`` transport per upstream keeps a modest connection pool whose keep-alive
expires before uvicorn's (5 s). The transport is called directly rather than through
``httpx.AsyncClient.send``, so no client default headers or cookie jar get in between.

A kept-alive connection can still be closed by the upstream just as the gateway sends
the next request on it: uvicorn closes the connection after a 500 raised through the app
(the response carries no ``Connection: close``), and when its keep-alive runs out. The
send then fails before any response arrives (``RemoteProtocolError`` "Server disconnected
without sending a response", ``ReadError``, ``WriteError``) and the upstream never
processed the request. Such a request is sent once more, on a connection the pool checks
or opens afresh, if it is safe to repeat: an idempotent method (RFC 9110 §9.2.2: GET,
HEAD, OPTIONS, PUT, DELETE) or a POST with an ``Idempotency-Key`` (the service replays
its first answer). A POST without a key, a failure on a connection opened for this very
request, and a timeout (the upstream may still be working on it) are never retried.

Failures are problem+json naming the service, never its address or error: 503 with
``Retry-After`` when the request could not be sent (connection refused, no connection
in time), 504 when the service did not answer in time, 502 when it broke off its answer.
The W3C trace context sent on is the gateway's own span's (which continues the caller's),
so the service's span and the events it emits are part of the caller's trace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from opentelemetry.propagate import inject
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import get_route_path
from starlette.types import Receive, Scope, Send

from gateway.settings import GatewaySettings
from servicekit.problems import RETRY_AFTER_SECONDS, problem_response

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 connection-specific headers, plus what the transport sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
# The gateway's own server sets Date and Server; an upstream's would be duplicates.
_NOT_RETURNED = HOP_BY_HOP | {b"content-length", b"date", b"server"}
# RFC 9110 §9.2.2; TRACE too, but nothing behind the gateway serves it.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# How a send on a connection the upstream has already closed fails (timeouts are not here).
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# Failures before the request left: the service is down (503); after it left, a timeout
# is a 504 and a broken answer a 502.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The trace context the gateway's own span replaces (gateway.edge).
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


@dataclass
class Upstream:
    """A service the gateway forwards to: its prefix name, base URL and transport."""

    name: str
    base_url: str
    transport: httpx.AsyncBaseTransport
    timeout: httpx.Timeout

    @classmethod
    def from_settings(
        cls,
        name: str,
        base_url: str,
        settings: GatewaySettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Upstream:
        if transport is None:
            transport = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=settings.pool_max_connections,
                    max_keepalive_connections=settings.pool_max_connections,
                    keepalive_expiry=settings.keepalive_expiry_seconds,
                ),
                retries=1,  # connection attempts only; _send repeats a request on a stale one
            )
        timeout = httpx.Timeout(
            settings.upstream_timeout_seconds,
            connect=settings.connect_timeout_seconds,
            pool=settings.pool_timeout_seconds,
        )
        return cls(name=name, base_url=base_url.rstrip("/"), transport=transport,
                   timeout=timeout)

    def client(self, timeout: float) -> httpx.AsyncClient:
        """A client on the same pool, for the gateway's own calls (readiness)."""
        return httpx.AsyncClient(transport=_Shared(self.transport), base_url=self.base_url,
                                 timeout=timeout)

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Shared(httpx.AsyncBaseTransport):
    """Lends an upstream's transport to a client without letting the client close it."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)


class ProxyApp:
    """The ASGI app mounted at ``/<upstream.name>``: forwards one request, returns one."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no websockets behind the gateway
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        response = await self.forward(request)
        await response(scope, receive, send)

    async def forward(self, request: Request) -> Response:
        up = self.upstream
        url = httpx.URL(up.base_url + _upstream_path(request.scope))
        if query := request.scope.get("query_string"):
            url = url.copy_with(query=query)
        outbound = httpx.Request(
            request.method,
            url,
            headers=_forward_headers(request, up.name),
            content=await request.body(),
            extensions={"timeout": up.timeout.as_dict()},
        )
        try:
            upstream_response = await _send(up, outbound)
            try:
                body = await _raw_body(upstream_response)
            finally:
                await upstream_response.aclose()
        except _NOT_SENT as exc:
            log.warning("upstream %s unavailable: %r", up.name, exc)
            return problem_response(
                request, 503, f"the {up.name} service is unavailable; nothing was sent to "
                "it, retry later", kind="unavailable", title="Service unavailable",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                extensions={"upstream": up.name},
            )
        except httpx.TimeoutException as exc:
            log.warning("upstream %s timed out: %r", up.name, exc)
            return problem_response(
                request, 504, f"the {up.name} service did not answer in time",
                kind="gateway-timeout", title="Gateway timeout",
                extensions={"upstream": up.name},
            )
        except httpx.TransportError as exc:
            log.warning("upstream %s failed mid-request: %r", up.name, exc)
            return problem_response(
                request, 502, f"the {up.name} service broke off its answer",
                kind="bad-gateway", title="Bad gateway", extensions={"upstream": up.name},
            )
        response = Response(content=body, status_code=upstream_response.status_code)
        length = upstream_response.headers.get("content-length")
        if request.method == "HEAD" and length is not None:
            # No body, but the length of the one a GET gets (not the 0 of the empty body).
            response.raw_headers = [(k, v) for k, v in response.raw_headers
                                    if k != b"content-length"]
            response.raw_headers.append((b"content-length", length.encode("latin-1")))
        response.raw_headers.extend(
            (k, v) for k, v in upstream_response.headers.raw if k.lower() not in _NOT_RETURNED
        )
        return response


async def _send(up: Upstream, request: httpx.Request) -> httpx.Response:
    """Send a request, and once more if it met a kept-alive connection the upstream closed."""
    connection = _ConnectionWatch()
    request.extensions["trace"] = connection
    try:
        return await up.transport.handle_async_request(request)
    except _STALE_CONNECTION as exc:
        if not (connection.reused and _replayable(request)):
            raise
        log.info("upstream %s closed a kept-alive connection (%r); sending %s %s again",
                 up.name, exc, request.method, request.url.path)
    return await up.transport.handle_async_request(request)


def _replayable(request: httpx.Request) -> bool:
    return request.method in _IDEMPOTENT or (
        request.method == "POST" and "idempotency-key" in request.headers
    )


class _ConnectionWatch:
    """httpcore's ``trace`` hook: was the request sent on a connection kept from before?

    A request on a new connection opens it (``connection.connect_tcp``) before sending
    its headers; one on a pooled connection sends them straight away. A transport that
    does not trace (a mock, an ASGI app) reports neither, and counts as not reused.
    """

    def __init__(self) -> None:
        self.connected = False
        self.reused = False

    async def __call__(self, event: str, info: dict[str, object]) -> None:
        if event == "connection.connect_tcp.started":
            self.connected = True
        elif event.endswith(".send_request_headers.started"):
            self.reused = not self.connected


async def _raw_body(response: httpx.Response) -> bytes:
    """The body as sent (still content-encoded, matching the headers we pass on)."""
    if response.is_stream_consumed:  # built in memory by the transport, e.g. in tests
        return response.content
    return b"".join([chunk async for chunk in response.aiter_raw()])


def _upstream_path(scope: Scope) -> str:
    """The path below the mount, percent-encoded as the caller sent it."""
    mount = scope.get("root_path", "").encode("latin-1")
    raw = scope.get("raw_path")
    if raw is not None and mount and raw.startswith(mount):
        rest = raw[len(mount):].decode("latin-1")
        return rest if rest.startswith("/") else "/" + rest
    return quote(get_route_path(scope) or "/")


def _forward_headers(request: Request, prefix: str) -> list[tuple[bytes, bytes]]:
    scope = request.scope
    incoming: list[tuple[bytes, bytes]] = scope["headers"]
    connection_listed = {
        token.strip().lower().encode("latin-1")
        for k, v in incoming if k == b"connection"
        for token in v.decode("latin-1").split(",")
    }  # fmt: skip
    drop = _NOT_FORWARDED | _TRACE_HEADERS | connection_listed | {
        b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix"
    }
    headers = [(k, v) for k, v in incoming if k not in drop]
    context: dict[str, str] = {}
    inject(context)  # the gateway's span: the service's span becomes its child
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in context.items())
    prior_for = [v.decode("latin-1") for k, v in incoming if k == b"x-forwarded-for"]
    client = scope.get("client")
    chain = ", ".join([*prior_for, *([client[0]] if client else [])])
    if chain:
        headers.append((b"x-forwarded-for", chain.encode("latin-1")))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
    host = request.headers.get("host")
    if host:
        headers.append((b"x-forwarded-host", host.encode("latin-1")))
    headers.append((b"x-forwarded-prefix", f"/{prefix}".encode("latin-1")))
    return headers
