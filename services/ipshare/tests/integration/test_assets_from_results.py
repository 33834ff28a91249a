"""A result registered on a grant becomes one asset of the grant's institution."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ipshare.consumers import CONSUMER, asset_from_result, consumer_specs
from servicekit import cloudevent
from servicekit.bus import InProcessBus
from servicekit.cloudevent import Envelope
from servicekit.inbox import EventConsumer

pytestmark = pytest.mark.postgres


def result_registered(result_id: str = "res-1") -> bytes:
    return cloudevent.encode(cloudevent.build(
        service="grants", type_="vn.gov.most.grants.result.registered.v1", subject="g-1",
        time=datetime(2026, 11, 23, tzinfo=UTC), data={
            "result_id": result_id, "grant_id": "g-1", "call_id": "c-1", "agency_id": "MOST",
            "institution_id": "HUST", "kind": "patent", "title": "Salinity sensor",
            "authors": [{"researcher_id": "r-a", "name": "A", "contribution_bp": 7000},
                        {"researcher_id": "r-b", "name": "B", "contribution_bp": 3000}],
            "registered_at": "2026-11-23T00:00:00Z"}))


def test_a_redelivered_result_creates_one_asset(client, tokens, clock):
    bus = InProcessBus()
    value = result_registered()
    bus.publish([Envelope("grants.events.v1", "g-1", value)] * 2)
    [spec] = consumer_specs()  # as the app wires it
    consumer = EventConsumer(name=CONSUMER, bus=bus, topics=list(spec.topics),
                             group_id="ipshare", sessions=client.app.state.kit.sessions,
                             handlers=spec.handlers)
    assert consumer.run_once(timeout=0.1) == 1

    office = tokens.headers("off-1", "institution", org="HUST")
    assets = client.get("/v1/assets", headers=office,
                        params={"source_grant_id": "g-1"}).json()["items"]
    assert len(assets) == 1
    asset = assets[0]
    assert asset["institution_id"] == "HUST"  # owned by the institution, not the state
    assert asset["source_result_id"] == "res-1"
    assert datetime.fromisoformat(asset["created_at"]) == clock.now()
    assert [(a["researcher_id"], a["contribution_bp"]) for a in asset["authors"]] == [
        ("r-a", 7000), ("r-b", 3000)]
    author = tokens.headers("r-b", "researcher", org="HUST")
    assert client.get(f"/v1/assets/{asset['id']}", headers=author).status_code == 200
    trail = client.get(f"/v1/assets/{asset['id']}/history", headers=office).json()["items"]
    assert trail[0]["actor"] == f"system:{CONSUMER}"


def test_a_result_with_bad_shares_is_dead_lettered_not_half_applied(client, tokens):
    bad = cloudevent.encode(cloudevent.build(
        service="grants", type_="vn.gov.most.grants.result.registered.v1", subject="g-2",
        time=datetime(2026, 11, 23, tzinfo=UTC), data={
            "result_id": "res-bad", "grant_id": "g-2", "institution_id": "HUST",
            "kind": "patent", "title": "x",
            "authors": [{"researcher_id": "r-a", "name": "A", "contribution_bp": 9000}]}))
    bus = InProcessBus()
    bus.publish([Envelope("grants.events.v1", "g-2", bad)])
    consumer = EventConsumer(name=CONSUMER, bus=bus, topics=["grants.events.v1"],
                             group_id="ipshare", sessions=client.app.state.kit.sessions,
                             handlers={"vn.gov.most.grants.result.registered.v1":
                                       asset_from_result},
                             dead_letter_topic="ipshare.deadletter.v1", max_attempts=1)
    assert consumer.run_once(timeout=0.1) == 0
    assert [d.value for d in bus.messages("ipshare.deadletter.v1")] == [bad]
    office = tokens.headers("off-1", "institution", org="HUST")
    assert client.get("/v1/assets", headers=office,
                      params={"source_grant_id": "g-2"}).json()["items"] == []
