"""The gateway's HTTP/1.1 server protocol: uvicorn's, with proxied requests answered
without ASGI.

A proxy spends most of its CPU on what surrounds the forwarding: on a 2-core machine
the gateway's hop cost a GET of one distribution about a third of its throughput, and
uvicorn's ASGI cycle (a scope, receive and send per message, the middleware chain) was
a good part of it (bench/README.md). So a request under the prefix of a proxied
service (``/ipshare/...``) is parsed by uvicorn's httptools parser as every request is,
then served here: the edge's steps (``gateway.edge.Edge``: ``enter``, ``admit``,
``leave``: request id, route table, rate limits, token, access line, metrics), the body
limit, the request's span (``gateway.spans``), the upstream pool, and the answer written
to the socket at once. When nothing in it waits (counters in memory, a token already
verified, a free kept-alive upstream connection) that happens in callbacks: the parser's
sends it on, the upstream connection's writes the answer back. Otherwise it is served
in a task. The rules are the ASGI path's own (the same ``Edge``, ``forward_headers``,
``answer_headers``, ``resend`` and ``failure_response``), so an answer does not depend
on the way its request took.

Everything else goes to the ASGI app as uvicorn serves it: the gateway's own routes,
the services it mounts itself (``make run``), a request pipelined behind one still being
answered (uvicorn queues it behind this one), an upgrade request (an ordinary request
here, on a connection that then closes: the gateway speaks no WebSocket), a server with
a concurrency limit.

Run the gateway with ``http=GatewayProtocol`` (``python -m gateway.server``, the image,
``make stack``, ``make run``). This subclasses uvicorn's ``HttpToolsProtocol``, whose internals are
not a public API: the uvicorn version is pinned, and ``gateway/tests/unit/test_server.py``
serves every case through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from urllib.parse import unquote

import httptools
import orjson
from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.edge import REQUEST_ID, Edge, Passage, Refusal, new_request_id
from gateway.proxy import (
    CLIENT_CLOSED,
    Upstream,
    answer_headers,
    failure_response,
    forward,
    forward_headers,
    resend,
)
from gateway.spans import ServerSpan
from gateway.upstream import Answer, BrokenAnswer, Pool, UpstreamError
from servicekit.limits import BodyTooLarge
from servicekit.problems import PROBLEM_JSON, TYPE_BASE, problem_response

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FastPath:
    """What the protocol needs of the gateway app: its edge, its proxied upstreams by
    prefix (``b"/ipshare"``) and the body limit."""

    edge: Edge
    upstreams: dict[bytes, Upstream]
    max_body_bytes: int


@dataclass(frozen=True)
class HeadLimits:
    """How large a request's head may be: its line and header fields together in bytes,
    and how many fields (``GATEWAY_MAX_HEADER_BYTES``, ``GATEWAY_MAX_HEADER_FIELDS``)."""

    max_bytes: int = 65_536
    max_fields: int = 100


class _Refused(Exception):
    """Raised in a parser callback: the request is answered ``_refusal`` and the
    connection closed (``send_400_response``)."""


class _Exchange:
    """One proxied request on a connection, as uvicorn's protocol sees a cycle."""

    __slots__ = ("method", "path", "raw_path", "query", "headers", "keep_alive",
                 "upstream", "response_complete", "disconnected", "expect_continue",
                 "body", "received", "too_large", "started", "since", "_arrived", "_waiter")

    def __init__(self, method: str, path: str, raw_path: bytes, query: bytes,
                 headers: list[tuple[bytes, bytes]], keep_alive: bool, upstream: Upstream,
                 expect_continue: bool) -> None:
        self.method, self.path, self.raw_path, self.query = method, path, raw_path, query
        self.headers, self.keep_alive, self.upstream = headers, keep_alive, upstream
        self.expect_continue = expect_continue
        self.response_complete = self.disconnected = self.too_large = False
        self.started = False  # being served
        self.since = perf_counter()  # its headers parsed: its latency is timed from here
        self.body: list[bytes] = []
        self.received = 0
        self._arrived = False  # the whole body, or the client gone
        self._waiter: asyncio.Future[None] | None = None

    @property
    def message_event(self) -> _Exchange:
        """uvicorn's protocol sets its cycle's ``message_event`` when the client goes."""
        return self

    def set(self) -> None:
        """The client went away (``disconnected`` is set): nothing more will come."""
        self.body_complete()

    @property
    def arrived(self) -> bool:
        """The whole body is in (or the client is gone)."""
        return self._arrived

    def body_complete(self) -> None:
        self._arrived = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def whole_body(self, loop: asyncio.AbstractEventLoop) -> bytes | None:
        """The body once it has all arrived; None when the client went away first."""
        if not self._arrived:
            self._waiter = loop.create_future()
            await self._waiter
        return None if self.disconnected else b"".join(self.body)


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol; a proxied request is served by ``_begin`` (or
    ``_serve``, when it waits for something)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        gateway = gateway_of(self.app)
        self._fast: FastPath | None = (
            gateway.fast_path() if gateway is not None and self.limit_concurrency is None
            else None)
        self._limits: HeadLimits = getattr(gateway, "head_limits", None) or HeadLimits()
        self._trailers = False  # the current message's header fields are complete
        self._in_head = False  # a message begun, its header fields not all parsed yet
        self._head_bytes = self._head_fields = self._hosts = self._unfinished = 0
        self._refusal: tuple[int, str, str, str] | None = None
        # The gateway speaks no WebSocket (nothing behind it serves one): an upgrade
        # request is an ordinary request at the edge, its Upgrade not forwarded.
        self.ws_protocol_class = None

    def _unsupported_upgrade_warning(self) -> None:
        """uvicorn's warning names a missing WebSocket library: here it is not missing."""

    def send_400_response(self, msg: str) -> None:
        """A request the parser cannot read (an unknown method, a malformed line), or
        one a callback refused (``_refusal``): problem+json with a request id, as every
        answer of the gateway, then the connection closes (what follows on it cannot be
        trusted)."""
        refusal, self._refusal = self._refusal, None
        self._refuse_unread(*(refusal or (
            400, "bad-request", "Bad request",
            "the request is not HTTP/1.1 this gateway can read: " + msg.rstrip(".").lower())))

    def _refuse_unread(self, status: int, kind: str, title: str, detail: str) -> None:
        body = orjson.dumps({"type": TYPE_BASE + kind, "title": title, "status": status,
                             "detail": detail})
        head = [STATUS_LINE[status]]
        head.extend(b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        head.append(b"content-type: %s\r\ncontent-length: %d\r\nx-request-id: %s\r\n"
                    b"connection: close\r\n\r\n" % (PROBLEM_JSON.encode(), len(body),
                                                    new_request_id()))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        unfinished = self._in_head
        super().data_received(data)
        if unfinished and self._in_head and not self.transport.is_closing():
            # A header (or trailer) field still coming, past the limit: the parser keeps
            # what it has of a field until it ends, so it is refused before it is all in
            # memory (the read that begins a message is not counted: at most one more).
            self._unfinished += len(data)
            if self._unfinished > self._limits.max_bytes:
                self._refuse_unread(*self._too_large_head())

    def _too_large_head(self) -> tuple[int, str, str, str]:
        limits = self._limits
        return (431, "header-fields-too-large", "Request header fields too large",
                f"a request's line and header fields may take {limits.max_bytes} bytes "
                f"in {limits.max_fields} fields at most")

    def connection_lost(self, exc: Exception | None) -> None:
        exchange = self.cycle
        super().connection_lost(exc)
        if isinstance(exchange, _Exchange) and not exchange.started:
            exchange.started = True  # gone before its body had all come: logged 499
            try:
                passage, span = self._enter(self._fast, exchange)  # type: ignore[arg-type]
                self._finish(passage, span, CLIENT_CLOSED)
            except Exception:
                log.exception("recording a request whose client went away")

    def on_message_begin(self) -> None:
        # uvicorn's, less the ASGI scope: made by _to_asgi for a request the app serves.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._trailers = False
        self._in_head = True
        self._head_bytes = self._head_fields = self._hosts = self._unfinished = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)
        if self._head_bytes > self._limits.max_bytes:
            self._refusal = self._too_large_head()
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counted inline, not in a helper: this runs for every field of every request.
        self._head_bytes += len(name) + len(value) + 4  # trailer fields too, afresh
        self._head_fields += 1
        if (self._head_bytes > self._limits.max_bytes
                or self._head_fields > self._limits.max_fields):
            self._refusal = self._too_large_head()
            raise _Refused
        if not self._trailers:  # a chunked body's trailer fields are not request headers
            if len(name) == 4 and name.lower() == b"host":
                self._hosts += 1
            super().on_header(name, value)

    # -- parser callbacks

    def on_headers_complete(self) -> None:
        self._in_head = False
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):  # HTTP/0.9's bare line, or a 2.0 on this one
            self._refusal = (505, "http-version-not-supported", "HTTP version not "
                             "supported", f"this gateway speaks HTTP/1.1 (and 1.0), not "
                             f"HTTP/{version}")
            raise _Refused
        if self._hosts != 1 and version == "1.1":
            self._refusal = (400, "bad-request", "Bad request", "an HTTP/1.1 request has "
                             "exactly one Host header field (RFC 9112, section 3.2)")
            raise _Refused
        self._head_bytes = self._head_fields = 0  # its trailer fields, if any, from here
        self._trailers = True
        # An answer written while the previous request was parsed armed the keep-alive
        # timer: this request is not idle time. On a closing connection, nothing is served.
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        parser = self.parser
        if parser.should_upgrade():  # served on uvicorn's cycle, then the connection closes:
            self._to_asgi()  # what follows an upgrade's head is not HTTP
            self.cycle.keep_alive = False
            return
        fast = self._fast
        cycle = self.cycle
        if fast is None or (cycle is not None and not cycle.response_complete):
            self._to_asgi()  # a pipelined request waits its turn in uvicorn
            return
        url = httptools.parse_url(self.url)
        raw_path: bytes = url.path
        end = raw_path.find(b"/", 1)
        upstream = fast.upstreams.get(raw_path[:end]) if end > 0 else None
        if upstream is None:
            self._to_asgi()
            return
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        version = parser.get_http_version()
        exchange = _Exchange(parser.get_method().decode("ascii"), path, raw_path,
                             url.query or b"", self.headers,
                             version != "1.0" and parser.should_keep_alive(), upstream,
                             self.expect_100_continue)
        for name, value in self.headers:
            if (name == b"content-length" and value.isdigit()
                    and int(value) > fast.max_body_bytes):
                exchange.too_large = True
        self.cycle = exchange  # type: ignore[assignment]
        if exchange.too_large or exchange.expect_continue:  # answered before its body
            exchange.started = True
            self._spawn(self._serve(fast, exchange))

    def _to_asgi(self) -> None:
        """The request handed to the ASGI app as uvicorn hands it, with the scope its
        ``on_message_begin`` makes."""
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        super().on_headers_complete()

    def on_chunk_header(self) -> None:
        self._in_head = True  # a chunk's size line; after the last, its trailer fields

    def on_chunk_complete(self) -> None:
        self._in_head = False
        self._unfinished = 0

    def on_body(self, body: bytes) -> None:
        self._in_head = False
        self._unfinished = 0
        exchange = self.cycle
        if not isinstance(exchange, _Exchange):
            super().on_body(body)
            return
        if exchange.too_large or exchange.response_complete:
            return
        exchange.received += len(body)
        if exchange.received > self._fast.max_body_bytes:  # type: ignore[union-attr]
            exchange.too_large = True
            exchange.body.clear()
            self.flow.pause_reading()
            exchange.body_complete()
            if not exchange.started:
                exchange.started = True
                self._spawn(self._serve(self._fast, exchange))  # type: ignore[arg-type]
            return
        exchange.body.append(body)

    def on_message_complete(self) -> None:
        exchange = self.cycle
        if not isinstance(exchange, _Exchange):
            super().on_message_complete()
            return
        exchange.body_complete()
        if not exchange.started:
            exchange.started = True
            self._begin(self._fast, exchange)  # type: ignore[arg-type]

    # -- a proxied request

    def _begin(self, fast: FastPath, exchange: _Exchange) -> None:
        """Serve a whole request: at once when nothing in it waits (the edge decides in
        memory, a kept-alive connection is free), its answer written from the upstream
        connection's own callback; in a task otherwise. Nothing escapes into the parser."""
        try:
            if not fast.edge.immediate(exchange.headers):
                self._spawn(self._serve(fast, exchange))
                return
            passage, span = self._enter(fast, exchange)
        except Exception:
            log.exception("unhandled error on %s %s", exchange.method, exchange.path)
            self.transport.close()  # no request id to answer with: the client sees a close
            return
        try:
            refusal = fast.edge.admit_now(passage)
            if refusal is not None:
                self._finish(passage, span, self._refuse(exchange, passage, refusal))
            else:
                self._forward_now(exchange, passage, span, b"".join(exchange.body))
        except Exception as exc:  # noqa: BLE001 - answered 500, logged by _crashed
            self._crashed(exchange, passage, span, exc)

    async def _serve(self, fast: FastPath, exchange: _Exchange) -> None:
        """Serve a request that waits for something: the edge's shared store or a key,
        its body's go-ahead (``Expect: 100-continue``), or a body past the limit."""
        try:
            passage, span = self._enter(fast, exchange)
        except Exception:
            log.exception("unhandled error on %s %s", exchange.method, exchange.path)
            self.transport.close()
            return
        try:
            refusal = await fast.edge.admit(passage)
            if refusal is None and exchange.too_large:
                refusal = _too_large(fast.max_body_bytes)
            if refusal is not None:
                self._finish(passage, span, self._refuse(exchange, passage, refusal))
                return
            if exchange.expect_continue and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await exchange.whole_body(self.loop)
            if body is None:
                self._finish(passage, span, CLIENT_CLOSED)
            elif exchange.too_large:  # a body sent in chunks, past the limit
                self._finish(passage, span, self._refuse(exchange, passage,
                                                         _too_large(fast.max_body_bytes)))
            else:
                await self._forward(exchange, passage, span, body)
        except Exception as exc:  # noqa: BLE001 - answered 500, logged by _crashed
            self._crashed(exchange, passage, span, exc)

    def _forward_now(self, exchange: _Exchange, passage: Passage, span: ServerSpan,
                     body: bytes) -> None:
        up = exchange.upstream
        target, headers = self._outgoing(exchange, passage, span)

        def then(answer: Answer | None, error: UpstreamError | None) -> None:
            try:
                if error is not None:
                    with span.current():
                        again = resend(up, exchange.method, target, headers, error)
                    if again:
                        self._spawn(self._forward(exchange, passage, span, body, target,
                                                  headers, again=True))
                        return
                self._finish(passage, span, self._answered(exchange, passage, span, answer,
                                                           error))
            except Exception as exc:  # noqa: BLE001 - answered 500, logged by _crashed
                self._crashed(exchange, passage, span, exc)

        sender = up.sender
        if not (isinstance(sender, Pool) and sender.try_send(
                exchange.method, target, headers, body, timeout=up.timeout, then=then)):
            self._spawn(self._forward(exchange, passage, span, body, target, headers))

    async def _forward(self, exchange: _Exchange, passage: Passage, span: ServerSpan,
                       body: bytes, target: str | None = None,
                       headers: list[tuple[bytes, bytes]] | None = None, *,
                       again: bool = False) -> None:
        """Forward through ``proxy.forward`` (which sends once more when it may), or send
        ``again`` a request whose first sending met a closed connection."""
        try:
            up = exchange.upstream
            if target is None or headers is None:
                target, headers = self._outgoing(exchange, passage, span)
            answer, error = None, None
            try:
                if again:
                    answer = await up.sender.request(exchange.method, target, headers, body,
                                                     timeout=up.timeout)
                else:
                    with span.current():  # forward logs a sending again
                        answer = await forward(up, exchange.method, target, headers, body)
            except UpstreamError as exc:
                error = exc
            self._finish(passage, span, self._answered(exchange, passage, span, answer, error))
        except Exception as exc:  # noqa: BLE001 - answered 500, logged by _crashed
            self._crashed(exchange, passage, span, exc)

    def _enter(self, fast: FastPath, exchange: _Exchange) -> tuple[Passage, ServerSpan]:
        passage = fast.edge.enter(exchange.method, exchange.path, exchange.headers,
                                  self.client[0] if self.client else "-", exchange.since)
        span = ServerSpan(exchange.method, exchange.path, exchange.headers)
        if passage.route is not None:
            span.name(passage.route.method, passage.route.template)
        return passage, span

    def _outgoing(self, exchange: _Exchange, passage: Passage,
                  span: ServerSpan) -> tuple[str, list[tuple[bytes, bytes]]]:
        """The request's target on the upstream and the headers it is sent with."""
        up = exchange.upstream
        target = up.base_path + exchange.raw_path[len(up.name) + 1:].decode("latin-1")
        if exchange.query:
            target += "?" + exchange.query.decode("latin-1")
        return target, forward_headers(passage.headers, self.client[0] if self.client else None,
                                       self.scheme or "http", up.name, span.trace_headers())

    def _answered(self, exchange: _Exchange, passage: Passage, span: ServerSpan,
                  answer: Answer | None, error: UpstreamError | None) -> int:
        """The upstream's answer written back (its failure as a problem, logged under the
        request's trace); the status."""
        if answer is not None and answer.status not in STATUS_LINE:
            error = BrokenAnswer(f"status {answer.status} is not HTTP")
        if error is not None or answer is None:
            assert error is not None
            with span.current():
                failure = failure_response(exchange.upstream, error,
                                           self._request_scope(exchange, passage))
            return self._respond_with(exchange, passage, failure)
        self._write(exchange, passage, answer.status, answer_headers(answer, exchange.method),
                    answer.body)
        return answer.status

    def _refuse(self, exchange: _Exchange, passage: Passage, refusal: Refusal) -> int:
        if exchange.too_large or not exchange.arrived:
            exchange.keep_alive = False  # the rest of its body is not read: the connection closes
        return self._respond_with(exchange, passage,
                                  refusal.response(self._request_scope(exchange, passage)))

    def _crashed(self, exchange: _Exchange, passage: Passage, span: ServerSpan,
                 exc: Exception) -> None:
        with span.current():
            log.exception("unhandled error on %s %s", exchange.method, exchange.path)
        status = 500
        try:
            if not exchange.response_complete:
                status = self._respond_with(exchange, passage, problem_response(
                    Request(self._request_scope(exchange, passage)), 500,
                    "an unexpected error occurred; it has been logged"))
        except Exception:
            log.exception("answering 500 failed; closing the connection")
            self.transport.close()
        self._finish(passage, span, status, exc)

    def _finish(self, passage: Passage, span: ServerSpan, status: int,
                failure: Exception | None = None) -> None:
        """The access line and metrics, under the request's span; the span ended."""
        try:
            self._fast.edge.leave(passage, status, span.ids)  # type: ignore[union-attr]
            span.end(status, failure)
        except Exception:
            log.exception("recording %s %s failed", passage.method, passage.path)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(job)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)  # the server waits for it at shutdown

    def _respond_with(self, exchange: _Exchange, passage: Passage, response: Any) -> int:
        self._write(exchange, passage, response.status_code, response.raw_headers,
                    response.body)
        return int(response.status_code)

    def _write(self, exchange: _Exchange, passage: Passage, status: int,
               headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The whole answer in one write; then the connection is kept or closed."""
        transport = self.transport
        if exchange.disconnected or transport.is_closing():
            exchange.response_complete = True
            return
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:  # date, server
            head.append(b"%s: %s\r\n" % (name, value))
        for name, value in headers:
            if name != REQUEST_ID:
                head.append(b"%s: %s\r\n" % (name, value))
        head.append(b"x-request-id: %s\r\n" % passage.rid)
        if not exchange.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if exchange.method != "HEAD":
            head.append(body)
        exchange.response_complete = True
        transport.write(b"".join(head))
        if not exchange.keep_alive:
            transport.close()
        self.on_response_complete()

    def _request_scope(self, exchange: _Exchange, passage: Passage) -> dict[str, Any]:
        """An ASGI scope of the request, for the problem answers that are built from one."""
        return {"type": "http", "method": exchange.method, "path": exchange.path,
                "raw_path": exchange.raw_path, "query_string": exchange.query,
                "headers": passage.headers, "server": self.server, "client": self.client,
                "scheme": self.scheme, "root_path": "", "http_version": "1.1"}


def _too_large(max_bytes: int) -> Refusal:
    return Refusal(413, BodyTooLarge(max_bytes).detail, "payload-too-large")


def gateway_of(app: Any) -> Any | None:
    """The gateway app (its ``fast_path`` and ``head_limits``), through whatever
    middleware uvicorn wrapped it in."""
    for _ in range(8):
        if callable(getattr(app, "fast_path", None)):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.server [APP] --host H --port P``: the gateway on uvicorn with
    this protocol, no uvicorn access line (the edge writes its own) and no trust in
    ``X-Forwarded-*`` beyond ``GATEWAY_TRUSTED_PROXIES`` (the edge decides)."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m gateway.server", description=main.__doc__)
    parser.add_argument("app", nargs="?", default="gateway.app:create_app",
                        help="the app factory (module:callable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(args.app, factory=True, host=args.host, port=args.port, http=GatewayProtocol,
                proxy_headers=False, access_log=False, log_level=args.log_level,
                lifespan="on")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
