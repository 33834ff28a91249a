"""A plain prefix router: ``/grants/...`` → ``{grants_url}/...``, and so on.

Each upstream is an ASGI app mounted at ``/<name>``, exactly where the embedded runner
mounts the service itself, so whatever the gateway puts in front of its mounts (the
edge: request ids, authentication, rate limits) applies the same way in both modes.

Requests and responses are buffered, not streamed: the API's bodies are small JSON.
Requests go out on the gateway's own HTTP/1.1 client (``gateway.upstream``): a pool of
keep-alive connections per upstream, whose keep-alive expires before uvicorn's (5 s).
It costs a fraction of a general-purpose client's CPU per request (``bench/gateway.py``).
Tests hand an upstream an ``httpx`` transport instead (a mock, or a service in-process
through ``httpx.ASGITransport``); the proxy then sends through it, the rest unchanged.

A kept-alive connection can still be closed by the upstream just as the gateway sends
the next request on it: uvicorn closes the connection after a 500 raised through the app
(the response carries no ``Connection: close``), and when its keep-alive runs out. The
connection then closes before any answer arrives and the upstream never processed the
request. Such a request is sent once more, on a connection the pool checks or opens
afresh, if it is safe to repeat: an idempotent method (RFC 9110 §9.2.2: GET, HEAD,
OPTIONS, PUT, DELETE) or a POST with an ``Idempotency-Key`` (the service replays its
first answer). A POST without a key, a failure on a connection opened for this very
request, and a timeout (the upstream may still be working on it) are never retried.

Failures are problem+json naming the service, never its address or error: 503 with
``Retry-After`` when the request could not be sent (connection refused, no connection
in time), 504 when the service did not answer in time, 502 when it broke off its answer.
The W3C trace context sent on is the gateway's own span's (which continues the caller's),
so the service's span and the events it emits are part of the caller's trace.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import get_route_path
from starlette.types import Receive, Scope, Send

from gateway.settings import GatewaySettings
from gateway.spans import trace_headers
from gateway.upstream import (
    Answer,
    BrokenAnswer,
    ClosedBeforeAnswer,
    NotSent,
    Pool,
    UpstreamError,
    UpstreamTimeout,
)
from servicekit.problems import RETRY_AFTER_SECONDS, problem_response

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 connection-specific headers, plus what the client sets itself.
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
# The trace context the gateway's own span replaces (gateway.edge), and the forwarding
# headers the proxy sets itself (a client's X-Forwarded-For only reaches here from a
# trusted proxy: gateway.edge).
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
_FORWARDING = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                         b"x-forwarded-prefix"})
_NOT_FORWARDED = (HOP_BY_HOP | _TRACE_HEADERS | _FORWARDING
                  | {b"host", b"content-length", b"expect"})
# The gateway's own server sets Date and Server; an upstream's would be duplicates.
_NOT_RETURNED = HOP_BY_HOP | {b"content-length", b"date", b"server"}
# RFC 9110 §9.2.2; TRACE too, but nothing behind the gateway serves it.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# The status recorded for a request whose client went away before its body came (nginx's).
CLIENT_CLOSED = 499
# Answers without a body, and so without a Content-Length of their own (RFC 9110 §8.6).
_NO_BODY = frozenset({204, 304})


class Sender(Protocol):
    """Sends one request to an upstream (``gateway.upstream.Pool`` in production)."""

    async def request(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                      body: bytes, *, timeout: float) -> Answer: ...

    async def aclose(self) -> None: ...


@dataclass
class Upstream:
    """A service the gateway forwards to: its prefix name, base URL and how to reach it.

    ``sender`` carries the proxied requests; ``probe_transport`` the gateway's own calls
    (readiness, the services' API documents), through ``httpx``."""

    name: str
    base_url: str
    sender: Sender
    probe_transport: httpx.AsyncBaseTransport
    base_path: str
    timeout: float

    @classmethod
    def from_settings(
        cls,
        name: str,
        base_url: str,
        settings: GatewaySettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Upstream:
        """``transport`` (tests) replaces both the pool and the probes' transport."""
        base_url = base_url.rstrip("/")
        url = urlsplit(base_url)
        sender: Sender
        if transport is None:
            https = url.scheme == "https"
            sender = Pool(url.hostname or "127.0.0.1", url.port or (443 if https else 80),
                          max_connections=settings.pool_max_connections,
                          keepalive_expiry=settings.keepalive_expiry_seconds,
                          connect_timeout=settings.connect_timeout_seconds,
                          pool_timeout=settings.pool_timeout_seconds,
                          ssl=ssl.create_default_context() if https else None)
            probe_transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=2,
                                    keepalive_expiry=settings.keepalive_expiry_seconds))
        else:
            sender, probe_transport = HttpxSender(transport, base_url), transport
        return cls(name=name, base_url=base_url, sender=sender,
                   probe_transport=probe_transport, base_path=url.path,
                   timeout=settings.upstream_timeout_seconds)

    def client(self, timeout: float) -> httpx.AsyncClient:
        """A client for the gateway's own calls (readiness), on the probes' transport."""
        return httpx.AsyncClient(transport=_Shared(self.probe_transport),
                                 base_url=self.base_url, timeout=timeout)

    async def aclose(self) -> None:
        await self.sender.aclose()
        await self.probe_transport.aclose()


