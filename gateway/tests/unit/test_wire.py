"""Hostile bytes on the wire, at the gateway's own HTTP/1.1 protocol: request smuggling,
malformed framing and heads past the limits are refused before anything reaches a
service, each as problem+json on a closed connection, and the gateway serves on."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devkit.testing import in_thread
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.tests.conftest import read_request, served


class _Recorder(socketserver.StreamRequestHandler):
    """The service: records each request line it gets and answers 200."""

    seen: list[str] = []

    def handle(self) -> None:
        while (request := read_request(self.rfile)) is not None:
            self.seen.append(request[0])
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


@pytest.fixture
def gateway(key_dir: Path) -> Iterator[tuple[httpx.Client, list[str]]]:
    """The gateway on its protocol in front of a recording service; what it received."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    with in_thread(server):
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = GatewaySettings(dev_key_dir=key_dir, grants_url=url,
                                   max_header_bytes=16_384, max_header_fields=50)
        with served(create_app(settings)) as client:
            yield client, seen


def send(client: httpx.Client, raw: bytes) -> bytes:
    """``raw`` on a connection of its own; all that comes back until the gateway closes
    it (or 3 s pass)."""
    received = b""
    with socket.create_connection(("127.0.0.1", client.base_url.port), timeout=3) as sock:
        with contextlib.suppress(OSError):  # refused before it was all sent: read on
            sock.sendall(raw)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def refusal(answer: bytes) -> tuple[int, dict[str, object]]:
    """The status and problem of an answer that closed its connection."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert "content-type: application/problem+json" in lines, answer[:300]
    assert "connection: close" in lines
    assert any(line.startswith("x-request-id: ") for line in lines)
    return int(lines[0].split(" ")[1]), json.loads(body)


SMUGGLE = b"0\r\n\r\nGET /grants/v1/calls/smuggled HTTP/1.1\r\nhost: x\r\n\r\n"
POST = b"POST /grants/v1/calls HTTP/1.1\r\nhost: x\r\n"

UNREADABLE = {
    "content-length and chunked": POST + b"content-length: 4\r\n"
                                         b"transfer-encoding: chunked\r\n\r\n" + SMUGGLE,
    "chunked and content-length": POST + b"transfer-encoding: chunked\r\n"
                                         b"content-length: 40\r\n\r\n" + SMUGGLE,
    "two content-lengths": POST + b"content-length: 4\r\ncontent-length: 40\r\n\r\nabcd",
    "a signed content-length": POST + b"content-length: +4\r\n\r\nabcd",
    "a content-length past 64 bits": POST + b"content-length: 99999999999999999999999\r\n\r\n",
    "a chunk size that is not hex": POST + b"transfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    "an unknown transfer coding": POST + b"transfer-encoding: xchunked\r\n\r\n" + SMUGGLE,
    "a folded header line": b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\nx-a: a\r\n b\r\n\r\n",
    "a NUL in a header value": b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n",
    "bare line feeds": b"GET /grants/v1/calls HTTP/1.1\nhost: x\n\n",
    "a bare carriage return": b"GET /grants/v1/calls HTTP/1.1\rhost: x\r\n\r\n",
    "a space in a field name": b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\nx a: b\r\n\r\n",
    "raw bytes in the path": b"GET /grants/v1/calls/\xff HTTP/1.1\r\nhost: x\r\n\r\n",
    "a lower-case method": b"get /grants/v1/calls HTTP/1.1\r\nhost: x\r\n\r\n",
    "CONNECT": b"CONNECT evil.example:443 HTTP/1.1\r\nhost: evil.example:443\r\n\r\n",
}


@pytest.mark.parametrize("raw", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_request_framed_ambiguously_or_malformed_is_400_and_reaches_no_service(
    gateway: tuple[httpx.Client, list[str]], raw: bytes,
) -> None:
    client, seen = gateway
    status, problem = refusal(send(client, raw))
    assert (status, problem["status"]) == (400, 400)
    assert seen == []  # nothing reached the service, nothing smuggled past the edge
    assert client.get("/grants/v1/calls").status_code == 200  # the gateway serves on
    assert seen == ["GET /v1/calls HTTP/1.1"]


REFUSED_HEADS = {
    "no Host": (b"GET /grants/v1/calls HTTP/1.1\r\n\r\n", 400, "exactly one Host"),
    "two Hosts": (b"GET /grants/v1/calls HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", 400,
                  "exactly one Host"),
    "HTTP/0.9": (b"GET /grants/v1/calls\r\n\r\n", 505, "speaks HTTP/1.1"),
    "HTTP/2.0": (b"GET /grants/v1/calls HTTP/2.0\r\nhost: x\r\n\r\n", 505, "speaks HTTP/1.1"),
}


@pytest.mark.parametrize(("raw", "expected", "reason"), REFUSED_HEADS.values(),
                         ids=REFUSED_HEADS.keys())
def test_an_http_1_1_request_without_one_host_or_in_another_version_is_refused(
    gateway: tuple[httpx.Client, list[str]], raw: bytes, expected: int, reason: str,
) -> None:
    """Without exactly one Host (RFC 9112, section 3.2), 400; in a version other than
    HTTP/1.1 or 1.0, 505."""
    client, seen = gateway
    status, problem = refusal(send(client, raw))
    assert status == expected and reason in str(problem["detail"])
    assert seen == []


def test_an_http_1_0_request_needs_no_host(gateway: tuple[httpx.Client, list[str]]) -> None:
    client, _ = gateway
    answer = send(client, b"GET /grants/v1/calls HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")


HEADS = {
    "one field past the limit": b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\nx-big: "
                                + b"a" * 1_000_000 + b"\r\n\r\n",
    "a target past the limit": b"GET /grants/v1/calls?" + b"a" * 20_000
                               + b" HTTP/1.1\r\nhost: x\r\n\r\n",
    "fields adding up past the limit": b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\n"
                                       + b"x-pad: " + b"a" * 9_000 + b"\r\n"
                                       + b"x-pad: " + b"a" * 9_000 + b"\r\n\r\n",
    "too many fields": b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\n"
                       + b"".join(b"x-%d: y\r\n" % i for i in range(60)) + b"\r\n",
    "one field that never ends": b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\nx-big: "
                                 + b"a" * 1_000_000,
    "one trailer field that never ends": POST + b"transfer-encoding: chunked\r\n\r\n"
                                         b"2\r\n{}\r\n0\r\nx-big: " + b"a" * 1_000_000,
    "trailer fields past the limit": POST + b"transfer-encoding: chunked\r\n\r\n"
                                     b"2\r\n{}\r\n0\r\n"
                                     + b"".join(b"x-%d: y\r\n" % i for i in range(60))
                                     + b"\r\n",
}


@pytest.mark.parametrize("raw", HEADS.values(), ids=HEADS.keys())
def test_a_head_past_the_limits_is_431_and_reaches_no_service(
    gateway: tuple[httpx.Client, list[str]], raw: bytes,
) -> None:
    client, seen = gateway
    status, problem = refusal(send(client, raw))
    assert (status, problem["title"]) == (431, "Request header fields too large")
    assert "16384 bytes in 50 fields" in str(problem["detail"])
    assert seen == []
    assert client.get("/grants/v1/calls").status_code == 200


def test_a_head_just_within_the_limits_is_served(
    gateway: tuple[httpx.Client, list[str]],
) -> None:
    client, seen = gateway
    pads = {f"x-pad-{i}": "a" * 330 for i in range(44)}  # with httpx's own 5: 49, ~15 kB
    assert client.get("/grants/v1/calls", headers=pads).status_code == 200
    assert seen == ["GET /v1/calls HTTP/1.1"]


UPGRADE = (b"GET /grants/v1/calls HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\n"
           b"upgrade: websocket\r\n")
WEBSOCKET_KEY = b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"


@pytest.mark.parametrize("key", [b"", WEBSOCKET_KEY], ids=["without a key", "with a key"])
def test_an_upgrade_is_an_ordinary_request_answered_on_a_closing_connection(
    gateway: tuple[httpx.Client, list[str]], key: bytes,
) -> None:
    """The gateway speaks no WebSocket: an upgrade request meets the edge as any other,
    its Upgrade is not forwarded, and nothing after it on the connection is read (what
    follows an upgrade's head is not HTTP)."""
    client, seen = gateway
    after = b"GET /grants/v1/calls/after HTTP/1.1\r\nhost: x\r\n\r\n"
    answer = send(client, UPGRADE + key + b"\r\n" + after)
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower().split("\r\n")
    assert head[0].startswith("http/1.1 200 "), answer[:300]
    assert "connection: close" in head
    assert answer.count(b"HTTP/1.1 ") == 1
    assert seen == ["GET /v1/calls HTTP/1.1"]


def test_an_upgrade_to_a_protected_route_meets_the_edge(
    gateway: tuple[httpx.Client, list[str]],
) -> None:
    client, seen = gateway
    status, problem = refusal(send(client, UPGRADE.replace(b"GET", b"POST") + WEBSOCKET_KEY
                                   + b"content-length: 0\r\n\r\n"))
    assert (status, problem["status"]) == (401, 401)
    assert seen == []
