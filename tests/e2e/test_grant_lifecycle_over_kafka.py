"""End to end over real Kafka and PostgreSQL: from a call to a released tranche that an
independent finance consumer reads, and commercialisation income flowing back from
ipshare's events into the portfolio."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from devkit.testing import Tokens, read_topic, wait_for
from grants.app import create_app, migrate
from grants.settings import GrantsSettings
from servicekit import cloudevent

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOPICS = ("grants.events.v1", "ipshare.events.v1", "grants.deadletter.v1")


@pytest.fixture
def grants_service(databases, kafka_server, tmp_path: Path):
    for topic in TOPICS:
        kafka_server.create_topic(topic, partitions=3)
    settings = GrantsSettings(database_url=databases.fresh("grants", migrate),
                              kafka_bootstrap=kafka_server.bootstrap,
                              consumer_group=f"grants-{uuid.uuid4().hex[:6]}",
                              dev_key_dir=tmp_path / "keys", migrate_on_start=False,
                              relay_poll_seconds=0.1)
    with TestClient(create_app(settings)) as client:
        yield client, Tokens(tmp_path / "keys")


def award_a_grant(client, tokens) -> tuple[dict, dict]:
    pm = tokens.headers("pm-1", "program_manager", org="MOST")
    lead = tokens.headers("r-lead", "researcher", org="HUST")
    call = client.post("/v1/calls", headers=pm, json={
        "title": "Mekong", "budget_vnd": 5_000_000_000, "max_award_vnd": 1_000_000_001,
        "opens_at": "2026-01-01T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"}).json()
    client.post(f"/v1/calls/{call['id']}/open", headers=pm)
    app = client.post("/v1/applications", headers=lead, json={
        "call_id": call["id"], "title": "Salinity sensors", "abstract": "",
        "institution_id": "HUST", "requested_vnd": 1_000_000_001, "risk_level": "high",
        "team": [{"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                  "contribution_bp": 10000}],
        "milestones": [{"title": f"M{i}", "deliverable": "D", "verification": "V",
                        "due_date": "2029-01-01", "tranche_bp": bp}
                       for i, bp in enumerate([3333, 3333, 3334])]}).json()
    client.post(f"/v1/applications/{app['id']}/submit", headers=lead)
    for reviewer, org in (("rev-1", "VAST"), ("rev-2", "NAFOSTED")):
        r = client.post(f"/v1/applications/{app['id']}/reviews",
                        headers=tokens.headers(reviewer, "reviewer", org=org),
                        json={"scores": {"merit": 5}, "recommendation": "fund",
                              "comment": "", "conflict_of_interest": False})
        assert r.status_code == 201
    decided = client.post(f"/v1/applications/{app['id']}/decision", headers=pm,
                          json={"decision": "approve", "awarded_vnd": 1_000_000_001}).json()
    grant = client.get(f"/v1/grants/{decided['grant_id']}", headers=pm).json()
    return grant, pm


def test_a_released_tranche_reaches_an_independent_finance_consumer(grants_service,
                                                                    kafka_server):
    client, tokens = grants_service
    grant, pm = award_a_grant(client, tokens)
    lead = tokens.headers("r-lead", "researcher", org="HUST")
    m1 = grant["milestones"][0]
    client.post(f"/v1/grants/{grant['id']}/milestones/{m1['id']}/report", headers=lead,
                json={"summary": "sensors deployed",
                      "evidence": [{"kind": "dataset", "ref": "doi:10.5281/zenodo.1"}]})
    assert client.post(f"/v1/grants/{grant['id']}/milestones/{m1['id']}/accept",
                       headers=pm).status_code == 200

    def grant_events():
        return [m for m in read_topic(kafka_server.bootstrap, "grants.events.v1", 1, 5)
                if m.key == grant["id"]]

    events = wait_for(lambda: [m for m in grant_events()
                               if m.event["type"].endswith("tranche.released.v1")], 30)
    assert len(events) == 1
    released = cloudevent.decode(json.dumps(events[0].event).encode())
    data = released.get_data()
    assert data["grant_id"] == grant["id"] and data["milestone_id"] == m1["id"]
    assert data["payee_id"] == "HUST" and data["amount_vnd"] == 333_300_000
    assert data["lines"] == [{"payee_id": "HUST", "payee_kind": "institution",
                              "amount_vnd": 333_300_000}]
    assert data["reference"] == f"GRANT-{grant['id']}-M1"
    ordered = [m.event["type"].split(".")[-2] for m in sorted(grant_events(),
                                                              key=lambda m: m.offset)]
    assert ordered == ["awarded", "released"]  # one partition: award before release


def distribution_event(kind: str, grant_id: str | None, gross: int, pool: int,
                       distribution_id: str) -> bytes:
    """ipshare's event as docs/asyncapi.yaml has it (a reversal negates every amount)."""
    sign = -1 if kind == "reversed" else 1
    now = datetime.now(UTC).isoformat()
    data = {"distribution_id": distribution_id, "agreement_id": f"a-{distribution_id}",
            "asset_id": "asset-1", "institution_id": "HUST", "source_grant_id": grant_id,
            "reference": f"INV-{distribution_id}", "period": "2026-Q4",
            "gross_vnd": sign * gross, "costs_vnd": 0, "basis_vnd": sign * gross,
            "researcher_pool_vnd": sign * pool, "institution_vnd": sign * (gross - pool),
            "policy": {"researcher_share_bp": 3000, "basis": "gross", "version": 1},
            "lines": [{"payee_id": "r-lead", "payee_kind": "researcher",
                       "amount_vnd": sign * pool},
                      {"payee_id": "HUST", "payee_kind": "institution",
                       "amount_vnd": sign * (gross - pool)}],
            "in_kind": False, "posted_at": now}
    if kind == "reversed":
        data |= {"reversal_id": f"r-{distribution_id}", "reason": "issued twice",
                 "reversed_at": now}
    return cloudevent.encode(cloudevent.build(
        service="ipshare", type_=f"vn.gov.most.ipshare.distribution.{kind}.v1",
        subject=distribution_id, time=datetime.now(UTC), data=data))


def test_commercialisation_income_from_ipshare_events_counts_once_net_of_reversals(
    grants_service, kafka_server
):
    client, tokens = grants_service
    grant, pm = award_a_grant(client, tokens)
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap, acks="all")
    posted = distribution_event("posted", grant["id"], 1_000_000_007, 300_000_003, "d-1")
    second = distribution_event("posted", grant["id"], 500_000_000, 150_000_000, "d-2")
    reversed_ = distribution_event("reversed", grant["id"], 500_000_000, 150_000_000, "d-2")
    unknown = distribution_event("posted", str(uuid.uuid4()), 9_999, 3_000, "d-3")
    for value in (posted, posted, second, reversed_, unknown):  # `posted` delivered twice
        key = json.loads(value)["subject"].encode()  # ipshare keys by the distribution
        producer.send("ipshare.events.v1", key=key, value=value).get(timeout=30)
    producer.close()

    auditor = tokens.headers("aud-1", "auditor", org="SAV")

    def income():
        p = client.get("/v1/portfolio", headers=auditor,
                       params={"call_id": grant["call_id"]}).json()
        got = p["overall"]["commercialisation"]
        return got if got["distributions"] == 1 and got["gross_vnd"] else None

    assert wait_for(income, 30) == {"gross_vnd": 1_000_000_007, "researchers_vnd": 300_000_003,
                                "distributions": 1}
