"""The sandbox's events reach real Kafka through the outbox relay, each once, in order
per aggregate, and an independent consumer reads them as valid CloudEvents."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devkit.testing import AsyncApiMessages, Tokens, read_topic, repo_asyncapi
from sandbox.app import create_app, migrate
from sandbox.settings import SandboxSettings
from servicekit.clock import FixedClock

from .world import World, approval

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOPIC = "sandbox.events.v1"
TODAY = date(2026, 11, 23)


@pytest.fixture
def sandbox_on_kafka(databases, kafka_server, tmp_path: Path, clock: FixedClock):
    kafka_server.create_topic(TOPIC, partitions=3)
    settings = SandboxSettings(database_url=databases.fresh("sandbox", migrate),
                               kafka_bootstrap=kafka_server.bootstrap,
                               dev_key_dir=tmp_path / "keys", migrate_on_start=False,
                               relay_poll_seconds=0.1)
    with TestClient(create_app(settings, clock=clock)) as client:
        yield client, Tokens(tmp_path / "keys")
    kafka_server.delete_topic(TOPIC)


def test_an_application_from_submission_to_a_started_pilot_on_kafka(sandbox_on_kafka,
                                                                    kafka_server) -> None:
    client, tokens = sandbox_on_kafka
    w = World(client, tokens)
    app = w.assessed()
    decided = w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 200,
                     approval(TODAY, starts_on=TODAY.isoformat()))

    deadline = time.monotonic() + 60
    read = []
    while len(read) < 3 and time.monotonic() < deadline:
        read = read_topic(kafka_server.bootstrap, TOPIC, expected=3, timeout=10)
    types = [m.event["type"].removeprefix("vn.gov.most.sandbox.") for m in read]
    assert Counter(types) == Counter({"application.submitted.v1": 1,
                                      "application.decided.v1": 1,
                                      "pilot.started.v1": 1})
    assert len({m.event["id"] for m in read}) == 3  # one CloudEvent id each, no repeat
    messages = AsyncApiMessages(repo_asyncapi())
    for m in read:
        messages.validate(m.event)
        assert m.key == m.event["subject"]
        assert m.headers["content-type"] == b"application/cloudevents+json"
    by_application = [m for m in read if m.key == app["id"]]
    assert [m.event["type"] for m in sorted(by_application, key=lambda m: m.offset)] == [
        "vn.gov.most.sandbox.application.submitted.v1",
        "vn.gov.most.sandbox.application.decided.v1"]
    started = next(m for m in read if m.key == decided["pilot_id"])
    assert started.event["data"]["starts_on"] == TODAY.isoformat()
