"""Keep the real ``gateway`` package importable in this folder's tests.

Under ``--import-mode=importlib`` pytest names test modules after their path from the
rootdir (``gateway.tests.unit.test_proxy``) and, to import them, registers the
repository's ``gateway/`` folder as a namespace package called ``gateway``, shadowing
the installed package (``gateway/src/gateway``). This conftest is imported first, so it
puts the real package back; ``gateway.tests`` stays registered for the test modules.
"""

import importlib
import sys

_shadow = sys.modules.get("gateway")
if _shadow is not None and getattr(_shadow, "__file__", None) is None:
    del sys.modules["gateway"]
    _real = importlib.import_module("gateway")
    _real.tests = sys.modules["gateway.tests"]  # type: ignore[attr-defined]


# Fixtures every gateway test may use (defined after the package fix-up above).
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, BinaryIO  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from servicekit.devtokens import DevIssuer  # noqa: E402

Bearer = Callable[..., dict[str, str]]


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """The dev key pair the gateway under test (dev profile) verifies with."""
    return tmp_path / "keys"


@pytest.fixture
def bearer(key_dir: Path) -> Bearer:
    """``bearer("researcher", sub=..., org=...)``: an Authorization header with a valid
    token of those roles."""
    issuer = DevIssuer(key_dir)

    def make(*roles: str, sub: str = "user-1", org: str = "org-1") -> dict[str, str]:
        token = issuer.issue(sub, name=sub, org=org, roles=list(roles))
        return {"Authorization": f"Bearer {token}"}

    return make


# The two ways a proxied request takes through the gateway: the ASGI app (the embedded
# runner, tests' TestClient) and the gateway's own server protocol (gateway.server:
# make stack and the image). Tests of what a caller sees run on both.
WAYS = ["asgi", "protocol"]


@contextmanager
def served(app: Any, base_url: str = "http://testserver",
           keep_alive_seconds: float = 5) -> Iterator[httpx.Client]:
    """``app`` served by uvicorn with the gateway's protocol on a loopback port, in a
    thread; a client of it whose ``Host`` is ``base_url``'s, as a TestClient's."""
    import uvicorn

    from gateway.server import GatewayProtocol

    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=GatewayProtocol,
                            proxy_headers=False, access_log=False, lifespan="on",
                            log_level="warning", timeout_keep_alive=keep_alive_seconds)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    host = httpx.URL(base_url).host
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"host": host},
                          timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(20)


def read_request(rfile: BinaryIO) -> tuple[str, bytes] | None:
    """The next request a test's upstream reads (a ``socketserver`` handler's ``rfile``):
    its request line and its body, by its Content-Length; None once the gateway closed
    the connection."""
    line = rfile.readline().decode("latin-1").strip()
    if not line:
        return None
    length = 0
    while header := rfile.readline().strip():
        name, _, value = header.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return line, rfile.read(length)


def open_gateway(app: Any, way: str, base_url: str = "http://testserver") -> Any:
    """A client of ``app`` the ``way`` named (a context manager): in-process or served."""
    if way == "asgi":
        return TestClient(app, base_url=base_url)
    return served(app, base_url)


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> str:
    """Each of the two ways through the gateway (``open_gateway``)."""
    return str(request.param)


@pytest.fixture
def access_lines(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """The gateway's access lines from here on: ``access_lines()`` flushes and parses them."""
    import io
    import json

    from gateway.access import ACCESS_LOG

    ACCESS_LOG.flush()
    stream = io.StringIO()
    monkeypatch.setattr(ACCESS_LOG, "stream", stream)

    def read() -> list[dict[str, Any]]:
        ACCESS_LOG.flush()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    return read
