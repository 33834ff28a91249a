"""The benches' load generator: a callback-based HTTP/1.1 client on uvloop, in-process.

``drive(target, connections, seconds)`` opens ``connections`` keep-alive connections to
the target's port and sends its requests back to back on each (no per-request
coroutine: a few tens of microseconds a request, so that little comes off the cores
the servers run on; no httpx, whose 1–3 ms a request would). An answer counts when it
has the target's status (and, when the target names one, its body length); any other
is counted by kind in ``Load.errors``, the first of each status printed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from income import out


@dataclass(frozen=True)
class Target:
    """One measured request: where it goes, how to build it, the answer it must get."""

    name: str
    port: int
    build: Callable[[int], bytes]  # connection index -> the next request's bytes
    status: int
    length: int = 0  # when set, the body length every answer must have


def get_request(port: int, path: str, token: str | None) -> Callable[[int], bytes]:
    """The same GET on every connection, with a bearer token when one is given."""
    head = [f"GET {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    if token:
        head.append(f"authorization: Bearer {token}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode()
    return lambda _conn: raw


@dataclass
class Load:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # answers counted
    errors: dict[str, int] = field(default_factory=dict)
    helpers_cpu: float = 0.0  # CPU seconds of processes the load ran in besides this one

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


class _Connection(asyncio.Protocol):
    """Sends its target's requests back to back on one keep-alive connection."""

    def __init__(self, target: Target, index: int, load: Load, stop_at: float,
                 done: asyncio.Future[None]) -> None:
        self.target, self.index = target, index
        self.load, self.stop_at, self.done = load, stop_at, done
        self.buffer = b""
        self.need = 0  # the response's whole length, once its head is in
        self.status = self.body_length = 0
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                      socket.TCP_NODELAY, 1)
        self._send()

    def _send(self) -> None:
        request = self.target.build(self.index)
        self.t0 = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def _error(self, key: str) -> None:
        self.load.errors[key] = self.load.errors.get(key, 0) + 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.need:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self._error("no content-length")
                self._finish()
                return
            stop = head.find(b"\r\n", at + 2)
            self.body_length = int(head[at + 17:stop if stop > 0 else len(head)])
            self.need = end + 4 + self.body_length
        if len(self.buffer) < self.need:
            return
        now = time.perf_counter()
        if self.status != self.target.status:
            key = f"HTTP {self.status}"
            if key not in self.load.errors:
                out(f"  {self.target.name}: unexpected {self.buffer[:self.need][-300:]!r}")
            self._error(key)
        elif self.target.length and self.body_length != self.target.length:
            self._error("another body")
        else:
            self.load.latencies.append(now - self.t0)
        self.buffer, self.need = self.buffer[self.need:], 0
        if now < self.stop_at:
            self._send()
        else:
            self._finish()

    def _finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self._error("connection lost")
            self.done.set_result(None)


async def _drive(target: Target, connections: int, seconds: float) -> Load:
    loop = asyncio.get_running_loop()
    load = Load()
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    dones = []
    for i in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(
            lambda i=i, d=done: _Connection(target, i, load, stop_at, d),
            "127.0.0.1", target.port)
        dones.append(done)
    await asyncio.gather(*dones)
    load.seconds = time.perf_counter() - t0
    return load


def drive(target: Target, connections: int, seconds: float) -> Load:
    """``connections`` connections sending ``target``'s requests for ``seconds``."""
    import uvloop

    return uvloop.run(_drive(target, connections, seconds))


@dataclass
class Phase:
    """One measured phase (a target at one concurrency, or the floor): its rounds,
    pooled, and the CPU seconds each component used while it ran."""

    name: str
    target: Target | None = None
    rounds: list[Load] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.rounds)

    @property
    def requests(self) -> int:
        return sum(len(r.latencies) for r in self.rounds)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def latencies(self) -> list[float]:
        return [x for r in self.rounds for x in r.latencies]

    @property
    def errors(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for r in self.rounds:
            for k, v in r.errors.items():
                merged[k] = merged.get(k, 0) + v
        return merged

    def per_request_us(self, component: str) -> float:
        return self.cpu[component] / self.requests * 1e6 if self.requests else float("nan")
