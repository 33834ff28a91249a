"""Idempotent consumers over real Kafka and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer
from sqlalchemy import text
from sqlmodel import Session

from servicekit import cloudevent
from servicekit.bus import Delivery, KafkaBus
from servicekit.db import session_factory
from servicekit.inbox import EventConsumer

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TYPE = "vn.gov.most.test.thing.happened.v1"


def produce(bootstrap: str, topic: str, value: bytes, times: int = 1) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for _ in range(times):
        producer.send(topic, key=b"agg-1", value=value).get(timeout=30)
    producer.close()


def an_event() -> cloudevent.CloudEvent:
    return cloudevent.build(service="test", type_=TYPE, subject="agg-1", data={"n": 1},
                            time=datetime(2026, 11, 23, tzinfo=UTC))


def record_effect(session: Session, event) -> None:
    session.execute(text("INSERT INTO effects (event_id) VALUES (:e)"), {"e": event.get_id()})


def effects(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM effects")).scalar_one()


def poll_until(consumer: EventConsumer, count: int, timeout: float = 30.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(consumer.subscription.poll(1.0))
    return got


@pytest.fixture
def bus(kafka_server):
    bus = KafkaBus(kafka_server.bootstrap, client_id="inbox-test")
    yield bus
    bus.close()


def consumer(kit_engine, bus, topic, **kw) -> EventConsumer:
    return EventConsumer(name="effects", bus=bus, topics=[topic], group_id="svc-test",
                         sessions=session_factory(kit_engine), handlers={TYPE: record_effect},
                         **kw)


def test_the_same_event_delivered_twice_has_one_effect(kit_engine, bus, kafka_server,
                                                       kafka_topic):
    produce(kafka_server.bootstrap, kafka_topic, cloudevent.encode(an_event()), times=2)
    c = consumer(kit_engine, bus, kafka_topic)
    try:
        deliveries = poll_until(c, 2)
        applied = [c.process(d) for d in deliveries]
    finally:
        c.stop()
    assert applied == [True, False]
    assert effects(kit_engine) == 1


class Killed(Exception):
    pass


def test_consumer_killed_after_db_commit_before_offset_commit_causes_no_second_effect(
    kit_engine, bus, kafka_server, kafka_topic
):
    produce(kafka_server.bootstrap, kafka_topic, cloudevent.encode(an_event()))

    def die(_delivery: Delivery) -> None:
        raise Killed

    first = consumer(kit_engine, bus, kafka_topic, after_db_commit=die)
    try:
        deadline = time.monotonic() + 30
        with pytest.raises(Killed):
            while time.monotonic() < deadline:
                first.run_once(timeout=1.0)
    finally:
        first.stop()  # leaves the group without committing the offset
    assert effects(kit_engine) == 1

    second = consumer(kit_engine, bus, kafka_topic)
    try:
        redelivered = poll_until(second, 1)
        assert len(redelivered) == 1  # the offset was never committed
        assert second.process(redelivered[0]) is False
        second.subscription.commit(redelivered[0])
    finally:
        second.stop()
    assert effects(kit_engine) == 1


def test_an_unparsable_message_goes_to_the_dead_letter_topic(kit_engine, bus, kafka_server,
                                                             kafka_topic):
    dead_letters = f"{kafka_topic}-dlq"
    kafka_server.create_topic(dead_letters, partitions=1)
    produce(kafka_server.bootstrap, kafka_topic, b"{not json")
    c = consumer(kit_engine, bus, kafka_topic, dead_letter_topic=dead_letters)
    try:
        deliveries = poll_until(c, 1)
        assert c.process(deliveries[0]) is False
    finally:
        c.stop()
    dead = KafkaBus(kafka_server.bootstrap).subscribe([dead_letters], "dlq-reader")
    try:
        got: list[Delivery] = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = dead.poll(1.0)
    finally:
        dead.close()
    assert got[0].value == b"{not json"
    assert got[0].header("x-original-topic") == kafka_topic.encode()
    assert effects(kit_engine) == 0


def kafka_threads_of(group_id: str) -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if group_id in t.name]


def test_stopping_while_waiting_for_a_missing_topic_leaves_no_kafka_client_running(
    kit_engine, bus
):
    # The subscription waits for the topic's partitions (up to 30 s) before joining its
    # group. Stopping the service then must end that wait and close the consumer, not
    # give up on the thread and leave its client polling a broker that is going away.
    c = EventConsumer(name="effects", bus=bus, topics=["no-such-topic-yet"],
                      group_id="svc-stopping", sessions=session_factory(kit_engine),
                      handlers={TYPE: record_effect}, dead_letter_topic="dead")
    c.start()
    deadline = time.monotonic() + 30
    while not kafka_threads_of("svc-stopping") and time.monotonic() < deadline:
        time.sleep(0.05)  # until the consumer's client is up and waiting
    assert kafka_threads_of("svc-stopping"), "the consumer never started its client"

    c.stop(timeout=10)

    assert kafka_threads_of("svc-stopping") == []
