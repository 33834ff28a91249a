"""The gateway's HTTP/1.1 client for its upstreams: a pool of keep-alive connections.

Each connection is an asyncio protocol whose answers are parsed by httptools (the parser
uvicorn serves with). A request is one ``write`` of its head and body; its answer is
buffered whole (the API's bodies are small JSON) and returned as sent: status, header
pairs, and the body still content-encoded. This costs a fraction of a general-purpose
client's CPU per request (bench/README.md, "gateway.py"), which on a proxy is most of
what the hop costs.

The pool keeps at most ``max_connections`` connections; a request waits up to
``pool_timeout`` for one. An idle connection is reused most-recent first and dropped
once it has been idle ``keepalive_expiry`` seconds (keep that below the upstream's own
keep-alive, 5 s for uvicorn, so the pool does not pick a connection the upstream is
closing) or when the upstream has closed it or answered ``Connection: close``.

Failures are typed by what the caller may do about them:

- :class:`NotSent`: no connection (refused, or none within ``connect_timeout`` or
  ``pool_timeout``); nothing reached the upstream.
- :class:`ClosedBeforeAnswer`: the connection closed before any byte of an answer came
  back. On a kept-alive connection (``reused``) that is the upstream closing it just as
  the request went out, and the upstream did not process it.
- :class:`UpstreamTimeout`: no whole answer within the request's timeout; the upstream
  may still be working on it.
- :class:`BrokenAnswer`: the answer was cut off or was not HTTP.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httptools


class UpstreamError(Exception):
    """An upstream request that got no usable answer."""


class NotSent(UpstreamError):
    pass


class ClosedBeforeAnswer(UpstreamError):
    def __init__(self, message: str, *, reused: bool = False) -> None:
        super().__init__(message)
        self.reused = reused


class UpstreamTimeout(UpstreamError):
    pass


class BrokenAnswer(UpstreamError):
    pass


class Waiter(Protocol):
    """Who is told an exchange's outcome: a future, or a callback (``Pool.try_send``)."""

    def done(self) -> bool: ...

    def set_result(self, result: Answer, /) -> None: ...

    def set_exception(self, exc: BaseException, /) -> None: ...


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]  # names lower-cased, in the order received
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer as a future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.idle_since = 0.0
        self._answer: Waiter | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._head_only = False
        self._received = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()  # once: each lookup is a getpid() call

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._parser is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BrokenAnswer("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BrokenAnswer(f"not an HTTP/1.1 answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if (self._received and self._headers_done and self._parser is not None
                and not self._has_length()):
            self._complete(keep_alive=False)  # a body delimited by the connection's end
            return
        self._settle()
        if not self._received:
            answer.set_exception(ClosedBeforeAnswer("the upstream closed the connection "
                                                    "before answering"))
        else:
            answer.set_exception(BrokenAnswer("the upstream closed the connection "
                                              "mid-answer"))

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self._interim():
            return
        self._headers_done = True
        if self._head_only:  # no body follows, whatever the headers say
            self._complete(keep_alive=self._keep_alive())

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        # (A HEAD's answer was complete with its headers, its parser let go.)
        if not self._head_only and not self._interim():
            self._complete(keep_alive=self._keep_alive())

    def _interim(self) -> bool:
        """Whether the message parsed is an interim 1xx answer (103 Early Hints, a 100
        Continue): it is dropped, and the final answer that follows awaited."""
        assert self._parser is not None
        if 100 <= self._parser.get_status_code() < 200:
            self._headers, self._body = [], []
            return True
        return False

    # -- the request

    def start(self, request: bytes, *, head_only: bool, timeout: float,
              waiter: Waiter) -> None:
        """Send ``request``; its answer (or failure) goes to ``waiter``."""
        assert self.transport is not None and self.loop is not None
        self._answer = waiter
        self._parser = httptools.HttpResponseParser(self)
        self._head_only, self._received, self._headers_done = head_only, False, False
        self._headers, self._body = [], []
        self.transport.write(request)
        self._timer = self.loop.call_later(timeout, self._time_out)

    async def exchange(self, request: bytes, *, head_only: bool, timeout: float) -> Answer:
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.start(request, head_only=head_only, timeout=timeout, waiter=answer)
        try:
            return await answer
        finally:
            self._settle()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _settle(self) -> Waiter | None:
        """The exchange is over: no timer, no parser; the waiter still to be told."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter, self._answer, self._parser = self._answer, None, None
        return waiter

    def _keep_alive(self) -> bool:
        assert self._parser is not None
        return self._parser.should_keep_alive()

    def _has_length(self) -> bool:
        return any(name in (b"content-length", b"transfer-encoding")
                   for name, _ in self._headers)

    def _complete(self, *, keep_alive: bool) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        assert self._parser is not None
        if not keep_alive:
            self.close()
        result = Answer(self._parser.get_status_code(), self._headers, b"".join(self._body))
        self._settle()
        answer.set_result(result)

    def _fail(self, exc: UpstreamError) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        answer = self._settle()
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def _time_out(self) -> None:
        self._fail(UpstreamTimeout("no answer in time"))


Then = Callable[[Answer | None, UpstreamError | None], None]


class _Callback:
    """The waiter of ``Pool.try_send``: the slot and connection go back to the pool, then
    ``then`` hears the outcome."""

    __slots__ = ("pool", "connection", "then", "_done")

    def __init__(self, pool: Pool, connection: _Connection, then: Then) -> None:
        self.pool, self.connection, self.then = pool, connection, then
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, answer: Answer, /) -> None:
        self._done = True
        self.pool._give_slot()
        try:
            self.then(answer, None)
        finally:
            self.pool._keep(self.connection)  # after: nothing reuses it from within then

    def set_exception(self, exc: BaseException, /) -> None:
        self._done = True
        self.connection.close()
        self.pool._give_slot()
        if isinstance(exc, ClosedBeforeAnswer):
            exc.reused = True  # try_send only sends on kept-alive connections
        assert isinstance(exc, UpstreamError)
        self.then(None, exc)


class Pool:
    """Keep-alive connections to one upstream ``host:port``."""

    def __init__(self, host: str, port: int, *, max_connections: int, keepalive_expiry: float,
                 connect_timeout: float, pool_timeout: float,
                 ssl: _ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.ssl = host, port, ssl
        self.authority = f"{host}:{port}".encode("latin-1")
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout, self.pool_timeout = connect_timeout, pool_timeout
        self._max = max_connections
        self._idle: list[_Connection] = []  # the most recently used last
        self._busy = 0  # slots taken, of max_connections
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def request(self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]],
                      body: bytes, *, timeout: float) -> Answer:
        """Send one request (``target``: path and query, as sent) and return its answer.

        ``headers`` are sent as given after ``host``; ``content-length`` is added for a
        body or a method that carries one."""
        request = self._encode(method, target, headers, body)
        await self._take_slot()
        try:
            connection, reused = await self._connection()
            try:
                answer = await connection.exchange(request, head_only=method == "HEAD",
                                                   timeout=timeout)
            except ClosedBeforeAnswer as exc:
                exc.reused = reused
                raise
            except BaseException:
                connection.close()
                raise
            self._keep(connection)
            return answer
        finally:
            self._give_slot()

    def try_send(self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]],
                 body: bytes, *, timeout: float, then: Then) -> bool:
        """``request`` without waiting, when a slot and a kept-alive connection are free
        now: the outcome goes to ``then(answer, None)`` or ``then(None, error)``, called
        from the connection's own callbacks. False, and nothing sent, otherwise."""
        if self._closed or self._busy >= self._max or self._waiters:
            return False
        request = self._encode(method, target, headers, body)
        connection = self._idle_connection()
        if connection is None:
            return False
        self._busy += 1
        try:
            connection.start(request, head_only=method == "HEAD", timeout=timeout,
                             waiter=_Callback(self, connection, then))
        except BaseException:
            connection.close()
            self._give_slot()
            raise
        return True

    def _encode(self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]],
                body: bytes) -> bytes:
        head = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode("latin-1"),
                                                    target.encode("latin-1"), self.authority)]
        head.extend(b"%s: %s\r\n" % pair for pair in headers)
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"\r\n")
        return b"".join(head) + body

    async def _take_slot(self) -> None:
        """One of the ``max_connections`` slots, waiting up to ``pool_timeout``, first
        come first served."""
        if self._busy < self._max and not self._waiters:
            self._busy += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.pool_timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give_slot()  # handed over just as the wait ended: pass it on
            elif waiter in self._waiters:  # (a release may have dropped it already)
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise NotSent(f"no connection free within {self.pool_timeout:g} s") from None
            raise

    def _give_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the longest waiting
                return
        self._busy -= 1

    def _keep(self, connection: _Connection) -> None:
        """A connection whose exchange is over, kept for the next request if it can be."""
        if self._closed:
            connection.close()
        elif not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)

    def _idle_connection(self) -> _Connection | None:
        """The most recently used kept-alive connection that is still good."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive_expiry:
                return connection
            connection.close()
        return None

    async def _connection(self) -> tuple[_Connection, bool]:
        """A kept-alive connection that is still good, else a new one."""
        connection = self._idle_connection()
        if connection is not None:
            return connection, True
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        last: Exception | None = None
        for _attempt in range(2):  # once more: a worker restarting may refuse for a moment
            try:
                async with asyncio.timeout(self.connect_timeout):
                    # In a context of its own: a connection's callbacks run in the context
                    # it was opened in, and it outlives the request that opened it.
                    _, protocol = await loop.create_task(loop.create_connection(
                        _Connection, self.host, self.port, ssl=self.ssl,
                        server_hostname=self.host if self.ssl else None),
                        context=contextvars.Context())
                return protocol
            except TimeoutError:
                raise NotSent(f"no connection within {self.connect_timeout:g} s") from None
            except OSError as exc:
                last = exc
        raise NotSent(f"cannot connect: {last!r}")

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
