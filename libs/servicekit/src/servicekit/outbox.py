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

Waking: a commit wakes its own process's relay. With several processes (uvicorn
workers) the active relay also LISTENs on its lock connection, and a standby that was
woken by its process's commits passes that on with ``pg_notify`` (from its own thread,
at most every ``NOTIFY_INTERVAL_S``), so an event committed in any process is published
within milliseconds instead of at the next poll.

Failing: when publishing fails (the broker down, a send not acknowledged, a flush that
does not end), the relay tries again with exponential backoff up to
``retry_max_seconds``, and the Kafka bus replaces its producer. How long the oldest
unsent row has waited (:meth:`OutboxRelay.oldest_unsent_age`) is what ``/ready`` and
``/metrics`` report.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select as select_module
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Index,
    Text,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlmodel import Field, Session, SQLModel
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

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
_STAGE = insert(OUTBOX)  # built once: every command that emits runs it
# The relay's statements, built once too (it runs them on every batch).
_PENDING = (
    select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.key, OUTBOX.c.value, OUTBOX.c.headers)
    .where(OUTBOX.c.sent_at.is_(None))
    .order_by(OUTBOX.c.id)
    .limit(bindparam("batch_size"))
)
_MARK_SENT = (update(OUTBOX).where(OUTBOX.c.id.in_(bindparam("acked", expanding=True)))
              .values(sent_at=bindparam("sent_at")))
_MARK_FAILED = (update(OUTBOX).where(OUTBOX.c.id == bindparam("failed_id"))
                .values(attempts=OUTBOX.c.attempts + 1, last_error=bindparam("error")))
_OLDEST_UNSENT = (select(OUTBOX.c.created_at).where(OUTBOX.c.sent_at.is_(None))
                  .order_by(OUTBOX.c.id).limit(1))


def stage(session: Session, event: CloudEvent, *, topic: str, now: datetime) -> None:
    """Write ``event`` to the outbox in the caller's transaction (keyed by its subject)."""
    session.execute(_STAGE, staged(event, topic=topic, now=now))


def staged(event: CloudEvent, *, topic: str, now: datetime) -> dict[str, Any]:
    """The ``outbox`` row :func:`stage` writes for ``event``."""
    key = str(event.get_subject())
    envelope = to_kafka(event, topic, key)
    return {
        "event_id": event.get_id(),
        "event_type": event.get_type(),
        "topic": topic,
        "key": key,
        "value": envelope.value.decode(),
        "headers": {k: v.decode() for k, v in envelope.headers},
        "created_at": now,
        "attempts": 0,
    }


NOTIFY_INTERVAL_S = 0.02  # a standby forwards its process's wake-ups at most this often
RETRY_INITIAL_SECONDS = 0.5  # the first wait after a failed batch; doubled per failure
RETRY_MAX_SECONDS = 30.0


