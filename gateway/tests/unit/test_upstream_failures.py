"""How the gateway answers when a service is slow, down or breaks off, and bodies over the
limit: problem+json that names the service and never its address or error."""

from __future__ import annotations

import logging
import socket
import socketserver
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace

from devkit.localservers import free_port
from devkit.testing import in_thread
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.tests.conftest import Bearer, open_gateway, read_request


class Upstream(socketserver.ThreadingTCPServer):
    """A real HTTP/1.1 server on 127.0.0.1 that behaves as told: ``slow`` seconds before a
    200, or ``broken``: half a status line, then the connection is closed."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, slow: float = 0.0, broken: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.slow, self.broken = slow, broken
        self.received: list[str] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(socketserver.StreamRequestHandler):
    server: Upstream

    def handle(self) -> None:
        request = read_request(self.rfile)
        if request is None:
            return
        self.server.received.append(request[0].rsplit(" ", 1)[0])
        if self.server.broken:
            self.wfile.write(b"HTTP/1.1 2")
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        time.sleep(self.server.slow)
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        except OSError:
            return  # the gateway gave up and closed the connection


@contextmanager
def running(**behaviour: object) -> Iterator[Upstream]:
    with in_thread(Upstream(**behaviour)) as server:  # type: ignore[arg-type]
        yield server


def gateway(tmp_path: Path, url: str, way: str, **settings: object) -> TestClient:
    return open_gateway(create_app(GatewaySettings(dev_key_dir=tmp_path / "keys",
                                                   grants_url=url, **settings)), way)


def assert_problem_without_internals(response, status: int, upstream_url: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["upstream"]) == (status, "grants")
    port = upstream_url.rsplit(":", 1)[1]
    for internal in ("127.0.0.1", port, "Timeout", "Error", "httpx"):
        assert internal not in response.text, internal


def test_a_slow_service_is_504_in_the_configured_time_and_a_post_is_sent_once(
    tmp_path: Path, bearer: Bearer, way: str
) -> None:
    with running(slow=3.0) as slow, gateway(tmp_path, slow.url, way,
                                             upstream_timeout_seconds=0.5) as client:
        started = time.monotonic()
        read = client.get("/grants/v1/calls")
        elapsed = time.monotonic() - started
        write = client.post("/grants/v1/calls", json={}, headers=bearer("program_manager"))
    assert_problem_without_internals(read, 504, slow.url)
    assert elapsed < 2.5
    assert_problem_without_internals(write, 504, slow.url)
    assert slow.received == ["GET /v1/calls", "POST /v1/calls"]  # neither sent twice


class TracesOfRecords(logging.Handler):
    """Each record's message with the trace current when it was logged (what the JSON
    log lines' ``trace_id`` is taken from)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        context = trace.get_current_span().get_span_context()
        self.seen.append((record.getMessage(),
                          format(context.trace_id, "032x") if context.is_valid else None))


def test_an_upstream_failure_is_logged_under_the_request_s_trace(
    tmp_path: Path, way: str, access_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    records, logger = TracesOfRecords(), logging.getLogger("gateway.proxy")
    logger.addHandler(records)
    try:
        with running(slow=3.0) as slow, gateway(tmp_path, slow.url, way,
                                                 upstream_timeout_seconds=0.3) as client:
            response = client.get("/grants/v1/calls", headers={"x-request-id": "slow-trace-1"})
    finally:
        logger.removeHandler(records)
    assert response.status_code == 504
    [line] = [x for x in access_lines() if x["request_id"] == "slow-trace-1"]
    assert [t for message, t in records.seen if "timed out" in message] == [line["trace_id"]]


def test_a_dead_service_is_503_with_retry_after(tmp_path: Path, bearer: Bearer,
                                               way: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway(tmp_path, dead, way) as client:
        read = client.get("/grants/v1/calls/c-1")
        write = client.post("/grants/v1/calls", json={}, headers=bearer("program_manager"))
    for response in (read, write):
        assert_problem_without_internals(response, 503, dead)
        assert response.headers["retry-after"] == "5"


def test_a_service_breaking_off_its_answer_is_502_and_a_post_is_not_repeated(
    tmp_path: Path, bearer: Bearer, way: str
) -> None:
    with running(broken=True) as broken, gateway(tmp_path, broken.url, way) as client:
        response = client.post("/grants/v1/calls", json={}, headers=bearer("program_manager"))
    assert_problem_without_internals(response, 502, broken.url)
    assert broken.received == ["POST /v1/calls"]


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_body_over_the_limit_is_413_and_never_reaches_the_service(
    tmp_path: Path, bearer: Bearer, chunked: bool, way: str
) -> None:
    body = b'{"title": "' + b"x" * 70_000 + b'"}'
    content = (body[i:i + 8192] for i in range(0, len(body), 8192)) if chunked else body
    with running() as service, gateway(tmp_path, service.url, way,
                                       max_body_bytes=65_536) as client:
        response = client.post("/grants/v1/calls", content=content,
                               headers={**bearer("program_manager"), "x-request-id": "r-413",
                                        "content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "r-413"  # as on every answer
    assert service.received == []
