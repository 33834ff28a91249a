"""The system as ``make run`` serves it, on a fixed clock, one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from gateway.embedded import create_embedded_app
from servicekit.clock import FixedClock

from .desk import System

START = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # a Monday, 09:00 in Hanoi


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SANDBOX_SCHEDULER_SECONDS", "0")  # the scenario runs it
        # A scenario writes faster than a person: the gateway's rate limits are off.
        for limit in ("READ_PER_SUBJECT", "WRITE_PER_SUBJECT", "READ_PER_ADDRESS",
                      "WRITE_PER_ADDRESS"):
            patch.setenv(f"GATEWAY_RATE_LIMIT_{limit}", "")
        clock = FixedClock(START)
        app = create_embedded_app(tmp_path_factory.mktemp("make-run") / "var", clock=clock)
        with TestClient(app) as client:
            yield System(app, client, clock)
