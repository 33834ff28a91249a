"""The gateway's own server protocol (``gateway.server``) on a real socket: what HTTP/1.1
asks of a server beyond one request and one answer, and its failures.

The answers themselves (routing, headers, problems, the auth matrix) are tested on both
ways through the gateway by the other modules (``way`` in ``conftest``).
"""

from __future__ import annotations

import socket
import socketserver
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.testing import in_thread
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.tests.conftest import Bearer, read_request, served


class Upstream:
    """A service that answers every request 200 with its method and path, after
    ``delay`` seconds (a thread of its own, so the gateway's loop is not held)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        self.bodies.append(request.content)
        return httpx.Response(200 if request.method != "POST" else 201,
                              json={"answered": f"{request.method} {request.url.path}"})


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def address(key_dir: Path, upstream: Upstream) -> Iterator[tuple[str, int]]:
    """The gateway served with its protocol in front of ``upstream``: host and port."""
    mock = httpx.MockTransport(upstream)
    settings = GatewaySettings(dev_key_dir=key_dir, max_body_bytes=1024)
    app = create_app(settings, transports={"grants": mock, "sandbox": mock, "ipshare": mock})
    with served(app) as client:
        url = client.base_url
        yield str(url.host), int(url.port or 80)


def exchange(address: tuple[str, int], raw: bytes, answers: int,
             half_close: bool = False) -> list[bytes]:
    """Send ``raw`` on one connection; the ``answers`` answers read back, each whole."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_answers(sock, answers)


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    buffer, answers = b"", []
    while len(answers) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buffer[:head_end].decode("latin-1").lower()
            length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                           if line.startswith("content-length:")), 0)
            if head.startswith("http/1.1 100"):
                length = 0
            if len(buffer) >= head_end + 4 + length:
                answers.append(buffer[:head_end + 4 + length])
                buffer = buffer[head_end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    return answers


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: api.most.test", *headers]
    if body or method == "POST":
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_kept_alive_connection_carries_proxied_and_own_requests_in_turn(
    address: tuple[str, int], upstream: Upstream
) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        for path in ("/grants/v1/calls", "/health", "/grants/v1/calls?status=open",
                     "/grants/v1/calls/c-1", "/health"):
            sock.sendall(request("GET", path))
            [answer] = read_answers(sock, 1)
            assert status(answer) == 200, answer
            assert b"x-request-id: " in answer.lower()
    assert upstream.seen == ["GET /v1/calls", "GET /v1/calls", "GET /v1/calls/c-1"]


def test_pipelined_requests_are_answered_in_the_order_they_were_sent(
    address: tuple[str, int], bearer: Bearer
) -> None:
    auth = "authorization: " + bearer("program_manager")["Authorization"]
    raw = (request("GET", "/grants/v1/calls/first", "x-request-id: r-1")
           + request("GET", "/health", "x-request-id: r-2")
           + request("POST", "/grants/v1/calls", auth, "x-request-id: r-3", body=b"{}")
           + request("GET", "/grants/v1/calls/last", "x-request-id: r-4"))
    answers = exchange(address, raw, 4)
    assert [status(a) for a in answers] == [200, 200, 201, 200]
    assert [a.lower().split(b"x-request-id: ")[1][:3] for a in answers] == [
        b"r-1", b"r-2", b"r-3", b"r-4"]
    assert b"/v1/calls/first" in answers[0] and b"/v1/calls/last" in answers[3]


def test_expect_100_continue_is_answered_once_the_request_is_admitted(
    address: tuple[str, int], bearer: Bearer, upstream: Upstream
) -> None:
    auth = "authorization: " + bearer("program_manager")["Authorization"]
    head = request("POST", "/grants/v1/calls", auth, "expect: 100-continue",
                   "content-length: 2")[:-2] + b"\r\n"  # the head alone
    head = head.replace(b"content-length: 0\r\n", b"")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head)
        [interim] = read_answers(sock, 1)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"{}")
        [answer] = read_answers(sock, 1)
    assert status(answer) == 201
    assert upstream.bodies == [b"{}"]


