"""The gateway's HTTP/1.1 server protocol: uvicorn's, with proxied requests answered
without ASGI.

A proxy spends most of its CPU on what surrounds the forwarding: on a 2-core machine
the gateway's hop cost a GET of one distribution about a third of its throughput, and
uvicorn's ASGI cycle (a scope, receive and send per message, the middleware chain) was
a good part of it (bench/README.md). So a request under the prefix of a proxied
service (``/ipshare/...``) is parsed by uvicorn's httptools parser as every request is,
then served here in one task: the edge's steps (``gateway.edge.Edge``: ``enter``,
``admit``, ``leave``: request id, route table, rate limits, token, access line,
metrics), the body limit, the request's span (``gateway.spans``), the upstream pool
(``gateway.proxy.forward``), and the answer written to the socket at once. The rules
are the ASGI path's own (the same ``Edge``, ``forward_headers``, ``answer_headers`` and
``failure_response``), so an answer does not depend on the way its request took.

Everything else goes to the ASGI app as uvicorn serves it: the gateway's own routes,
the services it mounts itself (``make run``), a request pipelined behind one still being
answered (uvicorn queues it behind this one), an upgrade, a server with a concurrency
limit.

Run the gateway with ``http=GatewayProtocol`` (``python -m gateway proxy``, the image,
``make stack``). This subclasses uvicorn's ``HttpToolsProtocol``, whose internals are
not a public API: the uvicorn version is pinned, and ``gateway/tests/unit/test_server.py``
serves every case through it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httptools
import orjson
from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.edge import REQUEST_ID, Edge, Passage, Refusal, new_request_id
from gateway.proxy import Upstream, answer_headers, failure_response, forward, forward_headers
from gateway.spans import ServerSpan
from gateway.upstream import BrokenAnswer, UpstreamError
from servicekit.limits import BodyTooLarge
from servicekit.problems import PROBLEM_JSON, TYPE_BASE, problem_response

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # the status recorded for a request whose client went away (nginx's)


@dataclass(frozen=True, slots=True)
class FastPath:
    """What the protocol needs of the gateway app: its edge, its proxied upstreams by
    prefix (``b"/ipshare"``) and the body limit."""

    edge: Edge
    upstreams: dict[bytes, Upstream]
    max_body_bytes: int


class _Exchange:
    """One proxied request on a connection, as uvicorn's protocol sees a cycle."""

    __slots__ = ("method", "path", "raw_path", "query", "headers", "keep_alive",
                 "upstream", "response_complete", "disconnected", "expect_continue",
                 "body", "received", "too_large", "_arrived", "_waiter")

    def __init__(self, method: str, path: str, raw_path: bytes, query: bytes,
                 headers: list[tuple[bytes, bytes]], keep_alive: bool, upstream: Upstream,
                 expect_continue: bool) -> None:
        self.method, self.path, self.raw_path, self.query = method, path, raw_path, query
        self.headers, self.keep_alive, self.upstream = headers, keep_alive, upstream
        self.expect_continue = expect_continue
        self.response_complete = self.disconnected = self.too_large = False
        self.body: list[bytes] = []
        self.received = 0
        self._arrived = False  # the whole body, or the client gone
        self._waiter: asyncio.Future[None] | None = None

    @property
    def message_event(self) -> _Exchange:
        """uvicorn's protocol sets its cycle's ``message_event`` when the client goes."""
        return self

    def set(self) -> None:
        self.body_complete()

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
    """uvicorn's HTTP/1.1 protocol; a proxied request is served by ``_serve``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast = fast_path_of(self.app) if self.limit_concurrency is None else None

    def send_400_response(self, msg: str) -> None:
        """A request the parser cannot read (an unknown method, a malformed line): 400
        problem+json with a request id, as every answer of the gateway, then the
        connection closes (what follows on it cannot be trusted)."""
        body = orjson.dumps({"type": TYPE_BASE + "bad-request", "title": "Bad request",
                             "status": 400, "detail": "the request is not HTTP/1.1 this "
                             "gateway can read: " + msg.rstrip(".").lower()})
        head = [STATUS_LINE[400]]
        head.extend(b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        head.append(b"content-type: %s\r\ncontent-length: %d\r\nx-request-id: %s\r\n"
                    b"connection: close\r\n\r\n" % (PROBLEM_JSON.encode(), len(body),
                                                    new_request_id()))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # -- parser callbacks

    def on_headers_complete(self) -> None:
        fast = self._fast
        cycle = self.cycle
        if fast is None or (cycle is not None and not cycle.response_complete):
            super().on_headers_complete()  # a pipelined request waits its turn in uvicorn
            return
        parser = self.parser
        if parser.should_upgrade():
            super().on_headers_complete()
            return
        url = httptools.parse_url(self.url)
        raw_path: bytes = url.path
        end = raw_path.find(b"/", 1)
        upstream = fast.upstreams.get(raw_path[:end]) if end > 0 else None
        if upstream is None:
            super().on_headers_complete()
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
        task = self.loop.create_task(self._serve(fast, exchange))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_body(self, body: bytes) -> None:
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
            return
        exchange.body.append(body)

    def on_message_complete(self) -> None:
        exchange = self.cycle
        if not isinstance(exchange, _Exchange):
            super().on_message_complete()
            return
        exchange.body_complete()

    # -- a proxied request

    async def _serve(self, fast: FastPath, exchange: _Exchange) -> None:
        edge = fast.edge
        peer = self.client[0] if self.client else "-"
        passage = edge.enter(exchange.method, exchange.path, exchange.headers, peer)
        span = ServerSpan(exchange.method, exchange.path, exchange.headers)
        status, failure = 500, None
        try:
            if passage.route is not None:
                span.name(passage.route.method, passage.route.template)
            status = await self._answer(exchange, passage)
        except Exception as exc:  # a 500, logged, as the app's own handler answers it
            log.exception("unhandled error on %s %s", exchange.method, exchange.path)
            failure = exc
            status = self._respond_with(exchange, passage, problem_response(
                Request(self._request_scope(exchange, passage)), 500,
                "an unexpected error occurred; it has been logged"))
        finally:
            edge.leave(passage, status)  # inside the span: the access line names it
            span.end(status, failure)

    async def _answer(self, exchange: _Exchange, passage: Passage) -> int:
        """Refuse, forward or fail the request; the status answered."""
        refusal = await self._fast.edge.admit(passage)  # type: ignore[union-attr]
        if refusal is None and exchange.too_large:
            refusal = _too_large(self._fast.max_body_bytes)  # type: ignore[union-attr]
        if refusal is not None:
            exchange.keep_alive = exchange.keep_alive and not exchange.too_large
            return self._respond_with(exchange, passage,
                                      refusal.response(self._request_scope(exchange, passage)))
        if exchange.expect_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await exchange.whole_body(self.loop)
        if body is None:
            return CLIENT_CLOSED
        if exchange.too_large:  # a body sent in chunks, past the limit
            exchange.keep_alive = False
            return self._respond_with(exchange, passage, _too_large(
                self._fast.max_body_bytes).response(  # type: ignore[union-attr]
                    self._request_scope(exchange, passage)))
        up = exchange.upstream
        target = up.base_path + exchange.raw_path[len(up.name) + 1:].decode("latin-1")
        if exchange.query:
            target += "?" + exchange.query.decode("latin-1")
        headers = forward_headers(passage.headers, self.client[0] if self.client else None,
                                  self.scheme or "http", up.name)
        try:
            answer = await forward(up, exchange.method, target, headers, body)
            if answer.status not in STATUS_LINE:
                raise BrokenAnswer(f"status {answer.status} is not HTTP")
        except UpstreamError as exc:
            return self._respond_with(exchange, passage, failure_response(
                up, exc, self._request_scope(exchange, passage)))
        self._write(exchange, passage, answer.status, answer_headers(answer, exchange.method),
                    answer.body)
        return answer.status

    def _respond_with(self, exchange: _Exchange, passage: Passage, response: Any) -> int:
        self._write(exchange, passage, response.status_code, response.raw_headers,
                    response.body)
        return int(response.status_code)

    def _write(self, exchange: _Exchange, passage: Passage, status: int,
               headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The whole answer in one write; then the connection is kept or closed."""
        exchange.response_complete = True
        transport = self.transport
        if exchange.disconnected or transport.is_closing():
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


def fast_path_of(app: Any) -> FastPath | None:
    """The gateway app's fast path, through whatever middleware uvicorn wrapped it in."""
    for _ in range(8):
        fast_path = getattr(app, "fast_path", None)
        if callable(fast_path):
            return fast_path()  # type: ignore[no-any-return]
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
