"""The gateway's upstream client (``gateway.upstream.Pool``) against a real HTTP/1.1 server
on 127.0.0.1 that answers as each test scripts it, and counts the connections it accepts."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.upstream import BrokenAnswer, NotSent, Pool

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n" \
     b'{"ok":true}'

# (the request line) -> the bytes to answer with; None closes the connection unanswered.
Script = Callable[[str], bytes | None]


class Server:
    def __init__(self, script: Script, delay: float = 0.0) -> None:
        self.script, self.delay = script, delay
        self.connections = 0
        self.requests: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := (await reader.readline()).decode().strip():
                length = 0
                while header := (await reader.readline()).strip():
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests.append(line)
                await asyncio.sleep(self.delay)
                answer = self.script(line)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(script: Script, delay: float = 0.0) -> AsyncIterator[Server]:
    server = Server(script, delay)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server


def pool(server: Server, **settings: float) -> Pool:
    options = {"max_connections": 4, "keepalive_expiry": 4.0, "connect_timeout": 1.0,
               "pool_timeout": 1.0, **settings}
    return Pool("127.0.0.1", server.port, **options)  # type: ignore[arg-type]


async def test_requests_one_after_another_share_one_connection() -> None:
    async with serving(lambda _: OK) as server:
        upstream = pool(server)
        first = await upstream.request("GET", "/a", [], b"", timeout=5)
        second = await upstream.request("POST", "/b?x=1", [(b"x-id", b"7")], b'{"a":1}',
                                        timeout=5)
        await upstream.aclose()
    assert (first.status, first.body, second.body) == (200, b'{"ok":true}', b'{"ok":true}')
    assert (b"content-type", b"application/json") in first.headers
    assert server.requests == ["GET /a HTTP/1.1", "POST /b?x=1 HTTP/1.1"]
    assert server.connections == 1


async def test_a_connection_idle_past_its_expiry_is_not_used_again() -> None:
    async with serving(lambda _: OK) as server:
        upstream = pool(server, keepalive_expiry=0.05)
        await upstream.request("GET", "/a", [], b"", timeout=5)
        await asyncio.sleep(0.1)
        await upstream.request("GET", "/b", [], b"", timeout=5)
        await upstream.aclose()
    assert server.connections == 2


async def test_an_answer_saying_connection_close_leaves_no_connection_to_reuse() -> None:
    closing = OK.replace(b"content-length", b"connection: close\r\ncontent-length")
    async with serving(lambda _: closing) as server:
        upstream = pool(server)
        answers = [await upstream.request("GET", f"/{i}", [], b"", timeout=5)
                   for i in range(2)]
        await upstream.aclose()
    assert [a.status for a in answers] == [200, 200]
    assert server.connections == 2


async def test_a_chunked_answer_arrives_whole() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    async with serving(lambda _: chunked) as server:
        upstream = pool(server)
        answer = await upstream.request("GET", "/a", [], b"", timeout=5)
        again = await upstream.request("GET", "/a", [], b"", timeout=5)
        await upstream.aclose()
    assert answer.body == again.body == b"hello world"
    assert server.connections == 1


async def test_an_answer_to_head_ends_with_its_headers() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"
    async with serving(lambda line: head if line.startswith("HEAD") else OK) as server:
        upstream = pool(server)
        answer = await upstream.request("HEAD", "/a", [], b"", timeout=1)
        after = await upstream.request("GET", "/a", [], b"", timeout=1)
        await upstream.aclose()
    assert (answer.status, answer.body) == (200, b"")
    assert (b"content-length", b"1234") in answer.headers
    assert after.body == b'{"ok":true}'
    assert server.connections == 1


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_interim_answers_are_dropped_and_the_final_one_returned(method: str) -> None:
    hints = (b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
             b"HTTP/1.1 100 Continue\r\n\r\n")
    head_only = OK[:OK.index(b"\r\n\r\n") + 4]
    async with serving(lambda line: hints + (head_only if line.startswith("HEAD") else OK),
                       ) as server:
        upstream = pool(server)
        answer = await upstream.request(method, "/a", [], b"", timeout=1)
        again = await upstream.request("GET", "/a", [], b"", timeout=1)
        await upstream.aclose()
    assert answer.status == 200
    assert answer.body == (b"" if method == "HEAD" else b'{"ok":true}')
    assert [name for name, _ in answer.headers] == [b"content-type", b"content-length"]
    assert (again.status, again.body) == (200, b'{"ok":true}')
    assert server.connections == 1


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                                  b"HTTP/1.1 204 No Content\r\n\r\n",
                                  b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n"])
async def test_an_empty_answer_to_head_keeps_its_connection(head: bytes) -> None:
    async with serving(lambda line: head if line.startswith("HEAD") else OK) as server:
        upstream = pool(server)
        answer = await upstream.request("HEAD", "/a", [], b"", timeout=1)
        after = await upstream.request("GET", "/a", [], b"", timeout=1)
        await upstream.aclose()
    assert (answer.body, after.body) == (b"", b'{"ok":true}')
    assert server.connections == 1


async def test_a_connection_does_not_carry_the_context_of_the_request_that_opened_it(
) -> None:
    """Its callbacks run later for other requests: they must not see the first's span."""
    seen = contextvars.ContextVar("seen", default="none")
    async with serving(lambda _: OK) as server:
        upstream = pool(server)

        async def first() -> None:
            seen.set("the request that opened the connection")
            await upstream.request("GET", "/x", [], b"", timeout=1)

        await asyncio.create_task(first())
        later: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        assert upstream.try_send("GET", "/y", [], b"", timeout=1,
                                 then=lambda answer, error: later.set_result(seen.get()))
        assert await later == "none"
        await upstream.aclose()
    assert server.connections == 1


async def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
    async with serving(lambda _: until_close) as server:
        upstream = pool(server)
        answer = await upstream.request("GET", "/a", [], b"", timeout=5)
        await upstream.aclose()
    assert answer.body == b"all of it"


async def test_an_answer_cut_off_mid_body_is_broken() -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nonly this"
    async with serving(lambda _: cut) as server:
        upstream = pool(server)
        with pytest.raises(BrokenAnswer):
            await upstream.request("GET", "/a", [], b"", timeout=5)
        await upstream.aclose()


async def test_with_every_connection_busy_a_request_waits_then_is_not_sent() -> None:
    async with serving(lambda _: OK, delay=0.5) as server:
        upstream = pool(server, max_connections=1, pool_timeout=0.1)
        first = asyncio.create_task(upstream.request("GET", "/slow", [], b"", timeout=5))
        await asyncio.sleep(0.05)
        with pytest.raises(NotSent):
            await upstream.request("GET", "/waiting", [], b"", timeout=5)
        assert (await first).status == 200
        await upstream.aclose()
    assert server.requests == ["GET /slow HTTP/1.1"]