def test_a_refused_request_expecting_100_continue_gets_its_refusal_and_no_go_ahead(
    address: tuple[str, int], upstream: Upstream
) -> None:
    raw = request("POST", "/grants/v1/calls", "expect: 100-continue", "content-length: 2")
    raw = raw.replace(b"content-length: 0\r\n", b"")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw)
        [answer] = read_answers(sock, 1)
    assert status(answer) == 401
    assert b"connection: close" in answer  # its body, unread, cannot pass for a request
    assert upstream.seen == []


def test_trailer_fields_of_a_chunked_body_are_not_taken_for_request_headers(
    address: tuple[str, int], bearer: Bearer, upstream: Upstream
) -> None:
    auth = bearer("program_manager")["Authorization"]
    raw = (request("POST", "/grants/v1/calls", "transfer-encoding: chunked")
           .replace(b"content-length: 0\r\n", b"")
           + b"2\r\n{}\r\n0\r\nauthorization: " + auth.encode()
           + b"\r\nx-request-id: from-a-trailer\r\n\r\n")
    [answer] = exchange(address, raw, 1)
    assert status(answer) == 401
    assert b"from-a-trailer" not in answer
    assert upstream.seen == []


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
def test_a_body_past_the_limit_is_413_and_the_connection_closed(
    address: tuple[str, int], bearer: Bearer, upstream: Upstream, declared: bool
) -> None:
    auth = "authorization: " + bearer("program_manager")["Authorization"]
    body = b"x" * 4000
    if declared:
        raw = request("POST", "/grants/v1/calls", auth, body=body)
    else:
        chunks = b"".join(b"%x\r\n%s\r\n" % (500, body[i:i + 500])
                          for i in range(0, len(body), 500))
        raw = (request("POST", "/grants/v1/calls", auth, "transfer-encoding: chunked")
               .replace(b"content-length: 0\r\n", b"") + chunks + b"0\r\n\r\n")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw)
        [answer] = read_answers(sock, 1)
        assert sock.recv(1) == b""  # closed: the rest of the body is not read
    assert status(answer) == 413
    assert b"application/problem+json" in answer and b"connection: close" in answer
    assert upstream.seen == []


def test_a_request_the_parser_cannot_read_is_400_problem_json_with_a_request_id(
    address: tuple[str, int],
) -> None:
    [answer] = exchange(address, b"FOO /grants/v1/calls HTTP/1.1\r\nhost: x\r\n\r\n", 1)
    assert status(answer) == 400
    head = answer.lower()
    assert b"content-type: application/problem+json" in head
    assert b"x-request-id: " in head and b"connection: close" in head


def test_a_client_gone_before_its_body_arrives_reaches_no_service_and_is_logged_499(
    address: tuple[str, int], bearer: Bearer, upstream: Upstream,
    access_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    auth = "authorization: " + bearer("program_manager")["Authorization"]
    head = request("POST", "/grants/v1/calls", auth, "x-request-id: gone-1",
                   body=b"x" * 100)[:-90]  # the head, and 10 bytes of the 100 declared
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head)
    deadline = time.monotonic() + 5
    while not (gone := [line for line in access_lines() if line["request_id"] == "gone-1"]):
        assert time.monotonic() < deadline, "no access line for the request"
        time.sleep(0.02)
    [answer] = exchange(address, request("GET", "/grants/v1/calls"), 1)  # still serving
    assert (gone[0]["status"], gone[0]["route"]) == (499, "/grants/v1/calls")
    assert status(answer) == 200
    assert upstream.seen == ["GET /v1/calls"]


def test_a_request_is_timed_from_its_headers_not_from_its_last_body_byte(
    address: tuple[str, int], bearer: Bearer,
    access_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    auth = "authorization: " + bearer("program_manager")["Authorization"]
    raw = request("POST", "/grants/v1/calls", auth, "x-request-id: slow-body-1",
                  body=b"x" * 100)
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw[:-50])
        time.sleep(0.3)  # the client takes its time over the body
        sock.sendall(raw[-50:])
        [answer] = read_answers(sock, 1)
    assert status(answer) == 201
    deadline = time.monotonic() + 5
    while not (line := [x for x in access_lines() if x["request_id"] == "slow-body-1"]):
        assert time.monotonic() < deadline, "no access line for the request"
        time.sleep(0.02)
    assert line[0]["latency_ms"] >= 300  # as nginx's $request_time: from the first bytes


