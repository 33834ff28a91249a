"""A service's ``/ready`` answers within its bound whatever its database does: ``503``
naming the database while the server is stopped (it accepts connections and answers
nothing), ``200`` again once it answers."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from devkit.localservers import PostgresServer
from devkit.testing import wait_for
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings

pytestmark = pytest.mark.postgres

READY_TIMEOUT_S = 1.0
# What the test waits for one answer before it calls the probe hung.
HUNG_AFTER_S = READY_TIMEOUT_S + 4.0


def test_ready_answers_503_naming_the_database_in_bounded_time_while_it_is_stopped(
    restartable_postgres: PostgresServer, restartable_kit_url: str, tmp_path: Path
) -> None:
    settings = ServiceSettings(database_url=restartable_kit_url, dev_key_dir=tmp_path / "keys",
                               ready_timeout_seconds=READY_TIMEOUT_S)
    app = create_service_app(settings, title="svc", description="test", background=False)
    with TestClient(app) as client, ThreadPoolExecutor(4) as pool:
        assert client.get("/ready").status_code == 200

        def timed() -> tuple[float, httpx.Response | None]:
            started = time.monotonic()
            try:
                response = pool.submit(client.get, "/ready").result(timeout=HUNG_AFTER_S)
            except FutureTimeout:
                response = None  # answered once the server continues, after the block
            return time.monotonic() - started, response

        with restartable_postgres.paused():
            answers = [timed() for _ in range(3)]
            # One blocked ping however often it is probed, not one thread per probe.
            pinging = [t for t in threading.enumerate() if t.name == "ready-database"]

        assert [r.status_code if r else "no answer" for _, r in answers] == [503] * 3
        slowest = max(seconds for seconds, _ in answers)
        assert slowest < READY_TIMEOUT_S + 0.5, slowest
        for _, response in answers:
            assert response is not None
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["checks"]["database"] == "unreachable: no answer within 1 s"
        assert len(pinging) == 1
        assert wait_for(lambda: client.get("/ready").status_code == 200, 10)
