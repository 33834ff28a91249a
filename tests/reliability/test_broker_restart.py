"""The broker killed (as ``kill -9`` does) and started again, several times, while incomes
and milestone acceptances keep coming: nothing lost, nothing duplicated in effect, every
outbox row delivered with no one stepping in.

Built on the kit's broker-restart test (``libs/servicekit/tests/integration/
test_broker_restart.py``: the same broker fixture, load and per-aggregate reading), here
with the services themselves: ipshare and grants on PostgreSQL, their relays and
consumers running, commands over HTTP. Incomes post on an agreement whose asset came from
a grant's result, so each distribution also crosses back to grants' portfolio; the
milestone acceptances release tranches on grants' topic, in order per grant. Afterwards
the reference finance consumer pays each line once.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select

import grants.app
import ipshare.app
from devkit.localservers import KafkaServer
from devkit.testing import (
    DatabaseFactory,
    Load,
    Tokens,
    per_aggregate,
    read_topic,
    topic_size,
    wait_for,
)
from grants.models import IncomeRow
from grants.settings import GrantsSettings
from ipshare.models import DistributionRow
from ipshare.settings import IpshareSettings
from servicekit.outbox import OUTBOX

from .workload import Platform, income_body, pay, size

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

RESTARTS = size("BROKER_RESTARTS", 3)
UP_SECONDS = size("BROKER_UP_SECONDS", 2.0)  # load with the broker up, between outages
DOWN_SECONDS = size("BROKER_DOWN_SECONDS", 2.0)  # from the kill to the restart
GRANTS, MILESTONES = 2, size("BROKER_MILESTONES", 8)  # per grant
INCOME_PAUSE_S = 0.1
DRAIN_SECONDS = 90.0
TOPICS = ("grants.events.v1", "ipshare.events.v1", "grants.deadletter.v1",
          "ipshare.deadletter.v1")


@pytest.fixture
def services(databases: DatabaseFactory, restartable_kafka: KafkaServer, tmp_path: Path
             ) -> Iterator[tuple[TestClient, TestClient, Tokens, dict[str, str]]]:
    for topic in TOPICS:
        restartable_kafka.create_topic(topic, partitions=3)
    run = uuid.uuid4().hex[:8]
    common = {"kafka_bootstrap": restartable_kafka.bootstrap, "dev_key_dir": tmp_path / "keys",
              "migrate_on_start": False, "relay_poll_seconds": 0.1,
              "relay_retry_max_seconds": 1.0}
    urls = {"grants": databases.fresh("grants", grants.app.migrate),
            "ipshare": databases.fresh("ipshare", ipshare.app.migrate)}
    with TestClient(grants.app.create_app(GrantsSettings(
            database_url=urls["grants"], consumer_group=f"grants-{run}", **common))) as g, \
            TestClient(ipshare.app.create_app(IpshareSettings(
                database_url=urls["ipshare"], consumer_group=f"ipshare-{run}", **common))) as i:
        yield g, i, Tokens(tmp_path / "keys"), urls


class Incomes:
    """A load's step: one income on ``agreement_id`` with its reference as its
    Idempotency-Key; every answer must be a 201 (the broker is not on a command's path)."""

    def __init__(self, platform: Platform, agreement_id: str) -> None:
        self.platform, self.agreement_id = platform, agreement_id
        self.sent: list[str] = []
        self.acknowledged: dict[str, str] = {}  # reference → distribution id
        self._n = itertools.count()

    def __call__(self) -> None:
        reference = f"INV-{next(self._n)}"
        self.sent.append(reference)
        posted = self.platform.call("ipshare", "POST", f"/v1/agreements/{self.agreement_id}"
                                    "/income", self.platform.office, income_body(reference),
                                    expect=201, **{"Idempotency-Key": reference})
        self.acknowledged[reference] = posted["id"]


class Acceptances:
    """A load's step: accept the next reported milestone, grant after grant in turn, each
    grant's in order; False once every one is accepted."""

    def __init__(self, platform: Platform, grants_: list[dict[str, Any]]) -> None:
        self.platform = platform
        rounds = itertools.zip_longest(*[[(g["id"], m["id"]) for m in g["milestones"]]
                                         for g in grants_])
        self.todo = [step for round_ in rounds for step in round_ if step]
        self.accepted: list[tuple[str, str]] = []

    def __call__(self) -> bool:
        if len(self.accepted) == len(self.todo):
            return False
        grant_id, milestone_id = self.todo[len(self.accepted)]
        self.platform.call("grants", "POST",
                           f"/v1/grants/{grant_id}/milestones/{milestone_id}/accept",
                           self.platform.pm)
        self.accepted.append((grant_id, milestone_id))
        return True


def test_broker_restarts_under_load_lose_nothing_and_duplicate_no_effect(
    services, restartable_kafka: KafkaServer, tmp_path: Path, figures
):
    grants_client, ipshare_client, tokens, urls = services
    platform = Platform({"grants": grants_client, "ipshare": ipshare_client}, tokens)
    awarded = [platform.awarded_grant(MILESTONES) for _ in range(GRANTS)]
    asset = platform.asset_from_a_result(awarded[0])
    incomes = Incomes(platform, platform.agreement(asset["id"])["id"])
    acceptances = Acceptances(platform, awarded)
    acceptance_pause = (RESTARTS * (UP_SECONDS + DOWN_SECONDS)) / len(acceptances.todo)

    started = time.monotonic()
    with Load(incomes, pause=INCOME_PAUSE_S, name="incomes"), \
            Load(acceptances, pause=acceptance_pause, name="acceptances"):
        for _ in range(RESTARTS):
            time.sleep(UP_SECONDS)
            restartable_kafka.kill()
            time.sleep(DOWN_SECONDS)
            restartable_kafka.restart()
        time.sleep(UP_SECONDS)
    load_seconds = time.monotonic() - started
    while acceptances():  # the rest, if the load did not get through them all
        pass

    engines = {name: create_engine(url) for name, url in urls.items()}
    try:
        delivered = wait_for(lambda: not any(unsent(e) for e in engines.values()),
                             DRAIN_SECONDS)
        ours = set(incomes.acknowledged.values())
        attributed = wait_for(lambda: len(ours & set(income_rows(engines["grants"]))) ==
                              len(ours), DRAIN_SECONDS)
        distributions = Counter(references(engines["ipshare"]))
        portfolio = Counter(income_rows(engines["grants"]))
    finally:
        for engine in engines.values():
            engine.dispose()
    posted = events(restartable_kafka.bootstrap, "ipshare.events.v1", "distribution.posted",
                    lambda e: e["data"]["agreement_id"] == incomes.agreement_id)
    released = events(restartable_kafka.bootstrap, "grants.events.v1", "tranche.released",
                      lambda e: e["subject"] in {g["id"] for g in awarded})
    paid = pay(restartable_kafka.bootstrap, tmp_path / "payments")
    paid_ours = {key: n for key, n in paid.items() if key[0] in ours}
    balance = platform.trial_balance()

    posted_ids = Counter(r.event["data"]["reference"] for r in unique(posted))
    figures(restarts=RESTARTS, load_s=round(load_seconds, 1), incomes_sent=len(incomes.sent),
            acknowledged=len(incomes.acknowledged),
            effects_found=sum(1 for r in incomes.acknowledged if distributions[r] >= 1),
            duplicates=sum(n - 1 for n in distributions.values() if n > 1),
            lost=sum(1 for r in incomes.acknowledged if not distributions[r]),
            events_on_kafka=len(posted), redelivered_copies=len(posted) - len(unique(posted)),
            events_per_reference_max=max(posted_ids.values(), default=0),
            tranches_released=len(unique(released)), lines_paid=sum(paid_ours.values()))

    assert delivered, "outbox rows still unsent: the relay did not recover by itself"
    assert incomes.sent == list(incomes.acknowledged)
    assert {r: distributions[r] for r in incomes.acknowledged} == dict.fromkeys(
        incomes.acknowledged, 1)
    # On Kafka: one posting event per reference (redelivered copies share its id).
    assert posted_ids == Counter(dict.fromkeys(incomes.acknowledged, 1))
    # Back in grants: one portfolio row per distribution.
    assert attributed and {d: portfolio[d] for d in ours} == dict.fromkeys(ours, 1)
    # Tranches: one event per accepted milestone, in acceptance order per grant.
    by_grant, partitions = per_aggregate(released, lambda e: e["data"]["milestone_seq"])
    assert sorted(by_grant) == sorted(g["id"] for g in awarded)
    assert all(seqs == list(range(1, MILESTONES + 1)) for seqs in by_grant.values()), by_grant
    assert all(len(p) == 1 for p in partitions.values())
    # The finance consumer pays every line of every distribution once.
    assert all(n == 1 for n in paid_ours.values())
    assert {d for d, *_ in paid_ours} == ours and len(paid_ours) == 3 * len(ours)
    assert balance["total_vnd"] == 0


def unsent(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(OUTBOX)
                            .where(OUTBOX.c.sent_at.is_(None))).scalar_one()


def references(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(DistributionRow.reference)).scalars())


def income_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(IncomeRow.distribution_id)).scalars())


def events(bootstrap: str, topic: str, name: str, ours) -> list[Any]:
    """Every copy on ``topic`` of our events named ``name``, redeliveries included."""
    return [r for r in read_topic(bootstrap, topic, expected=topic_size(bootstrap, topic))
            if r.event["type"].endswith(f".{name}.v1") and ours(r.event)]


def unique(reads: list[Any]) -> list[Any]:
    """One read per CloudEvent id (what a consumer that drops redeliveries applies)."""
    return list({r.event["id"]: r for r in reads}.values())
