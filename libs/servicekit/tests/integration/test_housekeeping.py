"""Purging past retention: sent outbox rows, inbox rows and Idempotency-Key records go,
unsent rows, recent rows and the audit trail stay (PostgreSQL, and SQLite for ``run``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlmodel import Session

from servicekit import audit
from servicekit.housekeeping import Retention, purge
from servicekit.idempotency import IDEMPOTENCY
from servicekit.inbox import INBOX
from servicekit.outbox import OUTBOX

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RETENTION = Retention(outbox_days=7, inbox_days=120, idempotency_days=7)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def outbox_row(i: int, created: datetime, sent: datetime | None) -> dict:
    return {"event_id": f"ev-{i}", "event_type": "t", "topic": "x.events.v1", "key": "k",
            "value": "{}", "headers": {}, "created_at": created, "sent_at": sent,
            "attempts": 0}


def seed(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(OUTBOX), [
            outbox_row(1, days_ago(30), days_ago(30)),   # sent long ago: purged
            outbox_row(2, days_ago(30), None),           # never sent: kept, however old
            outbox_row(3, days_ago(8), days_ago(6)),     # sent 6 days ago: kept
            outbox_row(4, days_ago(9), days_ago(8)),     # sent 8 days ago: purged
        ])
        conn.execute(insert(INBOX), [
            {"consumer": "c", "event_id": "old", "event_type": "t",
             "processed_at": days_ago(121)},
            {"consumer": "c", "event_id": "within", "event_type": "t",
             "processed_at": days_ago(100)},
        ])
        conn.execute(insert(IDEMPOTENCY), [
            {"principal": "u", "route": "POST /x", "key": key, "request_hash": "h",
             "status_code": 201, "body": "{}", "created_at": at}
            for key, at in (("old", days_ago(8)), ("recent", days_ago(1)))
        ])
    with Session(engine) as session:  # the audit trail is never purged
        audit.append(session, aggregate_type="thing", aggregate_id="t-1",
                     actor=audit.Actor(id="u", role="admin"), action="create",
                     at=days_ago(400))
        session.commit()


def left(engine: Engine) -> dict[str, list]:
    with engine.connect() as conn:
        return {
            "outbox": conn.execute(select(OUTBOX.c.event_id).order_by(OUTBOX.c.id))
            .scalars().all(),
            "inbox": conn.execute(select(INBOX.c.event_id)).scalars().all(),
            "keys": conn.execute(select(IDEMPOTENCY.c.key)).scalars().all(),
            "audit": conn.execute(select(func.count()).select_from(audit.AUDIT))
            .scalar_one(),
        }


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request):
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("kit_engine")
    return request.getfixturevalue("sqlite_kit_engine")


def test_only_what_is_past_retention_goes(engine):
    seed(engine)

    deleted = purge(engine, NOW, RETENTION)

    assert deleted == {"outbox": 2, "processed_events": 1, "idempotency_keys": 1}
    assert left(engine) == {"outbox": ["ev-2", "ev-3"], "inbox": ["within"],
                            "keys": ["recent"], "audit": 1}
    assert purge(engine, NOW, RETENTION) == {"outbox": 0, "processed_events": 0,
                                             "idempotency_keys": 0}


def test_a_backlog_goes_in_batches(engine):
    with engine.begin() as conn:
        conn.execute(insert(OUTBOX), [outbox_row(i, days_ago(60), days_ago(59 - i / 10))
                                      for i in range(23)])

    deleted = purge(engine, NOW, RETENTION, batch=5)

    assert deleted["outbox"] == 23
    assert left(engine)["outbox"] == []


def test_a_running_service_purges_in_the_background(sqlite_kit_engine, tmp_path):
    from fastapi.testclient import TestClient

    from servicekit.clock import FixedClock
    from servicekit.service import create_service_app
    from servicekit.settings import ServiceSettings

    seed(sqlite_kit_engine)
    settings = ServiceSettings(database_url=str(sqlite_kit_engine.url),
                               dev_key_dir=tmp_path / "keys", housekeeping_seconds=0.05,
                               idempotency_retention_days=7)
    app = create_service_app(settings, title="t", description="d", clock=FixedClock(NOW))

    with TestClient(app):
        deadline = time.monotonic() + 10
        while left(sqlite_kit_engine)["keys"] != ["recent"] and time.monotonic() < deadline:
            time.sleep(0.05)

    assert left(sqlite_kit_engine) == {"outbox": ["ev-2", "ev-3"], "inbox": ["within"],
                                       "keys": ["recent"], "audit": 1}
