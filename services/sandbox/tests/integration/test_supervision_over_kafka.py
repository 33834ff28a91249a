"""A report over a limit and a critical incident each reach real Kafka once: one
``pilot.breach_detected`` and one ``pilot.suspended`` (one CloudEvent id each), read by an
independent consumer in the order they happened, keyed by the pilot."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer

from devkit.testing import AsyncApiMessages, Tokens, repo_asyncapi
from sandbox.app import create_app, migrate
from sandbox.settings import SandboxSettings
from servicekit.clock import FixedClock

from .pilot_life import morning, report
from .world import World

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOPIC = "sandbox.events.v1"
TODAY = date(2026, 11, 23)
PREFIX = "vn.gov.most.sandbox."


@pytest.fixture
def sandbox_on_kafka(databases, kafka_server, tmp_path: Path, clock: FixedClock):
    kafka_server.create_topic(TOPIC, partitions=3)
    settings = SandboxSettings(database_url=databases.fresh("sandbox", migrate),
                               kafka_bootstrap=kafka_server.bootstrap,
                               dev_key_dir=tmp_path / "keys", migrate_on_start=False,
                               relay_poll_seconds=0.1, scheduler_seconds=0)
    with TestClient(create_app(settings, clock=clock)) as client:
        yield client, Tokens(tmp_path / "keys")
    kafka_server.delete_topic(TOPIC)


def consume(bootstrap: str, pilot_id: str, wanted: set[str], seconds: float = 60
            ) -> list[tuple[int, int, str | None, dict]]:
    """Every message about ``pilot_id`` from the start of the topic, by a consumer of its
    own group, until the ``wanted`` types arrived, then a moment more for duplicates."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"it-{uuid.uuid4().hex}",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        consumer.subscribe([TOPIC])
        mine: list[tuple[int, int, str | None, dict]] = []
        deadline = time.monotonic() + seconds
        settle: float | None = None
        while time.monotonic() < (settle or deadline):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    event = json.loads(r.value)
                    if event["subject"] == pilot_id:
                        mine.append((r.partition, r.offset,
                                     r.key.decode() if r.key else None, event))
            if settle is None and wanted <= {e["type"].removeprefix(PREFIX)
                                             for *_, e in mine}:
                settle = time.monotonic() + 2
        return mine
    finally:
        consumer.close()


def test_a_breach_and_a_critical_incident_each_reach_kafka_once(
        sandbox_on_kafka, kafka_server, clock: FixedClock) -> None:
    client: TestClient
    client, tokens = sandbox_on_kafka
    w = World(client, tokens)
    pilot_id = w.approved(TODAY, starts_on=TODAY.isoformat())["pilot_id"]
    clock.set(morning(date(2027, 1, 3)))
    filed = w.call("POST", f"/v1/pilots/{pilot_id}/reports", w.owner, 201,
                   report("2026-Q4", participants=4000))
    clock.advance(timedelta(minutes=5))
    incident = w.call("POST", f"/v1/pilots/{pilot_id}/incidents", w.owner, 201,
                      {"severity": "critical", "description": "payouts stopped"})

    wanted = {"pilot.breach_detected.v1", "pilot.suspended.v1"}
    read = consume(kafka_server.bootstrap, pilot_id, wanted)
    types = [e["type"].removeprefix(PREFIX) for *_, e in sorted(read, key=lambda m: m[1])]
    assert types == ["pilot.started.v1", "pilot.report_filed.v1",
                     "pilot.breach_detected.v1", "incident.reported.v1",
                     "pilot.suspended.v1"]
    assert len({e["id"] for *_, e in read}) == len(read)  # one CloudEvent id each
    assert len({partition for partition, *_ in read}) == 1  # keyed by the pilot
    assert {key for _, _, key, _ in read} == {pilot_id}

    messages = AsyncApiMessages(repo_asyncapi())
    by_type = {e["type"].removeprefix(PREFIX): e for *_, e in read}
    for event in by_type.values():
        messages.validate(event)
    breach = by_type["pilot.breach_detected.v1"]["data"]
    assert breach["report_id"] == filed["id"]
    assert breach["breaches"] == [{"limit": "max_participants", "allowed": 1000,
                                   "reported": 4000}]
    suspended = by_type["pilot.suspended.v1"]["data"]
    assert suspended["incident_id"] == incident["id"] and suspended["decision_no"] is None
    assert by_type["incident.reported.v1"]["data"]["suspended_pilot"] is True
