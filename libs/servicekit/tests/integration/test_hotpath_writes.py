"""The hot path's queued rows, written in one statement (PostgreSQL, pipelined) or
statement by statement (SQLite, in a worker thread): the same rows, values, defaults, id
order and errors as plain INSERTs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from servicekit import audit, cloudevent, idempotency, outbox
from servicekit.clock import as_utc
from servicekit.hotpath.pipeline import PipelinedConnection, open_pool
from servicekit.hotpath.statements import Queued, is_psycopg
from servicekit.hotpath.threaded import ThreadedConnection

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 23, 9, 30, 0, 123456, tzinfo=UTC)
ACTOR = audit.Actor("u-1", "finance", "MOF")


def audit_row(aggregate_id: str, seq: int, prev: str | None, data: dict) -> dict:
    values = dict(aggregate_type="distribution", aggregate_id=aggregate_id, seq=seq,
                  actor=ACTOR.id, role=ACTOR.role, org=ACTOR.org, action="post", at=NOW,
                  from_status=None, to_status="posted", reason="Lý do: thử",
                  data=data, prev_hash=prev)
    values["hash"] = audit._record_hash(audit._Row(values))
    return values


def outbox_row(subject: str, n: int) -> dict:
    event = cloudevent.build(service="test", type_="vn.gov.most.test.thing.v1",
                             subject=subject, data={"n": n, "amount_vnd": 10**15 + n},
                             time=NOW)
    return outbox.staged(event, topic="t", now=NOW)


def idempotency_row(key: str) -> dict:
    claim = idempotency.IdempotencyClaim(route="POST /x", key=key, request_hash="h")
    return idempotency.record("u-1", claim, idempotency.StoredResponse(201, {"ok": True}), NOW)


def queued() -> list:
    events = [outbox_row("a-1", 1), outbox_row("a-1", 2), outbox_row("a-1", 3)]
    first = audit_row("d-1", 1, None, {"gross_vnd": 1_000_000_007, "note": "đồng"})
    second = audit_row("d-1", 2, first["hash"], {"k": [1, 2]})
    return [
        (outbox.OUTBOX, events[:2]),
        (audit.AUDIT, [first]),
        (idempotency.IDEMPOTENCY, [idempotency_row("k-1")]),
        (outbox.OUTBOX, events[2:]),
        (audit.AUDIT, [second]),
    ]


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, kit_engine, sqlite_kit_engine) -> Engine:
    return kit_engine if request.param == "postgresql" else sqlite_kit_engine


def write_rows(engine: Engine, rows: Queued) -> None:
    """Commit ``rows`` as a hot command that read nothing would."""
    async def write() -> None:
        pool = None
        if is_psycopg(engine.dialect):
            pool = await open_pool(engine, size=1, timeout=5, name="test")
            link = PipelinedConnection(pool, engine.dialect)
        else:
            link = ThreadedConnection(engine)
        try:
            await link.commit(rows)
        finally:
            await link.close()
            if pool is not None:
                await pool.close()
    asyncio.run(write())


def test_rows_land_with_their_values_defaults_and_order(engine):
    rows = queued()
    write_rows(engine, rows)
    staged = rows[0][1] + rows[3][1]

    with engine.connect() as conn:
        events = conn.execute(select(outbox.OUTBOX).order_by(outbox.OUTBOX.c.id)).all()
        trail = conn.execute(select(audit.AUDIT).order_by(audit.AUDIT.c.seq)).all()
        stored = conn.execute(select(idempotency.IDEMPOTENCY)).one()
    # a table's generated ids follow the order its rows were queued in
    assert [cloudevent.decode(e.value.encode()).get_data()["n"] for e in events] == [1, 2, 3]
    assert [(e.event_id, e.key, e.value, e.headers, as_utc(e.created_at)) for e in events] == [
        (s["event_id"], s["key"], s["value"], s["headers"], NOW) for s in staged]
    assert [(e.attempts, e.sent_at) for e in events] == [(0, None)] * 3  # defaults
    assert [(r.seq, r.data, r.reason, as_utc(r.at)) for r in trail] == [
        (1, {"gross_vnd": 1_000_000_007, "note": "đồng"}, "Lý do: thử", NOW),
        (2, {"k": [1, 2]}, "Lý do: thử", NOW),
    ]
    assert stored.body == '{"ok":true}' and stored.status_code == 201
    with Session(engine) as session:
        assert audit.verify(session).ok


def test_a_violation_surfaces_as_integrity_error_and_writes_nothing(engine):
    write_rows(engine, [(idempotency.IDEMPOTENCY, [idempotency_row("taken")])])

    with pytest.raises(IntegrityError):
        write_rows(engine, [(outbox.OUTBOX, [outbox_row("a-2", 1)]),
                            (idempotency.IDEMPOTENCY, [idempotency_row("taken")])])

    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox.OUTBOX)).scalar() == 0
