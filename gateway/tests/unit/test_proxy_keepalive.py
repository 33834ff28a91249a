"""The proxy's retry of a request sent on a kept-alive connection the upstream closed.

The upstream is a real HTTP/1.1 server on 127.0.0.1 (so the gateway's own pooled
``httpx`` transport is under test) that answers the first request on a connection and
keeps the connection open, then closes it, unanswered, when the next request arrives on
it, with a FIN (httpx raises ``RemoteProtocolError``) or a reset (``ReadError``). That
is what the gateway sees when uvicorn closes a kept-alive connection (after a 500, or at
its keep-alive timeout) just as the gateway sends on it.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devkit.testing import in_thread
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.tests.conftest import Bearer, open_gateway, read_request


class StaleAfter(socketserver.ThreadingTCPServer):
    """Answers ``answers`` requests per connection, then drops it when the next arrives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answers: int, reset: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.reset = reset
        self.received: list[str] = []  # "METHOD /path" of every request, answered or not

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(socketserver.StreamRequestHandler):
    server: StaleAfter

    def handle(self) -> None:
        for answered in range(self.server.answers + 1):
            request = read_request(self.rfile)
            if request is None:  # the gateway closed the connection
                return
            method, path, _ = request[0].split(" ")
            self.server.received.append(f"{method} {path}")
            if answered == self.server.answers:  # closed without a response
                if self.server.reset:
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()
                return
            body = json.dumps({"answered": f"{method} {path}"}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))


@contextmanager
def serving(answers: int, reset: bool = False) -> Iterator[StaleAfter]:
    with in_thread(StaleAfter(answers, reset)) as server:
        yield server


@pytest.fixture(params=["fin", "reset"])
def stale(request: pytest.FixtureRequest) -> Iterator[StaleAfter]:
    with serving(answers=1, reset=request.param == "reset") as server:
        yield server


@pytest.fixture
def client(tmp_path: Path, stale: StaleAfter, way: str) -> Iterator[TestClient]:
    settings = GatewaySettings(dev_key_dir=tmp_path / "keys", grants_url=stale.url)
    with open_gateway(create_app(settings), way) as client:
        first = client.get("/grants/v1/calls/first")
        assert first.status_code == 200  # and leaves a kept-alive connection
        yield client


def test_get_on_a_connection_the_upstream_closed_is_sent_again_and_answered(
    client: TestClient, stale: StaleAfter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.proxy"):
        response = client.get("/grants/v1/calls")
    assert response.status_code == 200, response.text
    assert response.json() == {"answered": "GET /v1/calls"}
    assert stale.received == ["GET /v1/calls/first", "GET /v1/calls", "GET /v1/calls"]
    assert "upstream grants closed a kept-alive connection" in caplog.text


def test_post_without_idempotency_key_is_not_sent_again(
    client: TestClient, stale: StaleAfter, bearer: Bearer
) -> None:
    response = client.post("/grants/v1/calls", json={"title": "x"},
                           headers=bearer("program_manager"))
    assert response.status_code == 502
    assert response.json()["upstream"] == "grants"
    assert stale.received == ["GET /v1/calls/first", "POST /v1/calls"]


def test_post_with_idempotency_key_is_sent_again_once(
    client: TestClient, stale: StaleAfter, bearer: Bearer
) -> None:
    response = client.post("/grants/v1/calls", json={"title": "x"},
                           headers={"Idempotency-Key": "k-1", **bearer("program_manager")})
    assert response.status_code == 200, response.text
    assert response.json() == {"answered": "POST /v1/calls"}
    assert stale.received == ["GET /v1/calls/first", "POST /v1/calls", "POST /v1/calls"]


def test_a_new_connection_dropped_unanswered_is_not_retried(tmp_path: Path,
                                                           way: str) -> None:
    with serving(answers=0) as never:
        settings = GatewaySettings(dev_key_dir=tmp_path / "keys", grants_url=never.url)
        with open_gateway(create_app(settings), way) as client:
            response = client.get("/grants/v1/calls")
        assert response.status_code == 502
        assert never.received == ["GET /v1/calls"]
