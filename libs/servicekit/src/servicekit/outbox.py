"""Transactional outbox and its relay.

A handler stages events with :func:`stage` in its business transaction; the relay
publishes committed rows in ``id`` order (so per aggregate, since the aggregate id is the
Kafka key) and marks them sent only after the broker acknowledged them. A relay killed
between the ack and the mark republishes the same bytes, same CloudEvent ``id``, and
consumers deduplicate by that id.

On PostgreSQL one relay per service is active: it holds ``pg_try_advisory_lock`` on a
dedicated connection; a standby retries and takes over when the holder's connection
dies. ``FOR UPDATE SKIP LOCKED`` alone would let two relays publish one aggregate's rows
out of order.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import JSON, Column, Connection, Engine, Index, Text, func, insert, select, update
from sqlmodel import Field, Session, SQLModel

from servicekit.bus import Bus
from servicekit.clock import Clock, SystemClock
from servicekit.cloudevent import Envelope, to_kafka
from servicekit.db import is_sqlite
from servicekit.types import BigIntPK, UtcDateTime

log = logging.getLogger(__name__)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unsent", "id", postgresql_where="sent_at IS NULL",
              sqlite_where="sent_at IS NULL"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntPK, primary_key=True,
                                                          autoincrement=True))
    event_id: str = Field(max_length=64, unique=True)
    event_type: str = Field(max_length=200)
    topic: str = Field(max_length=200)
    key: str = Field(max_length=200)
    value: str = Field(sa_column=Column(Text, nullable=False))
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


OUTBOX = OutboxMessage.__table__


def stage(session: Session, event: CloudEvent, *, topic: str, now: datetime) -> None:
    """Write ``event`` to the outbox in the caller's transaction (keyed by its subject)."""
    key = str(event.get_subject())
    envelope = to_kafka(event, topic, key)
    session.execute(
        insert(OUTBOX).values(
            event_id=event.get_id(),
            event_type=event.get_type(),
            topic=topic,
            key=key,
            value=envelope.value.decode(),
            headers={k: v.decode() for k, v in envelope.headers},
            created_at=now,
            attempts=0,
        )
    )


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``outbox:<name>``."""
    digest = hashlib.sha256(f"outbox:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class OutboxRelay:
    """Publishes committed outbox rows; run it as a thread with :meth:`start`."""

    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        *,
        name: str,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        clock: Clock | None = None,
        after_ack: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.name = name
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.clock = clock or SystemClock()
        self._after_ack = after_ack  # test seam: called between the ack and the mark
        self._lock_key = advisory_key(name)
        self._lock_conn: Connection | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- leadership -------------------------------------------------------------
    def is_leader(self) -> bool:
        if is_sqlite(self.engine):
            return True  # the embedded default runs one process
        if self._lock_conn is not None:
            try:
                self._lock_conn.exec_driver_sql("SELECT 1")
                return True
            except Exception:
                log.warning("outbox relay %s lost its lock connection", self.name, exc_info=True)
                self._release()
        conn = self.engine.connect()
        got = conn.execute(select(func.pg_try_advisory_lock(self._lock_key))).scalar()
        conn.commit()
        if got:
            self._lock_conn = conn
            log.info("outbox relay %s is active", self.name)
            return True
        conn.invalidate()
        conn.close()
        return False

    def _release(self) -> None:
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            try:
                # Invalidate, not close: a pooled connection would keep the session (and
                # the lock) alive; ending the database session releases it.
                conn.invalidate()
                conn.close()
            except Exception:
                log.debug("closing relay lock connection failed", exc_info=True)

    # --- publishing ---------------------------------------------------------------
    def publish_pending(self) -> int:
        """Publish one batch of unsent rows in order; returns how many were acked."""
        if not self.is_leader():
            return 0
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.key, OUTBOX.c.value,
                       OUTBOX.c.headers)
                .where(OUTBOX.c.sent_at.is_(None))
                .order_by(OUTBOX.c.id)
                .limit(self.batch_size)
            ).all()
            conn.rollback()
        if not rows:
            return 0
        results = self.bus.publish([_envelope(r) for r in rows])
        # Mark only the acknowledged prefix: after the first failure every later row is
        # published again (same CloudEvent id), so no aggregate's later event is marked
        # sent while an earlier one is still pending.
        first_failure = next((i for i, err in enumerate(results) if err is not None), None)
        acked = [r.id for r in rows[:first_failure]]
        failed = [(rows[first_failure].id, results[first_failure])] \
            if first_failure is not None else []
        if self._after_ack is not None:
            self._after_ack(acked)
        with self.engine.begin() as conn:
            if acked:
                conn.execute(
                    update(OUTBOX).where(OUTBOX.c.id.in_(acked)).values(sent_at=self.clock.now())
                )
            for row_id, err in failed:
                conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == row_id)
                    .values(attempts=OUTBOX.c.attempts + 1, last_error=repr(err)[:2000])
                )
        if failed:
            log.error("outbox relay %s: %d of %d messages not acked; will retry",
                      self.name, len(failed), len(rows))
        return len(acked)

    def wake(self) -> None:
        self._wake.set()

    # --- thread -------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"outbox-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                published = self.publish_pending()
            except Exception:
                log.exception("outbox relay %s failed; retrying", self.name)
                self._release()
                published = 0
            if published < self.batch_size:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()


def _envelope(row: Any) -> Envelope:
    return Envelope(
        topic=row.topic,
        key=row.key,
        value=row.value.encode(),
        headers=tuple((k, v.encode()) for k, v in (row.headers or {}).items()),
    )
