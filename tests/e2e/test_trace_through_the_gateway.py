"""End to end: a request through the gateway's proxy to grants on PostgreSQL becomes a
Kafka event carrying the caller's trace, with the gateway's span between the two."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from devkit.testing import Tokens, read_topic
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from grants.app import create_app, migrate
from grants.settings import GrantsSettings

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TRACE_ID = "5cf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "10f067aa0ba902b7"


def test_the_callers_trace_reaches_the_kafka_event_through_the_gateway(
    databases, kafka_server, tmp_path: Path
):
    kafka_server.create_topic("grants.events.v1", partitions=3)
    keys = tmp_path / "keys"
    grants = create_app(GrantsSettings(
        database_url=databases.fresh("grants", migrate), kafka_bootstrap=kafka_server.bootstrap,
        dev_key_dir=keys, migrate_on_start=False, relay_poll_seconds=0.1))
    gateway = create_gateway(GatewaySettings(dev_key_dir=keys),
                             transports={"grants": httpx.ASGITransport(app=grants)})
    pm = Tokens(keys).headers("pm-1", "program_manager", org="MOST")
    with TestClient(grants), TestClient(gateway) as client:
        call = client.post("/grants/v1/calls", headers=pm, json={
            "title": "Mekong salinity sensors", "budget_vnd": 5_000_000_000,
            "max_award_vnd": 1_000_000_000, "opens_at": "2026-01-01T00:00:00Z",
            "closes_at": "2030-01-01T00:00:00Z"}).json()
        opened = client.post(f"/grants/v1/calls/{call['id']}/open", headers={
            **pm, "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01", "X-Request-Id": "e2e-7"})
        assert opened.status_code == 200, opened.text
        assert opened.headers["x-request-id"] == "e2e-7"

        deadline, mine = time.monotonic() + 30, []
        while not mine and time.monotonic() < deadline:
            messages = read_topic(kafka_server.bootstrap, "grants.events.v1", expected=2,
                                  timeout=5)
            mine = [m for m in messages if m.event.get("type", "").endswith("call.opened.v1")
                    and m.event.get("subject") == call["id"]]
    assert len(mine) == 1
    _, trace_id, parent, _ = mine[0].headers["traceparent"].decode().split("-")
    assert trace_id == TRACE_ID  # the caller's trace, through the gateway, into the event
    assert parent != CALLER_SPAN  # emitted under the service's span, not the caller's
