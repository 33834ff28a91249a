"""End to end over real Kafka and PostgreSQL, from a research result to a payment batch.

The grants and ipshare services run side by side, each on its own database, relays and
consumers in the background: a result registered on a grant becomes an ipshare asset of
the grant's institution (``grants.result.registered``); a licence on it earns income; the
``distribution.posted`` event is read both by grants (commercialisation income in the
portfolio) and by the reference finance consumer, which writes the payment batch.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import grants.app
import ipshare.app
from devkit.testing import Tokens, wait_for
from grants.settings import GrantsSettings
from ipshare.settings import IpshareSettings

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOPICS = ("grants.events.v1", "ipshare.events.v1", "grants.deadletter.v1",
          "ipshare.deadletter.v1")
FINANCE_CONSUMER = (Path(__file__).resolve().parents[2] / "examples" / "finance_consumer"
                    / "finance_consumer.py")
GROSS = 1_000_000_007


def finance_consumer():
    """The reference program, imported by path (it is an example, not a package)."""
    name = "finance_consumer"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FINANCE_CONSUMER)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def services(databases, kafka_server, tmp_path: Path):
    for topic in TOPICS:
        kafka_server.create_topic(topic, partitions=3)
    run = uuid.uuid4().hex[:8]
    common = {"kafka_bootstrap": kafka_server.bootstrap, "dev_key_dir": tmp_path / "keys",
              "migrate_on_start": False, "relay_poll_seconds": 0.1}
    grants_settings = GrantsSettings(
        database_url=databases.fresh("grants", grants.app.migrate),
        consumer_group=f"grants-{run}", **common)
    ipshare_settings = IpshareSettings(
        database_url=databases.fresh("ipshare", ipshare.app.migrate),
        consumer_group=f"ipshare-{run}", **common)
    with TestClient(grants.app.create_app(grants_settings)) as grants_client, \
            TestClient(ipshare.app.create_app(ipshare_settings)) as ipshare_client:
        yield grants_client, ipshare_client, Tokens(tmp_path / "keys"), run


def award_a_grant(client: TestClient, tokens: Tokens) -> dict:
    pm = tokens.headers("pm-1", "program_manager", org="MOST")
    lead = tokens.headers("r-lead", "researcher", org="HUST")
    call = client.post("/v1/calls", headers=pm, json={
        "title": "Mekong salinity", "budget_vnd": 5_000_000_000,
        "max_award_vnd": 1_000_000_000, "opens_at": "2026-01-01T00:00:00Z",
        "closes_at": "2030-01-01T00:00:00Z"}).json()
    assert client.post(f"/v1/calls/{call['id']}/open", headers=pm).status_code == 200
    application = client.post("/v1/applications", headers=lead, json={
        "call_id": call["id"], "title": "Salinity sensors", "abstract": "",
        "institution_id": "HUST", "requested_vnd": 1_000_000_000, "risk_level": "high",
        "team": [{"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                  "contribution_bp": 7000},
                 {"researcher_id": "r-two", "name": "Two", "role": "engineer",
                  "contribution_bp": 3000}],
        "milestones": [{"title": "Prototype", "deliverable": "D", "verification": "V",
                        "due_date": "2029-01-01", "tranche_bp": 10000}]}).json()
    assert client.post(f"/v1/applications/{application['id']}/submit",
                       headers=lead).status_code == 200
    for reviewer, org in (("rev-1", "VAST"), ("rev-2", "NAFOSTED")):
        assert client.post(f"/v1/applications/{application['id']}/reviews",
                           headers=tokens.headers(reviewer, "reviewer", org=org),
                           json={"scores": {"merit": 5}, "recommendation": "fund",
                                 "comment": "", "conflict_of_interest": False}
                           ).status_code == 201
    decided = client.post(f"/v1/applications/{application['id']}/decision", headers=pm,
                          json={"decision": "approve", "awarded_vnd": 1_000_000_000})
    assert decided.status_code == 200, decided.text
    return client.get(f"/v1/grants/{decided.json()['grant_id']}", headers=pm).json()


def test_a_grant_result_earns_income_that_reaches_a_payment_batch(services, kafka_server,
                                                                   tmp_path):
    grants_client, ipshare_client, tokens, run = services
    grant = award_a_grant(grants_client, tokens)
    lead = tokens.headers("r-lead", "researcher", org="HUST")
    result = grants_client.post(f"/v1/grants/{grant['id']}/results", headers=lead, json={
        "kind": "patent", "title": "Low-cost salinity sensor",
        "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
                    {"researcher_id": "r-two", "name": "Two", "contribution_bp": 3000}]})
    assert result.status_code == 201, result.text

    # grants → Kafka → ipshare: the result is now an asset of the grant's institution.
    office = tokens.headers("tto-1", "institution", org=grant["institution_id"])
    assets = wait_for(lambda: ipshare_client.get(
        "/v1/assets", headers=office, params={"source_grant_id": grant["id"]}
    ).json()["items"], 120)
    assert len(assets) == 1, "grants.result.registered did not become an ipshare asset"
    asset = assets[0]
    assert asset["institution_id"] == "HUST"
    assert asset["source_result_id"] == result.json()["id"]
    assert [(a["researcher_id"], a["contribution_bp"]) for a in asset["authors"]] == [
        ("r-lead", 7000), ("r-two", 3000)]

    agreement = ipshare_client.post(f"/v1/assets/{asset['id']}/agreements", headers=office,
                                    json={"kind": "licence", "counterparty": "Mekong Sensors JSC",
                                          "signed_on": "2026-11-01", "terms": "5 years"})
    assert agreement.status_code == 201, agreement.text
    posted = ipshare_client.post(
        f"/v1/agreements/{agreement.json()['id']}/income",
        headers={**office, "Idempotency-Key": f"inv-{run}"},
        json={"period": "2026-Q4", "gross_vnd": GROSS, "costs_vnd": 0,
              "reference": f"INV-{run}"})
    assert posted.status_code == 201, posted.text
    distribution = posted.json()
    assert distribution["source_grant_id"] == grant["id"]
    lines = [(ln["payee_id"], ln["payee_kind"], ln["amount_vnd"])
             for ln in distribution["lines"]]
    assert lines == [("r-lead", "researcher", 210_000_002), ("r-two", "researcher", 90_000_001),
                     ("HUST", "institution", 700_000_004)]

    # ipshare → Kafka → grants: the portfolio attributes the income to the grant.
    auditor = tokens.headers("aud-1", "auditor", org="SAV")

    def commercialisation():
        got = grants_client.get("/v1/portfolio", headers=auditor,
                                params={"call_id": grant["call_id"]}).json()
        income = got["overall"]["commercialisation"]
        return income if income["gross_vnd"] else None

    assert wait_for(commercialisation, 120) == {"gross_vnd": GROSS, "researchers_vnd": 300_000_003,
                                           "distributions": 1}, "grants missed the posting"

    # ipshare → Kafka → the ministry's finance system: one run of the reference consumer.
    out = tmp_path / "payments"

    def pay() -> int:
        return finance_consumer().main([
            "--bootstrap", kafka_server.bootstrap, "--out", str(out),
            "--group", f"finance-{run}", "--once", "--idle-seconds", "1"])

    assert pay() == 0
    [batch] = sorted(out.glob("batch-*.csv"))
    with open(batch, newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["payee_id", "payee_kind", "amount_vnd", "reference", "event_id",
                      "distribution_id"]
    ours = [r for r in rows if r[5] == distribution["id"]]  # the topic is shared
    assert [(r[0], r[1], int(r[2])) for r in ours] == lines
    assert sum(int(r[2]) for r in ours) == distribution["gross_vnd"] == GROSS
    assert {r[3] for r in ours} == {f"INV-{run}"}
    assert len({r[4] for r in ours}) == 1  # one event, the deduplication key

    # Running again pays nothing more.
    assert pay() == 0
    assert sorted(out.glob("batch-*.csv")) == [batch]

    # A reversal: the grant's income nets to zero, and the next batch claws the lines back.
    reversed_ = ipshare_client.post(f"/v1/distributions/{distribution['id']}/reverse",
                                    headers=office, json={"reason": "invoice cancelled"})
    assert reversed_.status_code == 200, reversed_.text
    assert wait_for(lambda: commercialisation() is None, 120), "grants missed the reversal"
    assert pay() == 0
    first, claw_back = sorted(out.glob("batch-*.csv"))
    assert first == batch
    with open(claw_back, newline="", encoding="utf-8") as f:
        _, *rows = list(csv.reader(f))
    ours = [r for r in rows if r[5] == distribution["id"]]
    assert [(r[0], r[1], int(r[2])) for r in ours] == [(p, k, -a) for p, k, a in lines]
