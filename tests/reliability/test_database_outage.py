"""A database outage of a few seconds: PostgreSQL stopped as a crash would stop it, then
started again, under a service that keeps running.

While it is down every request is answered at once with ``503 application/problem+json``
(``Retry-After``), the hot path (an income), an ordinary command (an asset) and a read
alike, and ``/ready`` says not ready (503, naming the database). Once it is back the
same process serves again, with no restart: a command refused during the outage, sent
again with its Idempotency-Key, is posted once, and the outbox relay publishes it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from devkit.localservers import KafkaServer, PostgresServer
from devkit.testing import Tokens, read_topic, topic_size
from ipshare.app import create_app, migrate
from ipshare.models import DistributionRow
from ipshare.settings import IpshareSettings
from servicekit.outbox import OUTBOX

from .workload import size

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

OUTAGE_SECONDS = size("DB_OUTAGE_SECONDS", 4.0)
# "At once": well within the 10 s a request may wait for a pooled connection.
FAST_SECONDS = 2.0
RECOVERY_SECONDS = 30.0  # for the relay to publish what waited
INST = "HUST"
AUTHORS = [{"researcher_id": "r-a", "name": "A", "contribution_bp": 7000},
           {"researcher_id": "r-b", "name": "B", "contribution_bp": 3000}]


@pytest.fixture
def ipshare(restartable_postgres: PostgresServer, kafka_server: KafkaServer, tmp_path: Path):
    kafka_server.create_topic("ipshare.events.v1", partitions=3)
    restartable_postgres.create_database("ipshare")
    url = restartable_postgres.url("ipshare")
    migrate(url)
    settings = IpshareSettings(
        database_url=url, kafka_bootstrap=kafka_server.bootstrap,
        dev_key_dir=tmp_path / "keys", migrate_on_start=False, relay_poll_seconds=0.1,
        relay_retry_max_seconds=1.0, consumer_group=f"ipshare-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(settings)) as client:
        yield client, Tokens(tmp_path / "keys"), url


def test_a_database_outage_is_answered_503_at_once_and_the_service_recovers_by_itself(
    ipshare, restartable_postgres: PostgresServer, kafka_server: KafkaServer, figures
):
    client, tokens, url = ipshare
    office = tokens.headers("off-1", "institution", org=INST)
    finance = tokens.headers("fin-1", "finance", org="MOF")
    asset = client.post("/v1/assets", headers=office, json={
        "kind": "patent", "title": "Salinity sensor", "authors": AUTHORS})
    assert asset.status_code == 201, asset.text
    agreement = client.post(f"/v1/assets/{asset.json()['id']}/agreements", headers=office,
                            json={"kind": "licence", "counterparty": "Viettel",
                                  "signed_on": "2026-11-01", "terms": "5% royalty"})
    assert agreement.status_code == 201, agreement.text
    income_path = f"/v1/agreements/{agreement.json()['id']}/income"

    def income(reference: str):
        return client.post(income_path, headers={**office, "Idempotency-Key": reference},
                           json={"period": "2026-Q4", "gross_vnd": 1_000_000_007,
                                 "costs_vnd": 0, "reference": reference})

    before = income("INV-before")
    assert before.status_code == 201, before.text
    distribution_path = f"/v1/distributions/{before.json()['id']}"
    requests = {
        "income": lambda n: income(f"INV-outage-{n}"),
        "asset": lambda n: client.post("/v1/assets", headers=office, json={
            "kind": "patent", "title": f"Outage {n}", "authors": AUTHORS}),
        "read": lambda _n: client.get(distribution_path, headers=finance),
        "ready": lambda _n: client.get("/ready"),
    }

    restartable_postgres.kill()
    down_at = time.monotonic()
    answers: list[tuple[str, int, str, float, dict]] = []
    n = 0
    try:
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            for name, send in requests.items():
                started = time.monotonic()
                response = send(n)
                answers.append((name, response.status_code,
                                response.headers.get("content-type", ""),
                                time.monotonic() - started, response.json()))
                if name != "ready":
                    assert response.headers.get("retry-after"), (name, response.headers)
            n += 1
            time.sleep(0.05)
    finally:
        restartable_postgres.restart()
    outage = time.monotonic() - down_at

    back_at = time.monotonic()
    while client.get("/ready").status_code != 200 and time.monotonic() - back_at < 30:
        time.sleep(0.1)
    ready_after = time.monotonic() - back_at
    retried = income("INV-outage-0")  # refused during the outage: now posted, once
    again = income("INV-outage-0")
    after = {name: send(n) for name, send in requests.items()}

    engine = create_engine(url)
    try:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while unsent(engine) and time.monotonic() < deadline:
            time.sleep(0.2)
        waiting = unsent(engine)
        with engine.connect() as conn:
            references = conn.execute(select(DistributionRow.reference)).scalars().all()
    finally:
        engine.dispose()
    topic = "ipshare.events.v1"
    published = [m.event["data"]["distribution_id"]
                 for m in read_topic(kafka_server.bootstrap, topic,
                                     expected=topic_size(kafka_server.bootstrap, topic))
                 if m.event["type"].endswith("distribution.posted.v1")]

    slowest = max(seconds for *_, seconds, _ in answers)
    refused = [a for a in answers if a[0] != "ready"]
    figures(outage_s=round(outage, 1), sent_during_outage=len(answers),
            answered_503=sum(a[1] == 503 for a in answers),
            slowest_answer_s=round(slowest, 2), ready_again_after_s=round(ready_after, 1),
            incomes_written_during_outage=sum(r.startswith("INV-outage-") for r in references)
            - 2, retried_and_posted_once=references.count("INV-outage-0"))
    assert refused and {(name, status, ctype) for name, status, ctype, *_ in refused} == {
        (name, 503, "application/problem+json") for name in ("income", "asset", "read")}
    assert all(body["type"].endswith("/unavailable") for *_, body in refused)
    ready_bodies = [body for name, *_, body in answers if name == "ready"]
    assert {a[1] for a in answers if a[0] == "ready"} == {503}
    assert all(body["checks"]["database"].startswith("unreachable") for body in ready_bodies)
    assert slowest < FAST_SECONDS, [(name, status, round(seconds, 2))
                                     for name, status, _, seconds, _ in answers
                                     if seconds >= FAST_SECONDS]

    assert retried.status_code == 201, retried.text
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == retried.json()["id"]
    assert [after[name].status_code for name in requests] == [201, 201, 200, 200]
    # Nothing refused during the outage was written; what was sent after it, once each.
    assert sorted(references) == sorted(["INV-before", "INV-outage-0", f"INV-outage-{n}"])
    assert waiting == 0, "the relay did not publish what was committed after the outage"
    assert published.count(retried.json()["id"]) == 1


def unsent(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(OUTBOX)
                            .where(OUTBOX.c.sent_at.is_(None))).scalar_one()
