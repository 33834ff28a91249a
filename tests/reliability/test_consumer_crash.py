"""A consumer killed between its database commit and its offset commit: the event comes
again and has no second effect.

For each direction the platform consumes, a process of its own
(``crashing_consumer.py``) consumes as the service does and is killed (``SIGKILL``)
right after the database commit of its second effect, before it commits that event's
offset. The service is then started and consumes the rest, the killed event again
first: every event has exactly one effect and one inbox row.

- ipshare consumes ``grants.result.registered``: one asset per result;
- grants consumes ``ipshare.distribution.posted``: one portfolio income row per
  distribution.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from sqlalchemy import create_engine, func, select

import grants.app
import ipshare.app
from devkit.localservers import KafkaServer
from devkit.testing import (
    AsyncApiMessages,
    DatabaseFactory,
    read_topic,
    repo_asyncapi,
    topic_size,
)
from grants.models import IncomeRow
from grants.settings import GrantsSettings
from ipshare.models import AssetRow
from ipshare.settings import IpshareSettings
from servicekit import cloudevent
from servicekit.bus import KafkaBus
from servicekit.inbox import INBOX

from .workload import size

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

EVENTS = size("CONSUMER_CRASH_EVENTS", 5)
DIE_AFTER = 2  # effects committed before the kill
RESTART_MARGIN_S = 25.0  # to join the group and consume, on a loaded machine
CHILD = Path(__file__).with_name("crashing_consumer.py")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def result_registered(grant_id: str, n: int) -> tuple[str, dict[str, Any]]:
    """A result registered on ``grant_id``: (the key, the data)."""
    return grant_id, {
        "result_id": str(uuid.uuid4()), "grant_id": grant_id, "call_id": str(uuid.uuid4()),
        "agency_id": "MOST", "institution_id": "HUST", "kind": "patent",
        "title": f"Salinity sensor {n}",
        "authors": [{"researcher_id": "r-a", "name": "A", "contribution_bp": 7000},
                    {"researcher_id": "r-b", "name": "B", "contribution_bp": 3000}],
        "registered_at": NOW.isoformat()}


def distribution_posted(grant_id: str, n: int) -> tuple[str, dict[str, Any]]:
    """A distribution of income on an asset from ``grant_id``: (the key, the data)."""
    distribution_id = str(uuid.uuid4())
    return distribution_id, {
        "distribution_id": distribution_id, "agreement_id": str(uuid.uuid4()),
        "asset_id": str(uuid.uuid4()), "institution_id": "HUST", "source_grant_id": grant_id,
        "reference": f"INV-{n}", "period": "2026-Q4", "gross_vnd": 1_000_000_007,
        "costs_vnd": 0, "basis_vnd": 1_000_000_007, "researcher_pool_vnd": 300_000_003,
        "institution_vnd": 700_000_004,
        "policy": {"researcher_share_bp": 3000, "basis": "gross", "version": 1},
        "lines": [{"payee_id": "r-a", "payee_kind": "researcher", "amount_vnd": 210_000_002},
                  {"payee_id": "r-b", "payee_kind": "researcher", "amount_vnd": 90_000_001},
                  {"payee_id": "HUST", "payee_kind": "institution",
                   "amount_vnd": 700_000_004}],
        "in_kind": False, "posted_at": NOW.isoformat()}


@dataclass(frozen=True)
class Direction:
    consumer: str  # the service that consumes
    producer: str
    event: str
    make: Callable[[str, int], tuple[str, dict[str, Any]]]
    migrate: Callable[[str], None]
    create_app: Callable[..., Any]
    settings: type
    effect: Any  # the column naming the event an effect came from
    effect_key: str  # the data field that column holds

    @property
    def topic(self) -> str:
        return f"{self.producer}.events.v1"


DIRECTIONS = {
    "ipshare consumes grants.result.registered": Direction(
        "ipshare", "grants", "result.registered", result_registered, ipshare.app.migrate,
        ipshare.app.create_app, IpshareSettings, AssetRow.source_result_id, "result_id"),
    "grants consumes ipshare.distribution.posted": Direction(
        "grants", "ipshare", "distribution.posted", distribution_posted, grants.app.migrate,
        grants.app.create_app, GrantsSettings, IncomeRow.distribution_id,
        "distribution_id"),
}


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_a_consumer_killed_before_its_offset_commit_has_no_second_effect_on_redelivery(
    direction: Direction, databases: DatabaseFactory, kafka_server: KafkaServer,
    tmp_path: Path, figures
):
    bootstrap, topic = kafka_server.bootstrap, direction.topic
    kafka_server.create_topic(topic, partitions=3)
    kafka_server.create_topic(f"{direction.consumer}.deadletter.v1", partitions=3)
    url = databases.fresh(direction.consumer, direction.migrate)
    group = f"{direction.consumer}-crash-{uuid.uuid4().hex[:8]}"
    start_at_the_end(kafka_server, topic, group)  # the topic is shared with other tests
    grant_id = str(uuid.uuid4())
    sent = publish(bootstrap, direction, [direction.make(grant_id, n) for n in range(EVENTS)])

    child = subprocess.run(
        [sys.executable, str(CHILD), direction.consumer, "--database-url", url,
         "--bootstrap", bootstrap, "--group", group, "--key-dir", str(tmp_path / "keys"),
         "--die-after", str(DIE_AFTER), "--timeout", "90"],
        capture_output=True, text=True, timeout=180)
    assert child.returncode == -9, f"not killed ({child.returncode}):\n{child.stderr[-3000:]}"
    engine = create_engine(url)
    try:
        applied_before = effects(engine, direction)
        committed = committed_offsets(kafka_server, topic, group)
        # Applied, yet its offset not committed: these come again.
        again = [e for e in sent if e.offset >= committed.get(e.partition, 0)
                 and applied_before.get(e.key) == 1]

        settings = direction.settings(
            database_url=url, kafka_bootstrap=bootstrap, consumer_group=group,
            dev_key_dir=tmp_path / "keys", migrate_on_start=False)
        ends = end_offsets(kafka_server, topic)
        with TestClient(direction.create_app(settings)):
            restarted = time.monotonic()
            deadline = restarted + 60
            while committed_offsets(kafka_server, topic, group) != ends \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            caught_up = committed_offsets(kafka_server, topic, group) == ends
            recovered_in = time.monotonic() - restarted
        applied = effects(engine, direction)
        inbox = inbox_rows(engine, {e.event_id for e in sent})
    finally:
        engine.dispose()

    figures(sent=len(sent), effects_before_the_kill=sum(applied_before.values()),
            redelivered_after_their_effect=len(again),
            effects_found=sum(1 for e in sent if applied.get(e.key)),
            duplicates=sum(n - 1 for n in applied.values() if n > 1),
            lost=sum(1 for e in sent if not applied.get(e.key)),
            consumed_to_the_end_after_restart_s=round(recovered_in, 1))
    assert sum(applied_before.values()) == DIE_AFTER
    assert again, "the killed event's offset was committed: nothing came again"
    assert caught_up, "the restarted service did not consume to the end of the topic"
    # The killed consumer's partitions are handed on once its session times out.
    assert recovered_in < settings.consumer_session_timeout_seconds + RESTART_MARGIN_S
    assert {e.key: applied.get(e.key) for e in sent} == {e.key: 1 for e in sent}
    assert inbox == len(sent)


@dataclass(frozen=True)
class Sent:
    event_id: str
    key: str  # the data field an effect is found by
    partition: int
    offset: int


def publish(bootstrap: str, direction: Direction,
            events: list[tuple[str, dict[str, Any]]]) -> list[Sent]:
    """Publish ``events`` as the producer's relay does (each checked against
    ``docs/asyncapi.yaml`` first); where each landed."""
    messages = AsyncApiMessages(repo_asyncapi())
    envelopes, sent = [], []
    for key, data in events:
        event = cloudevent.build(service=direction.producer,
                                 type_=cloudevent.event_type(direction.producer,
                                                             direction.event),
                                 subject=key, data=data, time=NOW)
        messages.validate(json.loads(cloudevent.encode(event)))
        envelopes.append(cloudevent.to_kafka(event, direction.topic, key))
        sent.append((event.get_id(), data[direction.effect_key]))
    bus = KafkaBus(bootstrap, client_id="crash-test")
    try:
        assert bus.publish(envelopes) == [None] * len(envelopes)
    finally:
        bus.close()
    return [Sent(event_id, key, *where)
            for (event_id, key), where in zip(sent, placed(bootstrap, direction.topic,
                                                          [e for e, _ in sent]), strict=True)]


def placed(bootstrap: str, topic: str, event_ids: list[str]) -> list[tuple[int, int]]:
    """The (partition, offset) of each event, read back from the topic."""
    where = {r.event["id"]: (r.partition, r.offset)
             for r in read_topic(bootstrap, topic, expected=topic_size(bootstrap, topic))}
    return [where[event_id] for event_id in event_ids]


def start_at_the_end(kafka: KafkaServer, topic: str, group: str) -> None:
    """Commit ``group``'s offsets at the end of ``topic``: it reads only what comes next.
    """
    offsets = {TopicPartition(topic, p): OffsetSpec.LATEST for p in end_offsets(kafka, topic)}
    with kafka.admin() as admin:
        retried(lambda: admin.reset_group_offsets(group, offsets))


def end_offsets(kafka: KafkaServer, topic: str) -> dict[int, int]:
    """Each partition's end offset."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def committed_offsets(kafka: KafkaServer, topic: str, group: str) -> dict[int, int]:
    """``group``'s committed offset on each partition of ``topic``."""
    with kafka.admin() as admin:
        offsets = retried(lambda: admin.list_group_offsets(group)).get(group, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def retried(call: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``call()``, again after an error the broker calls retriable (a coordinator still
    loading or not elected yet, as on a fresh or restarted broker)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def effects(engine, direction: Direction) -> dict[str, int]:
    """How many effects each event had, by the data field the effect names."""
    with engine.connect() as conn:
        rows = conn.execute(select(direction.effect, func.count()).group_by(direction.effect))
        return {key: n for key, n in rows}


def inbox_rows(engine, event_ids: set[str]) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(INBOX)
                            .where(INBOX.c.event_id.in_(event_ids))).scalar_one()
