"""A service's own periodic jobs run on the kit's background thread, with the kit, until
the background stops; a failing run is logged and the next one goes ahead (SQLite)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from servicekit.clock import FixedClock
from servicekit.kit import Kit, PeriodicJob
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def app_with(engine: Engine, tmp_path, *jobs: PeriodicJob):
    settings = ServiceSettings(database_url=str(engine.url), dev_key_dir=tmp_path / "keys",
                               housekeeping_seconds=0)
    return create_service_app(settings, title="t", description="d", clock=FixedClock(NOW),
                              jobs=jobs)


def wait_until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_job_runs_every_interval_with_the_kit_until_the_background_stops(
        sqlite_kit_engine, tmp_path) -> None:
    runs: list[datetime] = []
    failures = threading.Event()

    def tick(kit: Kit) -> None:
        runs.append(kit.clock.now())
        if len(runs) == 1:
            failures.set()
            raise RuntimeError("the first run fails")

    app = app_with(sqlite_kit_engine, tmp_path, PeriodicJob("tick", 0.02, tick))
    with TestClient(app):
        assert wait_until(lambda: len(runs) >= 3)  # the failed first run stopped nothing
    stopped_at = len(runs)
    time.sleep(0.1)
    assert failures.is_set() and runs[0] == NOW
    assert len(runs) <= stopped_at + 1  # at most the run under way when it stopped


def test_a_job_of_zero_seconds_never_runs_and_background_false_runs_none(
        sqlite_kit_engine, tmp_path) -> None:
    runs: list[str] = []
    never = PeriodicJob("never", 0, lambda kit: runs.append("never"))
    left = PeriodicJob("left to the caller", 0.01, lambda kit: runs.append("left"))
    with TestClient(app_with(sqlite_kit_engine, tmp_path, never)):
        time.sleep(0.1)
    settings = ServiceSettings(database_url=str(sqlite_kit_engine.url),
                               dev_key_dir=tmp_path / "keys", housekeeping_seconds=0)
    app = create_service_app(settings, title="t", description="d", jobs=[left],
                             background=False)
    with TestClient(app):
        time.sleep(0.1)
    assert runs == []
    assert [j.name for j in app.state.kit.jobs] == ["left to the caller"]
