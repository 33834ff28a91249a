"""The message bus: one interface, a Kafka implementation and an in-process one.

``publish`` blocks until every envelope is acknowledged (``acks=all`` on Kafka) and
returns one result per envelope, so the outbox relay marks a row sent only after the
broker has it. Subscriptions commit offsets only when told to, after the consumer's
database transaction committed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError
from kafka.structs import OffsetAndMetadata, TopicPartition

from servicekit.cloudevent import Envelope, WithHeaders

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 30.0  # a send not acknowledged by then fails (delivery timeout)
# How long the group waits for a consumer's heartbeat before it hands that consumer's
# partitions to the others (or to its restarted process): kafka-python's default, 45 s,
# would stall a crashed consumer's partitions that long.
SESSION_TIMEOUT_SECONDS = 10.0
FLUSH_MARGIN_SECONDS = 5.0  # how much longer than that a flush may take before it is stuck
CLOSE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Delivery(WithHeaders):
    """A message as a subscriber receives it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Subscription(Protocol):
    def poll(self, timeout: float) -> list[Delivery]: ...
    def commit(self, delivery: Delivery) -> None: ...
    def close(self) -> None: ...


class Bus(Protocol):
    def publish(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]: ...
    def subscribe(self, topics: Sequence[str], group_id: str, *,
                  cancel: threading.Event | None = None) -> Subscription: ...
    def ready(self) -> bool: ...
    def close(self) -> None: ...


