"""The outbox relay while the broker is killed (as ``kill -9`` does) and restarted under
load: every committed event is published, in order per aggregate, with no one stepping in;
while events wait, ``/ready`` (still 200) and ``/metrics`` say so."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from devkit.localservers import KafkaServer
from devkit.testing import Load, per_aggregate, read_topic, topic_size
from servicekit import cloudevent, outbox
from servicekit.bus import KafkaBus
from servicekit.kit import Kit
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings
from servicekit.telemetry import OUTBOX_AGE

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TYPE = "vn.gov.most.test.thing.happened.v1"
AGGREGATES = 7
OUTAGES = 3
DEGRADED_AFTER_S = 1.0
# Sends fail after this long, so an outage fails sends (and expires some in flight, the
# case that left kafka-python's producer unable to send again) within seconds.
DELIVERY_TIMEOUT_S = 3.0


class Committer:
    """Commits events to the outbox, as handlers do: five per transaction, event n for
    aggregate ``agg-{n % 7}``, waking the relay after each commit (a :class:`Load`'s
    step)."""

    def __init__(self, engine: Engine, kit: Kit, topic: str) -> None:
        self.engine, self.kit, self.topic = engine, kit, topic
        self.committed: list[str] = []  # event ids, once their transaction committed
        self._n = 0

    def __call__(self) -> None:
        ids = []
        with Session(self.engine) as session:
            for _ in range(5):
                now = datetime.now(UTC)
                event = cloudevent.build(service="test", type_=TYPE,
                                         subject=f"agg-{self._n % AGGREGATES}",
                                         data={"n": self._n}, time=now)
                outbox.stage(session, event, topic=self.topic, now=now)
                ids.append(event.get_id())
                self._n += 1
            session.commit()
        self.committed.extend(ids)
        self.kit.wake_relay()


@pytest.fixture
def service(kit_engine: Engine, restartable_kafka: KafkaServer, tmp_path: Path
            ) -> Iterator[tuple[TestClient, Kit]]:
    """A service app on the kit's tables, its relay running, on the restartable broker."""
    settings = ServiceSettings(
        service_name="relaytest",
        database_url=kit_engine.url.render_as_string(hide_password=False),
        kafka_bootstrap=restartable_kafka.bootstrap, dev_key_dir=tmp_path / "keys",
        relay_poll_seconds=0.1, relay_retry_max_seconds=1.0,
        relay_degraded_after_seconds=DEGRADED_AFTER_S, housekeeping_seconds=0,
    )
    bus = KafkaBus(restartable_kafka.bootstrap, client_id="relaytest",
                   delivery_timeout_seconds=DELIVERY_TIMEOUT_S)
    app = create_service_app(settings, title="relay test", description="", bus=bus)
    try:
        with TestClient(app) as client:
            yield client, app.state.kit
    finally:
        bus.close()


def test_every_committed_event_is_published_in_order_across_three_broker_crashes(
    service, kit_engine, restartable_kafka, kafka_topic
):
    client, kit = service
    while_waiting: list[tuple[dict[str, Any], float]] = []  # /ready body, metric
    after_restart: list[dict[str, Any]] = []

    load = Committer(kit_engine, kit, kafka_topic)
    with Load(load, pause=0.05, name="outbox-load"):
        for _ in range(OUTAGES):
            time.sleep(1.0)  # published as committed
            restartable_kafka.kill()
            while_waiting.append(poll(client, lambda body, age: "relay" in body["checks"]))
            restartable_kafka.restart()
            after_restart.append(poll(client, lambda body, _age: body["status"] == "ready")[0])
        time.sleep(1.0)
    deadline = time.monotonic() + 30
    while unsent(kit_engine) and time.monotonic() < deadline:
        time.sleep(0.2)

    for body, age in while_waiting:  # degraded, yet ready: the service takes commands
        assert body["status"] == "degraded"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["broker"].startswith("unreachable")
        assert body["checks"]["relay"].startswith("degraded: the oldest unsent event")
        assert age > DEGRADED_AFTER_S
    assert all(body["checks"] == {"database": "ok", "broker": "ok"} for body in after_restart)
    assert unsent(kit_engine) == 0
    assert metric(client) == 0

    reads = read_topic(restartable_kafka.bootstrap, kafka_topic,
                       expected=topic_size(restartable_kafka.bootstrap, kafka_topic))
    assert len(load.committed) > 200
    assert {r.event["id"] for r in reads} == set(load.committed)
    first_seen, partitions = per_aggregate(reads, lambda event: event["data"]["n"])
    for key, numbers in first_seen.items():
        assert numbers == sorted(numbers), f"{key} out of order"
        assert len(partitions[key]) == 1
    assert sum(len(numbers) for numbers in first_seen.values()) == len(load.committed)


def poll(client: TestClient, until: Callable[[dict[str, Any], float], bool],
         timeout: float = 30.0) -> tuple[dict[str, Any], float]:
    """``/ready``'s body and the outbox age metric, once ``until`` holds for them."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/ready")
        assert response.status_code == 200, response.text
        body, age = response.json(), metric(client)
        if until(body, age) or time.monotonic() > deadline:
            return body, age
        time.sleep(0.2)


def metric(client: TestClient) -> float:
    [family] = [f for f in text_string_to_metric_families(client.get("/metrics").text)
                if f.name == OUTBOX_AGE]
    [sample] = family.samples
    assert sample.labels == {"service": "relaytest"}
    return sample.value


def unsent(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox.OUTBOX)
                            .where(outbox.OUTBOX.c.sent_at.is_(None))).scalar_one()