class _Shared(httpx.AsyncBaseTransport):
    """Lends an upstream's transport to a client without letting the client close it."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)


class HttpxSender:
    """An ``httpx`` transport as a :class:`Sender`, its failures mapped as the pool's."""

    def __init__(self, transport: httpx.AsyncBaseTransport, base_url: str) -> None:
        self.transport = transport
        url = urlsplit(base_url)
        self.origin = f"{url.scheme}://{url.netloc}"

    async def request(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                      body: bytes, *, timeout: float) -> Answer:
        request = httpx.Request(method, httpx.URL(self.origin + target), headers=headers,
                                content=body,
                                extensions={"timeout": httpx.Timeout(timeout).as_dict()})
        try:
            response = await self.transport.handle_async_request(request)
            try:
                raw = (response.content if response.is_stream_consumed
                       else b"".join([chunk async for chunk in response.aiter_raw()]))
            finally:
                await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(repr(exc)) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(repr(exc)) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ClosedBeforeAnswer(repr(exc)) from exc
        except httpx.TransportError as exc:
            raise BrokenAnswer(repr(exc)) from exc
        return Answer(response.status_code,
                      [(k.lower(), v) for k, v in response.headers.raw], raw)

    async def aclose(self) -> None:
        """The transport is closed with the upstream's probes (the same one)."""


class ProxyApp:
    """The ASGI app mounted at ``/<upstream.name>``: forwards one request, returns one."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no websockets behind the gateway
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        up = self.upstream
        method: str = scope["method"]
        target = up.base_path + _upstream_path(scope)
        if query := scope.get("query_string"):
            target += "?" + query.decode("latin-1")
        body = await _body(receive)
        if body is None:  # the client went away mid-body: nothing is sent on for it
            await send({"type": "http.response.start", "status": CLIENT_CLOSED,
                        "headers": []})  # recorded by the edge; never written
            return
        client = scope.get("client")
        headers = forward_headers(scope["headers"], client[0] if client else None,
                                  scope.get("scheme", "http"), up.name, trace_headers())
        try:
            answer = await forward(up, method, target, headers, body)
        except UpstreamError as exc:
            await failure_response(up, exc, scope)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": answer_headers(answer, method)})
        await send({"type": "http.response.body",
                    "body": b"" if method == "HEAD" else answer.body})


def answer_headers(answer: Answer, method: str) -> list[tuple[bytes, bytes]]:
    """The headers of an upstream's answer as the gateway returns them: its own
    ``content-length``, none of the hop-by-hop ones, nor the upstream's date and server."""
    if answer.status in _NO_BODY:
        return [(n, v) for n, v in answer.headers if n not in _NOT_RETURNED]
    length = str(len(answer.body)).encode("latin-1")
    headers = [(b"content-length", length)]
    for name, value in answer.headers:
        if name not in _NOT_RETURNED:
            headers.append((name, value))
        elif name == b"content-length" and method == "HEAD":
            # No body, but the length of the one a GET gets (not the 0 of the empty body).
            headers[0] = (b"content-length", value)
    return headers


