"""The transactional outbox and its relay, against real PostgreSQL and Kafka."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import Session

from devkit.localservers import KafkaServer
from devkit.testing import read_topic
from servicekit import cloudevent, outbox
from servicekit.bus import KafkaBus
from servicekit.db import session_factory
from servicekit.inbox import EventConsumer

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TYPE = "vn.gov.most.test.thing.happened.v1"


def stage(session: Session, topic: str, aggregate: str, n: int) -> str:
    event = cloudevent.build(service="test", type_=TYPE, subject=aggregate, data={"n": n},
                             time=NOW)
    outbox.stage(session, event, topic=topic, now=NOW)
    return event.get_id()


def unsent(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(outbox.OUTBOX).where(
                outbox.OUTBOX.c.sent_at.is_(None))
        ).scalar_one()


@pytest.fixture
def bus(kafka_server: KafkaServer):
    bus = KafkaBus(kafka_server.bootstrap, client_id="outbox-test")
    yield bus
    bus.close()


def test_rolled_back_transaction_publishes_nothing(kit_engine, bus, kafka_server, kafka_topic):
    with Session(kit_engine) as session:
        stage(session, kafka_topic, "agg-1", 1)
        session.rollback()
    with Session(kit_engine) as session:
        committed_id = stage(session, kafka_topic, "agg-1", 2)
        session.commit()

    published = outbox.OutboxRelay(kit_engine, bus, name="t").publish_pending()

    assert published == 1
    read = read_topic(kafka_server.bootstrap, kafka_topic, expected=1)
    assert [r.event["id"] for r in read] == [committed_id]


class RelayKilled(Exception):
    pass


def test_relay_killed_between_ack_and_mark_republishes_same_event_with_one_effect(
    kit_engine, bus, kafka_server, kafka_topic
):
    with Session(kit_engine) as session:
        event_id = stage(session, kafka_topic, "agg-1", 1)
        session.commit()

    def die(_acked: list[int]) -> None:
        raise RelayKilled

    with pytest.raises(RelayKilled):
        outbox.OutboxRelay(kit_engine, bus, name="t", after_ack=die).publish_pending()
    assert unsent(kit_engine) == 1  # the broker has it, the row is not marked
    assert outbox.OutboxRelay(kit_engine, bus, name="t").publish_pending() == 1
    assert unsent(kit_engine) == 0

    read = read_topic(kafka_server.bootstrap, kafka_topic, expected=2)
    assert [r.event["id"] for r in read] == [event_id, event_id]

    def record_effect(session: Session, event) -> None:
        session.execute(text("INSERT INTO effects (event_id) VALUES (:e)"),
                        {"e": event.get_id()})

    consumer = EventConsumer(name="effects", bus=bus, topics=[kafka_topic], group_id="g-effects",
                             sessions=session_factory(kit_engine), handlers={TYPE: record_effect})
    try:
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 2 and time.monotonic() < deadline:
            for delivery in consumer.subscription.poll(1.0):
                consumer.process(delivery)
                consumer.subscription.commit(delivery)
                seen += 1
    finally:
        consumer.stop()
    assert seen == 2
    with kit_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM effects")).scalar_one() == 1


def test_two_relays_at_once_publish_each_row_once(kit_engine, bus, kafka_server, kafka_topic):
    with Session(kit_engine) as session:
        ids = {stage(session, kafka_topic, f"agg-{i % 5}", i) for i in range(300)}
        session.commit()
    relays = [outbox.OutboxRelay(kit_engine, bus, name="same-service", batch_size=50,
                                 poll_seconds=0.05) for _ in range(2)]
    for relay in relays:
        relay.start()
    try:
        deadline = time.monotonic() + 30
        while unsent(kit_engine) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for relay in relays:
            relay.stop()

    read = read_topic(kafka_server.bootstrap, kafka_topic, expected=300)
    assert len(read) == 300
    assert {r.event["id"] for r in read} == ids


def test_a_standby_relay_takes_over_when_the_active_one_stops(kit_engine, bus, kafka_server,
                                                              kafka_topic):
    active = outbox.OutboxRelay(kit_engine, bus, name="failover")
    standby = outbox.OutboxRelay(kit_engine, bus, name="failover")
    assert active.is_leader()
    assert not standby.is_leader()
    with Session(kit_engine) as session:
        stage(session, kafka_topic, "agg-1", 1)
        session.commit()
    assert standby.publish_pending() == 0

    active.stop()  # releases the advisory lock, as a dead process's session would

    assert standby.publish_pending() == 1
    standby.stop()


def test_per_aggregate_order_is_kept_across_1000_events_on_3_aggregates(
    kit_engine, bus, kafka_server, kafka_topic
):
    aggregates = ["a", "b", "c"]
    with Session(kit_engine) as session:
        for n in range(1000):
            stage(session, kafka_topic, aggregates[n % 3], n)
            if n % 100 == 99:
                session.commit()
        session.commit()
    relay = outbox.OutboxRelay(kit_engine, bus, name="order", batch_size=64, poll_seconds=0.05)
    relay.start()
    try:
        deadline = time.monotonic() + 60
        while unsent(kit_engine) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        relay.stop()

    read = read_topic(kafka_server.bootstrap, kafka_topic, expected=1000)
    assert len(read) == 1000
    by_key: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in sorted(read, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(r.event["data"]["n"])
        partitions[r.key].add(r.partition)
    for key in aggregates:
        assert by_key[key] == sorted(by_key[key])
        assert len(by_key[key]) in (333, 334)
        assert len(partitions[key]) == 1
