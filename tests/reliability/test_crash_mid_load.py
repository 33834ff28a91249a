"""``kill -9`` of ipshare, grants and the sandbox at random moments while incomes,
milestone acceptances and pilot reports come in through the gateway.

The local stack (``devkit.stack``: the gateway and each service as processes of their
own under the supervisor that restarts a killed one, on PostgreSQL and Kafka) takes
three streams of commands through its gateway, each command sent until it is answered:
again after no answer or a 502/503/504, with the same Idempotency-Key. Meanwhile a
service worker that is serving is killed (``SIGKILL``) at random moments. Afterwards:

- every acknowledged command has exactly one effect: one distribution per income
  reference, one accepted milestone and released tranche per acceptance, one report
  per pilot period; nothing sent is missing, nothing is doubled;
- on Kafka, one event per effect, counted by business key and by CloudEvent id across
  the topic (redelivered copies share their id);
- every distribution reaches grants' portfolio once, the trial balance is 0, and the
  reference finance consumer pays each line once.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select

from devkit.localservers import KafkaServer, PostgresServer
from devkit.testing import Load, StackRun, Tokens, read_topic, topic_size, wait_for
from grants.models import IncomeRow
from ipshare.models import DistributionRow
from sandbox.app import create_app as create_sandbox
from sandbox.app import run_scheduler
from sandbox.models import ReportRow
from sandbox.settings import SandboxSettings
from servicekit.clock import FixedClock
from servicekit.outbox import OUTBOX

from .workload import (
    Platform,
    approved_pilot,
    income_body,
    pay,
    quarters_over,
    report_body,
    size,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.timeout(900)]

LOAD_SECONDS = size("CRASH_LOAD_SECONDS", 30.0)  # the window the kills fall in
KILLS = size("CRASH_KILLS", 6)
INCOMES = size("CRASH_INCOMES", 120)
ACCEPTANCES = size("CRASH_ACCEPTANCES", 24)  # over two grants
REPORTS = size("CRASH_REPORTS", 16)  # 16 quarters a pilot
SEED = size("CRASH_SEED", random.SystemRandom().randrange(10**6))
KILLED = ("ipshare", "grants", "sandbox")
RETRIED = {502, 503, 504}  # the gateway's answers when the service did not answer
ANSWER_DEADLINE_S = 180.0  # per command, retries included
SETTLE_SECONDS = 180.0  # for restarted workers, relays and consumers to catch up


@pytest.fixture
def stack(postgres_server: PostgresServer, kafka_server: KafkaServer) -> Iterator[StackRun]:
    """The local stack on the session's PostgreSQL and Kafka, its gateway's limits set
    above what the test's scripted users send, and its upstream timeout short enough that
    a request left in a killed worker's socket comes back to the client to retry."""
    with StackRun.started({
            "STACK_DATABASE_URL": postgres_server.dsn(postgres_server.admin_db),
            "STACK_KAFKA_BOOTSTRAP": kafka_server.bootstrap,
            "STACK_WORKERS_IPSHARE": "2", "STACK_WORKERS_GRANTS": "1",
            "STACK_WORKERS_SANDBOX": "1", "STACK_WORKERS_GATEWAY": "1",
            "GATEWAY_RATE_LIMIT_WRITE_PER_SUBJECT": "1000/second",
            "GATEWAY_RATE_LIMIT_WRITE_PER_ADDRESS": "1000/second",
            "GATEWAY_RATE_LIMIT_READ_PER_SUBJECT": "1000/second",
            "GATEWAY_RATE_LIMIT_READ_PER_ADDRESS": "1000/second",
            "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "20"}) as running:
        yield running


@dataclass
class Command:
    method: str
    path: str
    body: Any
    key: str  # its Idempotency-Key, and the business key its effect is found by
    status: int | None = None  # the answer, once there is one
    attempts: int = 0
    replayed: bool = False
    answer: Any = None


@dataclass
class Stream:
    """A user sending ``commands`` one after another through the gateway, each until it
    is answered (a :class:`Load`'s step; False once all are)."""

    http: httpx.Client
    who: dict[str, str]
    commands: list[Command]
    expect: int
    done: int = 0
    retries: Counter[str] = field(default_factory=Counter)

    def __call__(self) -> bool:
        if self.done == len(self.commands):
            return False
        command = self.commands[self.done]
        deadline = time.monotonic() + ANSWER_DEADLINE_S
        while command.status is None and time.monotonic() < deadline:
            command.attempts += 1
            try:
                response = self.http.request(command.method, command.path, json=command.body,
                                             headers={**self.who,
                                                      "Idempotency-Key": command.key})
            except httpx.TransportError as exc:
                self.retries[type(exc).__name__] += 1
                time.sleep(0.5)
                continue
            if response.status_code in RETRIED:
                self.retries[str(response.status_code)] += 1
                time.sleep(0.5)
                continue
            command.status, command.answer = response.status_code, response.json()
            command.replayed = response.headers.get("idempotent-replayed") == "true"
        self.done += 1
        return True

    @property
    def acknowledged(self) -> list[Command]:
        return [c for c in self.commands if c.status == self.expect]


@dataclass
class Killer:
    """Kills a serving worker of one of ``KILLED``, chosen at random, at each of ``times``
    (seconds from its start): a :class:`Load`'s step, False once done. A worker is killed
    at most three times (the supervisor gives up after five exits in a row)."""

    stack: StackRun
    rng: random.Random
    times: list[float]
    started: float = field(default_factory=time.monotonic)
    killed: list[tuple[float, str, int]] = field(default_factory=list)
    per_worker: Counter[tuple[str, int]] = field(default_factory=Counter)

    def __call__(self) -> bool:
        if len(self.killed) == len(self.times):
            return False
        time.sleep(max(0.0, self.started + self.times[len(self.killed)] - time.monotonic()))
        for service in self.rng.sample(KILLED, len(KILLED)):
            # The supervisor's state may still name a worker killed a moment ago.
            serving = [w for w in self.stack.workers(service) if w["state"] == "serving"
                       and w["pid"] not in {pid for *_, pid in self.killed}
                       and self.per_worker[(service, w["index"])] < 3]
            if serving:
                worker = min(serving, key=lambda w: self.per_worker[(service, w["index"])])
                os.kill(worker["pid"], signal.SIGKILL)
                self.per_worker[(service, worker["index"])] += 1
                self.killed.append((time.monotonic() - self.started, service, worker["pid"]))
                return True
        time.sleep(0.5)  # nothing serving right now: try again
        return True


def test_services_killed_mid_load_leave_every_acknowledged_command_with_one_effect(
    stack: StackRun, kafka_server: KafkaServer, tmp_path: Path, figures
):
    settings = stack.settings()
    tokens = Tokens(Path(settings["DEV_KEY_DIR"]))
    prefixes = {name: f"/{name}" for name in KILLED}
    http = httpx.Client(base_url=settings["GATEWAY_URL"], timeout=30.0)
    platform = Platform(dict.fromkeys(KILLED, http), tokens, prefixes)
    run = uuid.uuid4().hex[:8]

    # What the commands act on: reported milestones, an agreement on a grant's result,
    # pilots whose past quarters are over.
    awarded = [platform.awarded_grant(ACCEPTANCES // 2), platform.awarded_grant(
        ACCEPTANCES - ACCEPTANCES // 2)]
    agreement = platform.agreement(platform.asset_from_a_result(awarded[0])["id"])
    pilots = pilots_with_quarters_over(settings, tokens, REPORTS, run)

    incomes = Stream(httpx.Client(base_url=settings["GATEWAY_URL"], timeout=30.0),
                     platform.office, [
        Command("POST", f"/ipshare/v1/agreements/{agreement['id']}/income",
                income_body(f"INV-{run}-{n}"), f"INV-{run}-{n}") for n in range(INCOMES)],
        expect=201)
    acceptances = Stream(httpx.Client(base_url=settings["GATEWAY_URL"], timeout=30.0),
                         platform.pm, [
        Command("POST", f"/grants/v1/grants/{g['id']}/milestones/{m['id']}/accept", None,
                f"{g['id']}/{m['id']}")
        for round_ in itertools.zip_longest(*[[(g, m) for m in g["milestones"]]
                                              for g in awarded])
        for g, m in filter(None, round_)], expect=200)
    reports = Stream(httpx.Client(base_url=settings["GATEWAY_URL"], timeout=30.0),
                     tokens.headers(f"owner-{run}", "sandbox_applicant", org=run), [
        Command("POST", f"/sandbox/v1/pilots/{pilot}/reports", report_body(period),
                f"{pilot}/{period}") for pilot, period in pilots], expect=201)
    streams = {"incomes": incomes, "acceptances": acceptances, "reports": reports}
    rng = random.Random(SEED)
    killer = Killer(stack, rng, sorted(rng.uniform(1.0, LOAD_SECONDS - 1.0)
                                       for _ in range(KILLS)))

    started = time.monotonic()
    with ExitStack() as running:
        running.enter_context(Load(killer, name="killer"))
        for name, s in streams.items():
            running.enter_context(Load(s, pause=LOAD_SECONDS / len(s.commands), name=name))
        wait_for(lambda: all(s.done == len(s.commands) for s in streams.values()),
                 LOAD_SECONDS + len(KILLED) * ANSWER_DEADLINE_S, pause=0.5)
    load_seconds = time.monotonic() - started

    engines = {name: create_engine(settings[f"{name.upper()}_DATABASE_URL"])
               for name in KILLED}
    try:
        serving = wait_for(lambda: all(w["state"] == "serving" for name in KILLED
                                       for w in stack.workers(name)), SETTLE_SECONDS)
        delivered = wait_for(lambda: not any(unsent(e) for e in engines.values()),
                             SETTLE_SECONDS)
        distribution_ids = {c.answer["id"] for c in incomes.acknowledged}
        attributed = wait_for(lambda: distribution_ids <= set(
            column(engines["grants"], IncomeRow.distribution_id)), SETTLE_SECONDS)
        distributions = Counter(column(engines["ipshare"], DistributionRow.reference))
        portfolio = Counter(column(engines["grants"], IncomeRow.distribution_id))
        filed = Counter(f"{p}/{q}" for p, q in zip(
            column(engines["sandbox"], ReportRow.pilot_id),
            column(engines["sandbox"], ReportRow.period), strict=True))
    finally:
        for engine in engines.values():
            engine.dispose()
    bootstrap = kafka_server.bootstrap
    posted = events(bootstrap, "ipshare", "distribution.posted",
                    lambda e: e["data"]["agreement_id"] == agreement["id"],
                    lambda e: e["data"]["reference"])
    released = events(bootstrap, "grants", "tranche.released",
                      lambda e: e["subject"] in {g["id"] for g in awarded},
                      lambda e: f"{e['data']['grant_id']}/{e['data']['milestone_id']}")
    reported = events(bootstrap, "sandbox", "pilot.report_filed",
                      lambda e: e["subject"] in {p for p, _ in pilots},
                      lambda e: f"{e['data']['pilot_id']}/{e['data']['period']}")
    grants_now = {g["id"]: platform.call("grants", "GET", f"/v1/grants/{g['id']}", platform.pm)
                  for g in awarded}
    accepted = Counter(f"{g}/{m['id']}" for g, grant in grants_now.items()
                       for m in grant["milestones"] if m["status"] == "accepted")
    paid = {k: n for k, n in pay(bootstrap, tmp_path / "payments").items()
            if k[0] in distribution_ids}
    balance = platform.trial_balance()
    http.close()
    for s in streams.values():
        s.http.close()

    effects = {"incomes": distributions, "acceptances": accepted, "reports": filed}
    on_kafka = {"incomes": posted, "acceptances": released, "reports": reported}
    for name, s in streams.items():
        sent = {c.key for c in s.commands}
        found = {k: n for k, n in effects[name].items() if k in sent}
        figures(stream=name, sent=len(s.commands), acknowledged=len(s.acknowledged),
                answered_otherwise=sum(c.status not in (None, s.expect) for c in s.commands),
                unanswered=sum(c.status is None for c in s.commands),
                retried=sum(c.attempts > 1 for c in s.commands),
                replayed=sum(c.replayed for c in s.commands),
                effects_found=len(found), duplicates=sum(n - 1 for n in found.values()),
                lost=sum(1 for c in s.acknowledged if not found.get(c.key)),
                events_by_id=len(on_kafka[name].ids),
                events_doubled=sum(n - 1 for n in on_kafka[name].by_key.values() if n > 1),
                redelivered_copies=on_kafka[name].copies - len(on_kafka[name].ids))
    figures(seed=SEED, kills=len(killer.killed),
            killed=",".join(f"{svc}@{t:.0f}s" for t, svc, _ in killer.killed),
            load_s=round(load_seconds, 1), lines_paid=sum(paid.values()),
            trial_balance_vnd=balance["total_vnd"])

    assert len(killer.killed) == KILLS
    assert serving, "a killed worker was not restarted"
    assert delivered, "outbox rows still unsent: a relay did not recover by itself"
    for name, s in streams.items():
        keys = [c.key for c in s.commands]
        assert [c.status for c in s.commands] == [s.expect] * len(keys), name
        # One effect per acknowledged command, in the database and on Kafka (one
        # CloudEvent id per business key; its redelivered copies share it).
        assert {k: effects[name][k] for k in keys} == dict.fromkeys(keys, 1), name
        assert on_kafka[name].by_key == Counter(dict.fromkeys(keys, 1)), name
    assert sum(g["disbursed_vnd"] for g in grants_now.values()) == sum(
        m["tranche_vnd"] for g in grants_now.values() for m in g["milestones"])
    assert attributed and {d: portfolio[d] for d in distribution_ids} == dict.fromkeys(
        distribution_ids, 1)
    assert all(n == 1 for n in paid.values())
    assert {d for d, *_ in paid} == distribution_ids and len(paid) == 3 * len(distribution_ids)
    assert balance["total_vnd"] == 0


def pilots_with_quarters_over(settings: dict[str, str], tokens: Tokens, reports: int,
                              firm: str) -> list[tuple[str, str]]:
    """Pilots approved four years ago, for ``reports`` quarterly reports over by now:
    ``(pilot id, quarter)`` pairs. Approved on a sandbox app whose clock reads that day
    (on the stack's database; the stack's relay publishes its events), and started by
    that app's scheduler."""
    today = datetime.now(UTC).date()
    starts_on = date(today.year - 4, today.month, 1)
    ends_on = today + timedelta(days=180)  # within the sector's 60 months: still active
    quarters = quarters_over(starts_on, today)
    clock = FixedClock(datetime(starts_on.year, starts_on.month, 1, 3, tzinfo=UTC))
    app = create_sandbox(SandboxSettings(
        database_url=settings["SANDBOX_DATABASE_URL"], dev_key_dir=settings["DEV_KEY_DIR"],
        migrate_on_start=False), clock=clock, background=False)
    pairs: list[tuple[str, str]] = []
    owner = tokens.headers(f"owner-{firm}", "sandbox_applicant", org=firm)
    with TestClient(app) as client:
        while len(pairs) < reports:
            pilot = approved_pilot(client, tokens, starts_on, ends_on, firm)
            pairs += [(pilot, q) for q in quarters[:reports - len(pairs)]]

        def started() -> bool:  # the stack's scheduler may hold the job: then again
            run_scheduler(app.state.kit)
            return all(client.get(f"/v1/pilots/{p}", headers=owner).json()["status"] ==
                       "active" for p in {p for p, _ in pairs})

        assert wait_for(started, 60, pause=1.0), "the pilots did not start"
    return pairs


def unsent(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(OUTBOX)
                            .where(OUTBOX.c.sent_at.is_(None))).scalar_one()


def column(engine: Engine, attribute: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(attribute)).scalars())


@dataclass(frozen=True)
class OnKafka:
    by_key: Counter[str]  # business key → distinct CloudEvent ids
    ids: set[str]
    copies: int  # messages, redelivered copies included


def events(bootstrap: str, service: str, name: str, ours, key) -> OnKafka:
    """Our events named ``name`` across ``service``'s whole topic."""
    topic = f"{service}.events.v1"
    reads = [r.event for r in read_topic(bootstrap, topic,
                                         expected=topic_size(bootstrap, topic))
             if r.event["type"].endswith(f".{name}.v1") and ours(r.event)]
    unique = {e["id"]: e for e in reads}
    return OnKafka(Counter(key(e) for e in unique.values()), set(unique), len(reads))