async def forward(up: Upstream, method: str, target: str,
                  headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    """Send a request, and once more if it met a kept-alive connection the upstream closed."""
    try:
        return await up.sender.request(method, target, headers, body, timeout=up.timeout)
    except ClosedBeforeAnswer as exc:
        if not resend(up, method, target, headers, exc):
            raise
    return await up.sender.request(method, target, headers, body, timeout=up.timeout)


def resend(up: Upstream, method: str, target: str, headers: list[tuple[bytes, bytes]],
           exc: UpstreamError) -> bool:
    """Whether a request that got ``exc`` is sent once more: its kept-alive connection
    closed before any answer, and it is safe to repeat (see the module's docstring)."""
    if not (isinstance(exc, ClosedBeforeAnswer) and exc.reused
            and _replayable(method, headers)):
        return False
    log.info("upstream %s closed a kept-alive connection (%s); sending %s %s again",
             up.name, exc, method, target.split("?", 1)[0])
    return True


def _replayable(method: str, headers: list[tuple[bytes, bytes]]) -> bool:
    return method in _IDEMPOTENT or (
        method == "POST" and any(k == b"idempotency-key" for k, _ in headers)
    )


def failure_response(up: Upstream, exc: UpstreamError, scope: Scope) -> Response:
    """An upstream failure as problem+json, naming the service and nothing of its own."""
    request = Request(scope)
    if isinstance(exc, NotSent):
        log.warning("upstream %s unavailable: %s", up.name, exc)
        return problem_response(
            request, 503, f"the {up.name} service is unavailable; nothing was sent to "
            "it, retry later", kind="unavailable", title="Service unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            extensions={"upstream": up.name})
    if isinstance(exc, UpstreamTimeout):
        log.warning("upstream %s timed out: %s", up.name, exc)
        return problem_response(
            request, 504, f"the {up.name} service did not answer in time",
            kind="gateway-timeout", title="Gateway timeout", extensions={"upstream": up.name})
    log.warning("upstream %s failed mid-request: %s", up.name, exc)
    return problem_response(
        request, 502, f"the {up.name} service broke off its answer",
        kind="bad-gateway", title="Bad gateway", extensions={"upstream": up.name})


async def _body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client went away before it all came."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _upstream_path(scope: Scope) -> str:
    """The path below the mount, percent-encoded as the caller sent it."""
    mount = scope.get("root_path", "").encode("latin-1")
    raw = scope.get("raw_path")
    if raw is not None and mount and raw.startswith(mount):
        rest = raw[len(mount):].decode("latin-1")
        return rest if rest.startswith("/") else "/" + rest
    return quote(get_route_path(scope) or "/")


def forward_headers(incoming: list[tuple[bytes, bytes]], client: str | None, scheme: str,
                    prefix: str, trace: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers as the service gets them: hop-by-hop ones dropped, the
    gateway span's ``trace`` context, and the gateway's ``X-Forwarded-*``."""
    drop = _NOT_FORWARDED
    prior_for: list[bytes] = []
    host: bytes | None = None
    for k, v in incoming:
        if k == b"connection":
            drop = drop | {t.strip().lower().encode("latin-1")
                           for t in v.decode("latin-1").split(",")}
        elif k == b"x-forwarded-for":
            prior_for.append(v)
        elif k == b"host" and host is None:
            host = v
    headers = [(k, v) for k, v in incoming if k not in drop]
    headers.extend(trace)  # the gateway's span: the service's span its child
    chain = b", ".join([*prior_for, *([client.encode("latin-1")] if client else [])])
    if chain:
        headers.append((b"x-forwarded-for", chain))
    headers.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    if host:
        headers.append((b"x-forwarded-host", host))
    headers.append((b"x-forwarded-prefix", f"/{prefix}".encode("latin-1")))
    return headers
