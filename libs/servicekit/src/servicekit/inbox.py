"""Idempotent consumers: the inbox of processed event ids and the consumer loop.

Each event's effect and its ``processed_events(consumer, event_id)`` row commit in one
transaction; the Kafka offset is committed only after that. A redelivered event (after
a crash between the two commits, or a producer's republish) finds its row and is a
no-op. Events that cannot be parsed, or whose handler keeps failing, go to a dead-letter
topic instead of blocking the partition or being dropped. A database that does not answer
is not the event's fault: the event is left uncommitted and delivered again once the
consumer resubscribes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from cloudevents.core.v1.event import CloudEvent
from opentelemetry import trace
from opentelemetry.propagate import extract
from sqlalchemy import Column, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Field, Session, SQLModel

from servicekit.bus import Bus, Delivery, Subscription
from servicekit.clock import Clock, SystemClock
from servicekit.cloudevent import Envelope, decode
from servicekit.types import UtcDateTime

log = logging.getLogger(__name__)
tracer = trace.get_tracer("servicekit.inbox")

Handler = Callable[[Session, CloudEvent], None]


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_events"

    consumer: str = Field(primary_key=True, max_length=100)
    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=200)
    processed_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


INBOX = ProcessedEvent.__table__


def already_processed(session: Session, consumer: str, event_id: str) -> bool:
    return (
        session.execute(
            select(INBOX.c.event_id).where(
                INBOX.c.consumer == consumer, INBOX.c.event_id == event_id
            )
        ).first()
        is not None
    )


class EventConsumer:
    """Consumes topics as one consumer group and applies handlers exactly once."""

    def __init__(
        self,
        *,
        name: str,
        bus: Bus,
        topics: Sequence[str],
        group_id: str,
        sessions: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        dead_letter_topic: str | None = None,
        max_attempts: int = 3,
        clock: Clock | None = None,
        after_db_commit: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.name = name
        self.bus = bus
        self.topics = list(topics)
        self.group_id = group_id
        self.sessions = sessions
        self.handlers = dict(handlers)
        self.dead_letter_topic = dead_letter_topic
        self.max_attempts = max_attempts
        self.clock = clock or SystemClock()
        self._after_db_commit = after_db_commit  # test seam: crash before offset commit
        self._subscription: Subscription | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def subscription(self) -> Subscription:
        if self._subscription is None:
            self._subscription = self.bus.subscribe(self.topics, self.group_id,
                                                    cancel=self._stop)
        return self._subscription

    def run_once(self, timeout: float = 1.0) -> int:
        """Poll once and process what arrived; returns the number of effects applied."""
        applied = 0
        for delivery in self.subscription.poll(timeout):
            if self.process(delivery):
                applied += 1
            self.subscription.commit(delivery)
        return applied

    def process(self, delivery: Delivery) -> bool:
        """Apply one delivery; True when it had an effect, False for duplicates/skips."""
        try:
            event = decode(delivery.value)
        except Exception as exc:  # noqa: BLE001 - any unparsable message is dead-lettered
            self._dead_letter(delivery, f"not a CloudEvent: {exc}")
            return False
        handler = self.handlers.get(event.get_type())
        if handler is None:
            return False
        carrier = {"traceparent": str(event.get_extension("traceparent") or "")}
        with tracer.start_as_current_span(
            f"consume {event.get_type()}", context=extract(carrier),
            kind=trace.SpanKind.CONSUMER,
        ):
            applied = self._apply(delivery, event, handler)
        if applied and self._after_db_commit is not None:
            self._after_db_commit(delivery)
        return applied

    def _apply(self, delivery: Delivery, event: CloudEvent, handler: Handler) -> bool:
        outage: OperationalError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self.sessions() as session, session.begin():
                    if already_processed(session, self.name, event.get_id()):
                        return False
                    session.execute(
                        insert(INBOX).values(
                            consumer=self.name,
                            event_id=event.get_id(),
                            event_type=event.get_type(),
                            processed_at=self.clock.now(),
                        )
                    )
                    handler(session, event)
                return True
            except IntegrityError:
                with self.sessions() as session:
                    if already_processed(session, self.name, event.get_id()):
                        return False  # a concurrent consumer applied it first
                log.exception("consumer %s: integrity error on %s", self.name, event.get_id())
                outage = None
            except OperationalError as exc:
                log.warning("consumer %s: database unreachable on %s (attempt %d/%d): %s",
                            self.name, event.get_id(), attempt, self.max_attempts, exc)
                outage = exc
            except Exception:
                outage = None
                log.exception(
                    "consumer %s: handler failed on %s (attempt %d/%d)",
                    self.name, event.get_id(), attempt, self.max_attempts,
                )
            time.sleep(min(0.1 * 2**attempt, 2.0))
        if outage is not None:
            raise outage  # uncommitted: delivered again once the database answers
        self._dead_letter(delivery, f"handler failed {self.max_attempts} times")
        return False

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        log.error("consumer %s: dead-lettering %s@%d: %s",
                  self.name, delivery.topic, delivery.offset, reason)
        if self.dead_letter_topic is None:
            raise RuntimeError(f"no dead-letter topic for consumer {self.name}: {reason}")
        errors = self.bus.publish(
            [
                Envelope(
                    topic=self.dead_letter_topic,
                    key=delivery.key or "",
                    value=delivery.value,
                    headers=(*delivery.headers, ("x-dead-letter-reason", reason.encode()),
                             ("x-original-topic", delivery.topic.encode())),
                )
            ]
        )
        if errors[0] is not None:
            raise RuntimeError(f"dead-letter publish failed: {errors[0]!r}")

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"consumer-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                # Its subscription is not thread-safe: the thread closes it on its way out.
                log.warning("consumer %s did not stop within %s s", self.name, timeout)
                return
        self._close_subscription()

    def _close_subscription(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            subscription.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.run_once(timeout=0.5)
                except Exception:
                    log.exception("consumer %s failed; resubscribing", self.name)
                    self._close_subscription()
                    self._stop.wait(1.0)
        finally:
            # A subscription set up while stop() was giving up on this thread is closed
            # here, not left running its network thread after the service stopped.
            self._close_subscription()