class KafkaBus:
    """Kafka through kafka-python: idempotent producer with ``acks=all`` and retries.

    A producer that fails or expires a send, or whose flush does not end in time, is
    closed and the next ``publish`` builds a new one. After an expired send kafka-python
    resets the producer id, and such a producer has been seen never to send again (every
    flush timing out); a new producer starts afresh with a new id. The caller (the outbox
    relay) publishes the unacknowledged envelopes again, with backoff.
    """

    def __init__(self, bootstrap: str, *, client_id: str = "most",
                 delivery_timeout_seconds: float = PUBLISH_TIMEOUT_SECONDS,
                 session_timeout_seconds: float = SESSION_TIMEOUT_SECONDS) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.delivery_timeout_seconds = delivery_timeout_seconds
        self.session_timeout_seconds = session_timeout_seconds
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        # Readiness has a lock of its own: building a producer against a broker that does
        # not answer holds ``_lock`` for up to ``max_block_ms``, longer than a probe waits.
        self._admin_lock = threading.Lock()

    @property
    def producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                delivery_ms = int(self.delivery_timeout_seconds * 1000)
                # Waiting for metadata (and, for a new producer, the first connection)
                # never takes longer than a send may.
                block_ms = min(10_000, delivery_ms)
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id=f"{self.client_id}-producer",
                    acks="all",
                    enable_idempotence=True,
                    retries=2_147_483_647,
                    request_timeout_ms=min(15_000, delivery_ms // 2),
                    delivery_timeout_ms=delivery_ms,
                    linger_ms=2,
                    max_block_ms=block_ms,
                    bootstrap_timeout_ms=block_ms,
                )
            return self._producer

    def publish(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        producer = self.producer
        deadline = time.monotonic() + self.delivery_timeout_seconds + FLUSH_MARGIN_SECONDS
        try:
            futures = [
                producer.send(
                    e.topic, key=e.key.encode(), value=e.value, headers=list(e.headers)
                )
                for e in envelopes
            ]
            producer.flush(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            self._replace(producer, exc)
            raise
        results: list[BaseException | None] = []
        for future in futures:
            try:
                # Done once the flush returned, unless its batch was split to be sent
                # again in parts.
                future.get(timeout=max(0.0, deadline - time.monotonic()))
                results.append(None)
            except Exception as exc:  # noqa: BLE001 - reported per message to the relay
                results.append(exc)
        failure = next((r for r in results if r is not None), None)
        if failure is not None:
            self._replace(producer, failure)
        return results

    def _replace(self, producer: KafkaProducer, cause: BaseException) -> None:
        """Close ``producer``; the next publish builds a new one."""
        with self._lock:
            if self._producer is not producer:
                return  # another thread replaced it already
            self._producer = None
        log.warning("Kafka producer of %s replaced after %r", self.client_id, cause)
        try:
            _close_now(producer)
        except Exception:
            log.exception("closing the replaced Kafka producer of %s failed", self.client_id)

    def subscribe(self, topics: Sequence[str], group_id: str, *,
                  cancel: threading.Event | None = None) -> KafkaSubscription:
        return KafkaSubscription(self.bootstrap, topics, group_id, self.client_id,
                                 cancel=cancel,
                                 session_timeout_seconds=self.session_timeout_seconds)

    def ready(self) -> bool:
        """A real metadata round trip (``bootstrap_connected`` is only true while the
        client is first connecting); raises when the broker does not answer within
        1.5 s (well within the gateway's probe of a service's ``/ready``)."""
        with self._admin_lock:
            admin = self._admin
        if admin is None:  # built outside the lock: concurrent probes do not queue
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-ready",
                request_timeout_ms=1_500, bootstrap_timeout_ms=1_500)
            with self._admin_lock:
                kept, self._admin = self._admin, self._admin or admin
            if kept is not None:
                admin.close()
                admin = kept
        try:
            admin.list_topics()
        except Exception:
            # Its reconnection to a broker that accepts and does not answer would wait
            # kafka-python's 10 s connection set-up; a new client is bounded by 1.5 s.
            with self._admin_lock:
                if self._admin is admin:
                    self._admin = None
            admin.close()
            raise
        return True

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        with self._admin_lock:
            admin, self._admin = self._admin, None
        if producer is not None:
            try:
                producer.close(timeout=CLOSE_TIMEOUT_SECONDS)
            except KafkaTimeoutError:
                log.warning("Kafka producer of %s closed with sends unfinished", self.client_id)
                _close_now(producer)
        if admin is not None:
            admin.close()


def _close_now(producer: KafkaProducer) -> None:
    """Close ``producer`` at once; its unfinished sends fail.

    kafka-python 3.0.12's ``close`` flushes first and raises ``KafkaTimeoutError`` while
    a send is unfinished, before it stops the producer's I/O thread: a producer stuck
    without a producer id would keep that thread and its connections for good. So its
    sender is told to close without finishing, as ``close`` itself does after its
    timeout (the one private attribute used here), and ``close`` then completes.
    """
    try:
        producer.close(timeout=0)
        return
    except KafkaTimeoutError:
        pass
    producer._sender.force_close()
    producer.close(timeout=CLOSE_TIMEOUT_SECONDS)


class KafkaSubscription:
    """One consumer of a service's group, committing offsets only when told to."""

    METADATA_WAIT_SECONDS = 30.0

    def __init__(
        self, bootstrap: str, topics: Sequence[str], group_id: str, client_id: str, *,
        cancel: threading.Event | None = None,
        session_timeout_seconds: float = SESSION_TIMEOUT_SECONDS,
    ) -> None:
        session_ms = int(session_timeout_seconds * 1000)
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=f"{client_id}-{group_id}-{uuid.uuid4().hex[:6]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=200,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 3),
        )
        # Join the group only once the topics' partitions are known: kafka-python can
        # otherwise join with no partition metadata, hold no partitions and never recover.
        # ``cancel`` (the owner stopping) ends the wait early.
        deadline = time.monotonic() + self.METADATA_WAIT_SECONDS
        for topic in topics:
            while not self._consumer.partitions_for_topic(topic):
                if cancel is not None and cancel.is_set():
                    break
                if time.monotonic() > deadline:
                    log.warning("no partitions known for %s yet; subscribing anyway", topic)
                    break
                time.sleep(0.2)
        self._consumer.subscribe(list(topics))

    def poll(self, timeout: float) -> list[Delivery]:
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        out: list[Delivery] = []
        for records in batches.values():
            for r in records:
                out.append(
                    Delivery(
                        topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        key=r.key.decode() if r.key is not None else None,
                        value=r.value,
                        headers=tuple((k, v) for k, v in (r.headers or [])),
                    )
                )
        return out

    def commit(self, delivery: Delivery) -> None:
        tp = TopicPartition(delivery.topic, delivery.partition)
        self._consumer.commit({tp: OffsetAndMetadata(delivery.offset + 1, "", -1)})

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class InProcessBus:
    """A bus in memory for the embedded default and unit tests.

    One ordered log per topic (a single partition), committed offsets per consumer
    group, redelivery from the committed offset for a new subscription: the same
    at-least-once contract as Kafka, so the outbox and inbox code paths are the same.
    """

    def __init__(self) -> None:
        self._logs: dict[str, list[Delivery]] = {}
        self._committed: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()

    def publish(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        with self._cond:
            for e in envelopes:
                log_ = self._logs.setdefault(e.topic, [])
                log_.append(Delivery(e.topic, 0, len(log_), e.key, e.value, e.headers))
            self._cond.notify_all()
        return [None] * len(envelopes)

    def subscribe(self, topics: Sequence[str], group_id: str, *,
                  cancel: threading.Event | None = None) -> InProcessSubscription:
        return InProcessSubscription(self, list(topics), group_id)

    def messages(self, topic: str) -> list[Delivery]:
        with self._cond:
            return list(self._logs.get(topic, []))

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()


class InProcessSubscription:
    def __init__(self, bus: InProcessBus, topics: list[str], group_id: str) -> None:
        self._bus = bus
        self._group = group_id
        with bus._cond:
            self._position = {t: bus._committed.get((group_id, t), 0) for t in topics}
        self._closed = False

    def _pending(self) -> list[Delivery]:
        out: list[Delivery] = []
        for topic, pos in self._position.items():
            out.extend(self._bus._logs.get(topic, [])[pos:])
        return out

    def poll(self, timeout: float) -> list[Delivery]:
        with self._bus._cond:
            pending = self._pending()
            if not pending and not self._closed:
                self._bus._cond.wait(timeout)
                pending = self._pending()
            for d in pending:
                self._position[d.topic] = d.offset + 1
            return pending

    def commit(self, delivery: Delivery) -> None:
        with self._bus._cond:
            key = (self._group, delivery.topic)
            self._bus._committed[key] = max(self._bus._committed.get(key, 0), delivery.offset + 1)

    def close(self) -> None:
        self._closed = True