def test_a_subject_past_its_rate_limit_is_429_on_this_way_too(
    key_dir: Path, upstream: Upstream, bearer: Bearer
) -> None:
    settings = GatewaySettings(dev_key_dir=key_dir, rate_limit_read_per_subject="2/minute")
    mock = httpx.MockTransport(upstream)
    with served(create_app(settings, transports={"grants": mock})) as client:
        answers = [client.get("/grants/v1/calls", headers=bearer("auditor", sub="a-1"))
                   for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["content-type"] == "application/problem+json"
    assert int(answers[2].headers["retry-after"]) >= 1
    assert len(upstream.seen) == 2


class _Echo(socketserver.StreamRequestHandler):
    """Answers each request on a kept-alive connection with its method, path and body;
    ``/slow`` after 2 s."""

    def handle(self) -> None:
        while (request := read_request(self.rfile)) is not None:
            line, body = request
            method, path, _ = line.split(" ")
            if path.endswith("/slow"):
                time.sleep(2.0)
            answer = b"%s %s %s" % (method.encode(), path.encode(), body)
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
            except OSError:
                return  # the gateway gave up on it


def echo_server() -> socketserver.ThreadingTCPServer:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    return server


@pytest.fixture
def echo(key_dir: Path) -> Iterator[httpx.Client]:
    """The gateway served with its protocol in front of a real keep-alive upstream, so
    that requests after the first go out on the pool's kept-alive connections."""
    with in_thread(echo_server()) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = GatewaySettings(dev_key_dir=key_dir, grants_url=url,
                                   upstream_timeout_seconds=0.5)
        with served(create_app(settings)) as client:
            yield client


def test_requests_on_kept_alive_upstream_connections_get_their_own_answers(
    echo: httpx.Client, bearer: Bearer
) -> None:
    auth = bearer("program_manager")
    answers = [echo.get(f"/grants/v1/calls/c-{i}?n={i}") for i in range(20)]
    posted = echo.post("/grants/v1/calls", content=b'{"n": 1}', headers=auth)
    head = echo.head("/grants/v1/calls/c-1")
    assert [a.text for a in answers] == [f"GET /v1/calls/c-{i}?n={i} " for i in range(20)]
    assert (posted.status_code, posted.text) == (200, 'POST /v1/calls {"n": 1}')
    assert (head.status_code, head.content, head.headers["content-length"]) == (
        200, b"", str(len("HEAD /v1/calls/c-1 ")))


def test_a_slow_answer_on_a_kept_alive_connection_is_504_and_the_next_is_served(
    echo: httpx.Client,
) -> None:
    assert echo.get("/grants/v1/calls/warm").status_code == 200
    started = time.monotonic()
    slow = echo.get("/grants/v1/calls/slow")
    elapsed = time.monotonic() - started
    after = echo.get("/grants/v1/calls/after")
    assert slow.status_code == 504 and slow.json()["upstream"] == "grants"
    assert elapsed < 1.5
    assert (after.status_code, after.text) == (200, "GET /v1/calls/after ")


def test_a_request_pipelined_behind_a_refusal_is_not_cut_off_by_the_idle_timer(
    key_dir: Path,
) -> None:
    with in_thread(echo_server()) as server:
        settings = GatewaySettings(dev_key_dir=key_dir,
                                   grants_url=f"http://127.0.0.1:{server.server_address[1]}")
        with served(create_app(settings), keep_alive_seconds=1) as client:
            address = (str(client.base_url.host), int(client.base_url.port or 80))
            raw = (request("GET", "/grants/v1/no-such-thing")
                   + request("GET", "/grants/v1/calls/slow"))  # 2 s, past the idle 1 s
            answers = exchange(address, raw, 2)
    assert [status(a) for a in answers] == [404, 200]
    assert answers[1].endswith(b"GET /v1/calls/slow ")
