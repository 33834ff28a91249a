"""The check the end-to-end tests run on the events the services wrote, over real Kafka:
it reads what was written between two positions, or everything once the writing settled,
and fails naming the message whose payload breaks its schema, or a dead letter."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from devkit.testing import EventContract, distinct
from servicekit import cloudevent

pytestmark = pytest.mark.kafka


def income_event(distribution_id: str, gross_vnd: int = 1000) -> bytes:
    data = {"distribution_id": distribution_id, "agreement_id": "a-1", "asset_id": "s-1",
            "institution_id": "HUST", "source_grant_id": None, "reference": "INV-1",
            "period": "2026-Q4", "gross_vnd": gross_vnd, "costs_vnd": 0,
            "basis_vnd": gross_vnd, "researcher_pool_vnd": 300, "institution_vnd": 700,
            "policy": {"researcher_share_bp": 3000, "basis": "gross", "version": 1},
            "lines": [{"payee_id": "r-1", "payee_kind": "researcher", "amount_vnd": 300},
                      {"payee_id": "HUST", "payee_kind": "institution", "amount_vnd": 700}],
            "in_kind": False, "posted_at": "2026-11-23T02:00:00+00:00"}
    return cloudevent.encode(cloudevent.build(
        service="ipshare", type_="vn.gov.most.ipshare.distribution.posted.v1",
        subject=distribution_id, data=data, time=datetime(2026, 11, 23, 2, tzinfo=UTC)))


@pytest.fixture
def topics(kafka_server):
    """An events topic and a dead-letter topic of this test's own (named so that the
    service is still ``ipshare``), and a contract reading only them."""
    run = uuid.uuid4().hex[:8]
    events, dead = f"ipshare.events.v1.{run}", f"ipshare.deadletter.v1.{run}"
    for topic in (events, dead):
        kafka_server.create_topic(topic, partitions=2)
    contract = EventContract(events=re.compile(re.escape(events)),
                             dead_letters=re.compile(re.escape(dead)))
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap, acks="all")

    def send(topic: str, key: str, value: bytes) -> None:
        producer.send(topic, key=key.encode(), value=value).get(timeout=30)

    try:
        yield contract, events, dead, send
    finally:
        producer.close()


def test_events_on_the_contract_are_returned_and_counted(kafka_server, topics):
    contract, events, _, send = topics
    before = contract.ends(kafka_server.bootstrap)
    for n in range(3):
        send(events, f"d-{n}", income_event(f"d-{n}"))
    read = contract.check(kafka_server.bootstrap, before, contract.ends(kafka_server.bootstrap))
    assert sorted(e["subject"] for e in read) == ["d-0", "d-1", "d-2"]
    assert contract.seen == {"vn.gov.most.ipshare.distribution.posted.v1": 3}


def test_an_event_whose_payload_breaks_its_schema_fails_the_check(kafka_server, topics):
    contract, events, _, send = topics
    send(events, "d-0", income_event("d-0"))  # before: not this check's business
    before = contract.ends(kafka_server.bootstrap)
    send(events, "d-1", income_event("d-1"))
    mutated = json.loads(income_event("d-2"))
    mutated["data"]["gross_vnd"] = "1000"  # money as a string
    send(events, "d-2", json.dumps(mutated).encode())
    with pytest.raises(AssertionError) as failed:
        contract.check(kafka_server.bootstrap, before, contract.ends(kafka_server.bootstrap))
    said = str(failed.value)
    assert f"{events}/" in said and "does not match its message schema" in said
    assert "data/gross_vnd" in said and said.count("does not match") == 1


def test_written_reads_every_event_from_the_beginning_once_they_arrived(kafka_server, topics):
    contract, events, _, send = topics
    for n in range(4):
        send(events, f"d-{n}", income_event(f"d-{n}"))
    read = contract.written(kafka_server.bootstrap, at_least=4, quiet=1.0)
    assert sorted(e["subject"] for e in read) == ["d-0", "d-1", "d-2", "d-3"]


def test_written_fails_on_an_undocumented_type(kafka_server, topics):
    contract, events, _, send = topics
    ghost = json.loads(income_event("d-1"))
    ghost["type"] = "vn.gov.most.ipshare.distribution.vanished.v1"
    send(events, "d-1", json.dumps(ghost).encode())
    with pytest.raises(AssertionError, match="is not in docs/asyncapi.yaml"):
        contract.written(kafka_server.bootstrap, at_least=1, quiet=1.0)


def test_written_fails_on_a_dead_letter(kafka_server, topics):
    contract, events, dead, send = topics
    send(events, "d-1", income_event("d-1"))
    send(dead, "d-1", b"not json")
    with pytest.raises(AssertionError, match="dead letters"):
        contract.written(kafka_server.bootstrap, at_least=1, quiet=1.0)


def test_a_republished_event_counts_once_and_two_ids_for_one_effect_count_twice():
    event = json.loads(income_event(str(uuid.uuid4())))
    other = json.loads(income_event(event["subject"]))  # the same effect under a new id
    assert distinct([event, dict(event), other]) == [event, other]
    with pytest.raises(AssertionError, match="share the id"):
        distinct([event, {**event, "data": {**event["data"], "gross_vnd": 1}}])
