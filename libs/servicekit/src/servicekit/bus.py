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
from kafka.structs import OffsetAndMetadata, TopicPartition

from servicekit.cloudevent import Envelope

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Delivery:
    """A message as a subscriber receives it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


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
    """Kafka through kafka-python: idempotent producer with ``acks=all`` and retries."""

    def __init__(self, bootstrap: str, *, client_id: str = "most") -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()

    @property
    def producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id=f"{self.client_id}-producer",
                    acks="all",
                    enable_idempotence=True,
                    retries=2_147_483_647,
                    request_timeout_ms=15_000,
                    delivery_timeout_ms=int(PUBLISH_TIMEOUT_SECONDS * 1000),
                    linger_ms=2,
                    max_block_ms=10_000,
                )
            return self._producer

    def publish(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        producer = self.producer
        futures = [
            producer.send(
                e.topic, key=e.key.encode(), value=e.value, headers=list(e.headers)
            )
            for e in envelopes
        ]
        producer.flush(timeout=PUBLISH_TIMEOUT_SECONDS + 5)
        results: list[BaseException | None] = []
        for future in futures:
            try:
                future.get(timeout=PUBLISH_TIMEOUT_SECONDS + 5)
                results.append(None)
            except Exception as exc:  # noqa: BLE001 - reported per message to the relay
                results.append(exc)
        return results

    def subscribe(self, topics: Sequence[str], group_id: str, *,
                  cancel: threading.Event | None = None) -> KafkaSubscription:
        return KafkaSubscription(self.bootstrap, topics, group_id, self.client_id,
                                 cancel=cancel)

    def ready(self) -> bool:
        """A real metadata round trip (``bootstrap_connected`` is only true while the
        client is first connecting); raises when the broker does not answer."""
        with self._lock:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-ready",
                    request_timeout_ms=3_000)
            admin = self._admin
        admin.list_topics()
        return True

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
            if self._admin is not None:
                self._admin.close()
                self._admin = None


class KafkaSubscription:
    """One consumer of a service's group, committing offsets only when told to."""

    METADATA_WAIT_SECONDS = 30.0

    def __init__(
        self, bootstrap: str, topics: Sequence[str], group_id: str, client_id: str, *,
        cancel: threading.Event | None = None,
    ) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=f"{client_id}-{group_id}-{uuid.uuid4().hex[:6]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=200,
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
