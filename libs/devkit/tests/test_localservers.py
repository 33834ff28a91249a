"""The local PostgreSQL and Kafka that the suite, `make stack` and the benches share."""

from __future__ import annotations

import os
import time
import uuid

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from devkit.localservers import KafkaServer, PostgresServer, external_postgres


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_an_external_postgres_url_gives_its_credentials_and_admin_database() -> None:
    server = external_postgres("postgresql://app:p%40ss@db.example:6543/maintenance")

    assert (server.host, server.port, server.user, server.password) == (
        "db.example",
        6543,
        "app",
        "p@ss",
    )
    assert server.admin_db == "maintenance"
    assert server.url("grants") == "postgresql+psycopg://app:p%40ss@db.example:6543/grants"
    assert server.dsn("grants") == "postgresql://app:p%40ss@db.example:6543/grants"
    server.stop()  # a no-op: the caller owns an external server


@pytest.mark.postgres
def test_a_database_created_from_a_template_has_the_template_tables_and_rows(
    postgres_server: PostgresServer,
) -> None:
    template, clone = _name("tpl"), _name("clone")
    postgres_server.create_database(template)
    try:
        # A session left open on the template must not block the copy.
        with psycopg.connect(postgres_server.dsn(template), autocommit=True) as conn:
            conn.execute("CREATE TABLE grants (id BIGINT PRIMARY KEY, amount BIGINT NOT NULL)")
            conn.execute("INSERT INTO grants VALUES (1, 250000000)")
            postgres_server.create_database(clone, template=template)

        with psycopg.connect(postgres_server.dsn(clone)) as conn:
            assert conn.execute("SELECT id, amount FROM grants").fetchall() == [(1, 250000000)]
    finally:
        postgres_server.drop_database(clone)
        postgres_server.drop_database(template)


@pytest.mark.postgres
def test_creating_a_database_again_starts_it_empty(postgres_server: PostgresServer) -> None:
    name = _name("again")
    postgres_server.create_database(name)
    try:
        with psycopg.connect(postgres_server.dsn(name), autocommit=True) as conn:
            conn.execute("CREATE TABLE leftovers (id INT)")
        postgres_server.create_database(name)
        with psycopg.connect(postgres_server.dsn(name)) as conn:
            assert conn.execute("SELECT to_regclass('leftovers')").fetchone() == (None,)
    finally:
        postgres_server.drop_database(name)


@pytest.mark.postgres
def test_a_killed_postgres_refuses_connections_and_restarts_with_its_committed_rows(
    restartable_postgres: PostgresServer,
) -> None:
    server = restartable_postgres
    server.create_database("ledger")
    with psycopg.connect(server.dsn("ledger"), autocommit=True) as conn:
        conn.execute("CREATE TABLE entries (id BIGINT PRIMARY KEY, amount_vnd BIGINT)")
        conn.execute("INSERT INTO entries VALUES (1, 300000003)")
    session = psycopg.connect(server.dsn("ledger"), autocommit=True)

    server.kill()

    try:
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")  # the open session was cut
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.dsn("ledger"), connect_timeout=2)
    finally:
        session.close()
    port = server.port
    server.restart()
    assert server.port == port
    with psycopg.connect(server.dsn("ledger")) as conn:
        assert conn.execute("SELECT id, amount_vnd FROM entries").fetchall() == [
            (1, 300000003)]


@pytest.mark.kafka
def test_messages_produced_with_acks_all_are_consumed_back_in_order(
    kafka_server: KafkaServer,
    kafka_topic: str,
) -> None:
    sent = [b"granted", b"tranche-released", b"closed"]
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap, acks="all")
    try:
        for value in sent:
            producer.send(kafka_topic, key=b"grant-1", value=value).get(timeout=10)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_server.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        consumer.assign([TopicPartition(kafka_topic, p) for p in range(3)])
        received: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(received) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(r.value for r in records)
        assert received == sent
        assert consumer.config["api_version"] >= (4, 0)  # auto-detected, not forced
    finally:
        consumer.close()


@pytest.mark.kafka
def test_a_fresh_topic_has_three_partitions_with_leaders(
    kafka_server: KafkaServer,
    kafka_topic: str,
) -> None:
    with kafka_server.admin() as admin:
        [topic] = admin.describe_topics([kafka_topic])
    assert sorted(p["partition_index"] for p in topic["partitions"]) == [0, 1, 2]
    assert all(p["leader_id"] >= 0 for p in topic["partitions"])

    kafka_server.create_topic(kafka_topic)  # creating it again is a no-op


@pytest.mark.kafka
@pytest.mark.skipif(bool(os.environ.get("TEST_KAFKA_BOOTSTRAP")), reason="external broker")
def test_the_local_broker_is_kafka_4_4_0(kafka_server: KafkaServer) -> None:
    assert kafka_server.log_path is not None
    assert "Kafka version: 4.4.0" in kafka_server.log_path.read_text()