class NotAcknowledged(Exception):
    """The broker did not acknowledge a message of the batch (the relay tries again)."""


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
        linger_seconds: float = 0.0,
        clock: Clock | None = None,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        after_ack: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.name = name
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        # After a wake-up, wait this long before reading the outbox, so that the commits
        # that follow the first one go out in the same batch: fewer, larger produce
        # requests under load, at the cost of this much latency.
        self.linger_seconds = linger_seconds
        self.clock = clock or SystemClock()
        self.retry_max_seconds = retry_max_seconds
        self._after_ack = after_ack  # test seam: called between the ack and the mark
        self._lock_key = advisory_key(name)
        self._channel = f"outbox:{name}"
        self._sqlite = is_sqlite(engine)
        self._try_lock = select(func.pg_try_advisory_lock(self._lock_key))
        # The same attempt, also waking the active relay. pg_notify gives the transaction
        # an xid; committing it need not wait for a WAL flush (a wake-up is worthless
        # after a crash anyway).
        self._try_lock_and_notify = self._try_lock.add_columns(
            func.set_config("synchronous_commit", "off", True),
            func.pg_notify(self._channel, ""))
        self._lock_conn: Connection | None = None
        self._listening: Any = None  # the psycopg connection LISTENing, when active
        self._wake = threading.Event()
        # Wake-ups by this process's commits, and how many had been counted at the last
        # notify: a standby forwards them when the two differ (no lock needed).
        self._local_wakes = 0
        self._forwarded_wakes = 0
        self._pipe: tuple[int, int] | None = None  # wakes the thread out of select()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- leadership -------------------------------------------------------------
    def is_leader(self) -> bool:
        if self._sqlite:
            return True  # the embedded default runs one process
        if self._lock_conn is not None:
            try:
                self._lock_conn.exec_driver_sql("SELECT 1")
                self._lock_conn.rollback()
                return True
            except Exception:
                log.warning("outbox relay %s lost its lock connection", self.name, exc_info=True)
                self._release()
        return self._acquire()

    def _acquire(self, notify: bool = False) -> bool:
        """Try to take the lock; ``notify``: also wake the active relay (same round trip)."""
        conn = self.engine.connect()
        try:
            got = conn.execute(self._try_lock_and_notify if notify else self._try_lock).scalar()
            conn.commit()
            if got:
                self._listen(conn)
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if got:
            self._lock_conn = conn
            log.info("outbox relay %s is active", self.name)
            return True
        # Not acquired, so this session holds nothing: back to the pool with it (dropping
        # it would make the next request pay for a new database session, twice a second).
        conn.close()
        return False

    def _listen(self, conn: Connection) -> None:
        """LISTEN for the standbys' wake-ups on the lock connection (psycopg only)."""
        driver = conn.connection.driver_connection
        if conn.dialect.driver != "psycopg" or driver is None:
            return
        from psycopg import sql  # PostgreSQL only

        conn.exec_driver_sql(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
                             .as_string(driver))
        conn.commit()
        # Notifications read while the relay runs its own statements arrive here.
        driver.add_notify_handler(lambda _notify: self._poke())
        self._listening = driver

    def _release(self) -> None:
        self._listening = None
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
        return self._publish_pending()[0]

    def _publish_pending(self) -> tuple[int, BaseException | None]:
        """One batch: how many rows were acked, and the first failure (if any)."""
        if self._sqlite:
            with self.engine.connect() as conn:
                return self._publish(conn)
        if self._lock_conn is None and not self._acquire():
            return 0, None
        # The active relay reads and marks on the connection that holds its lock: no pool
        # checkout (and ping) per batch, and a failing statement is how a lost lock
        # connection shows (the lock went with it).
        conn = self._lock_conn
        assert conn is not None
        try:
            return self._publish(conn)
        except Exception:
            self._release()  # whatever broke, start again from a fresh lock connection
            raise

    def _publish(self, conn: Connection) -> tuple[int, BaseException | None]:
        rows = conn.execute(_PENDING, {"batch_size": self.batch_size}).all()
        conn.rollback()
        if not rows:
            return 0, None
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
        try:
            if acked:
                conn.execute(_MARK_SENT, {"acked": acked, "sent_at": self.clock.now()})
            for row_id, err in failed:
                conn.execute(_MARK_FAILED, {"failed_id": row_id, "error": repr(err)[:2000]})
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        return len(acked), failed[0][1] if failed else None

    def oldest_unsent_age(self) -> float:
        """Seconds since the oldest unsent row was staged (0 when none waits); raises
        when the database does not answer."""
        with self.engine.connect() as conn:
            created_at = conn.execute(_OLDEST_UNSENT).scalar()
        if created_at is None:
            return 0.0
        return max(0.0, (self.clock.now() - created_at).total_seconds())

    def wake(self) -> None:
        """A commit in this process staged events."""
        self._local_wakes += 1
        self._poke()

    def _poke(self) -> None:
        self._wake.set()
        pipe = self._pipe
        if pipe is not None:
            with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
                os.write(pipe[1], b"\0")

    # --- thread -------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        if self._pipe is None:
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            os.set_blocking(write_end, False)
            self._pipe = (read_end, write_end)
        self._thread = threading.Thread(target=self._run, name=f"outbox-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._release()
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            for fd in pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _run(self) -> None:
        # A failed round is tried again after 0.5 s, 1 s, 2 s ... up to retry_max_seconds
        # (with jitter), sooner only when stopping; a round that succeeds starts afresh.
        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(multiplier=RETRY_INITIAL_SECONDS,
                                         max=self.retry_max_seconds,
                                         jitter=RETRY_INITIAL_SECONDS),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._stop.wait,
            before_sleep=self._log_retry,
            retry_error_callback=lambda _state: None,  # stopping: no further attempt
        )
        while not self._stop.is_set():
            published = retrying(self._round)
            if published is not None and published < self.batch_size:
                self._wait(self.poll_seconds)
                if self.linger_seconds > 0:
                    self._stop.wait(self.linger_seconds)

    def _round(self) -> int | None:
        """Take the lock unless active, then publish one batch: how many rows were acked,
        or None for a standby (which has waited for its next turn). Raises when the batch
        was not published whole."""
        if self._stop.is_set():
            return 0
        if self._lock_conn is None and not self._sqlite:
            # Not active: try the lock, and tell the active relay (in another process)
            # about this process's commits in the same round trip.
            wakes = self._local_wakes
            notify = wakes != self._forwarded_wakes
            self._forwarded_wakes = wakes
            if not self._acquire(notify=notify):
                if notify:  # the active relay lingers anyway: no use telling it sooner
                    self._stop.wait(max(NOTIFY_INTERVAL_S, self.linger_seconds))
                self._wait(self.poll_seconds)
                return None
        published, failure = self._publish_pending()
        if failure is not None:
            raise NotAcknowledged(f"{published} acked, then {failure!r}") from failure
        return published

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        # The traceback once per run of failures; then one line per attempt.
        log.error("outbox relay %s: attempt %d failed (%r); next in %.1f s", self.name,
                  state.attempt_number, error, delay,
                  exc_info=error if state.attempt_number == 1 else None)

    def _wait(self, timeout: float) -> None:
        """Until woken (a local commit, a standby's notify, stop) or ``timeout``."""
        pipe = self._pipe
        if pipe is None:  # pragma: no cover - not started
            self._wake.wait(timeout)
            self._wake.clear()
            return
        try:
            if not self._wake.is_set():
                sources = [pipe[0]]
                if self._listening is not None:
                    sources.append(self._listening.pgconn.socket)
                select_module.select(sources, [], [], timeout)
            self._wake.clear()
            with contextlib.suppress(BlockingIOError):
                while os.read(pipe[0], 4096):
                    pass
            if self._listening is not None:
                self._listening.pgconn.consume_input()
                while self._listening.pgconn.notifies() is not None:
                    pass  # any notification just means: look again
        except Exception:
            log.warning("outbox relay %s lost its lock connection", self.name, exc_info=True)
            self._release()
            self._stop.wait(min(timeout, 0.1))


def _envelope(row: Any) -> Envelope:
    return Envelope(
        topic=row.topic,
        key=row.key,
        value=row.value.encode(),
        headers=tuple((k, v.encode()) for k, v in (row.headers or {}).items()),
    )
