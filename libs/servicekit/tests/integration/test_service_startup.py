"""A service whose start-up fails releases what it had already started: no relay or
consumer thread left running, no database session left open (PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from devkit.testing import wait_for
from servicekit.inbox import EventConsumer
from servicekit.kit import ConsumerSpec
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings

pytestmark = pytest.mark.postgres

STARTUP_DEADLINE_S = 15.0


def sessions_of_others(engine: Engine) -> int:
    """Database sessions on the engine's database other than the one asking."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()


def start_up(app: FastAPI) -> BaseException | None:
    """Start the app and stop it again: the error its start-up failed with, if any.
    A start-up that leaves the hot path's pool open never ends (its event loop waits
    for the pool's tasks), so the test waits a bounded time on a thread of its own."""
    outcome: Future[BaseException | None] = Future()

    def run() -> None:
        try:
            with TestClient(app):
                pass
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcome.set_result(exc)
        else:
            outcome.set_result(None)

    threading.Thread(target=run, name="start-up", daemon=True).start()
    try:
        return outcome.result(timeout=STARTUP_DEADLINE_S)
    except FutureTimeout:
        pytest.fail(f"the failed start-up did not end within {STARTUP_DEADLINE_S} s")


def test_a_start_up_that_fails_halfway_stops_the_relay_and_closes_its_connections(
    kit_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = kit_engine.url.render_as_string(hide_password=False)
    settings = ServiceSettings(service_name="startup", database_url=url,
                               dev_key_dir=tmp_path / "keys", relay_poll_seconds=0.05)
    spec = ConsumerSpec(name="calls", topics=["grants.events.v1"], handlers={})
    app = create_service_app(settings, title="svc", description="test", consumers=[spec])

    def no_thread(_consumer: EventConsumer) -> None:
        raise RuntimeError("can't start new thread")  # a process out of threads

    monkeypatch.setattr(EventConsumer, "start", no_thread)
    failed = start_up(app)

    assert isinstance(failed, RuntimeError) and "can't start new thread" in str(failed)

    # What started before the consumer (the relay's thread, the hot path's pool, the
    # relay's lock session) was released, as at a shutdown.
    assert not [t.name for t in threading.enumerate() if t.name.endswith("-startup")]
    assert app.state.kit.pipeline_pool is None
    assert wait_for(lambda: sessions_of_others(kit_engine) == 0, 5), \
        sessions_of_others(kit_engine)
