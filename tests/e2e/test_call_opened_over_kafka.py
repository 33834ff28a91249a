"""End to end: an HTTP request to grants becomes a CloudEvent on real Kafka that an
independent consumer reads, valid, with the request's trace carried through."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cloudevents.core.v1.event import CloudEvent
from fastapi.testclient import TestClient

from devkit.testing import Tokens, read_topic
from grants.app import create_app, migrate
from grants.settings import GrantsSettings
from servicekit import cloudevent

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def grants_on_kafka(databases, kafka_server, tmp_path: Path):
    kafka_server.create_topic("grants.events.v1", partitions=3)
    settings = GrantsSettings(database_url=databases.fresh("grants", migrate),
                              kafka_bootstrap=kafka_server.bootstrap,
                              dev_key_dir=tmp_path / "keys", migrate_on_start=False,
                              relay_poll_seconds=0.1)
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, Tokens(tmp_path / "keys")


def test_call_opened_reaches_an_independent_kafka_consumer_with_the_request_trace(
    grants_on_kafka, kafka_server
):
    client, tokens = grants_on_kafka
    pm = tokens.headers("pm-1", "program_manager", org="MOST")
    call = client.post("/v1/calls", headers=pm, json={
        "title": "Low-orbit satellite links", "budget_vnd": 5_000_000_000,
        "max_award_vnd": 1_000_000_000, "opens_at": "2026-01-01T00:00:00Z",
        "closes_at": "2030-01-01T00:00:00Z"}).json()
    r = client.post(f"/v1/calls/{call['id']}/open", headers={**pm, "traceparent": INCOMING})
    assert r.status_code == 200

    deadline = time.monotonic() + 30
    mine = []
    while not mine and time.monotonic() < deadline:
        messages = read_topic(kafka_server.bootstrap, "grants.events.v1", expected=1,
                              timeout=5)
        mine = [m for m in messages if m.event.get("subject") == call["id"]]
    assert len(mine) == 1
    message = mine[0]

    event = cloudevent.decode(json.dumps(message.event).encode())
    assert isinstance(event, CloudEvent)
    assert event.get_specversion() == "1.0"
    assert event.get_type() == "vn.gov.most.grants.call.opened.v1"
    assert event.get_source() == "/grants"
    assert event.get_subject() == call["id"] == message.key
    assert event.get_data()["budget_vnd"] == 5_000_000_000
    header = message.headers["traceparent"].decode()
    assert header == event.get_extension("traceparent")
    assert header.split("-")[1] == TRACE_ID  # the HTTP request's trace continues
    assert message.headers["content-type"] == b"application/cloudevents+json"


def test_ready_reports_the_database_and_the_broker_answering(grants_on_kafka):
    client, _ = grants_on_kafka
    for _ in range(3):  # stays ready once connected, not only while connecting
        r = client.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"database": "ok", "broker": "ok"}
