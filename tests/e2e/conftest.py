"""Every event an end-to-end test makes the services emit follows the contract.

Around each test that uses the session's Kafka broker, the events topics
(``<service>.events.v1``) are read from where they stood before the test to where they
stand after it (the services' relays stopped), and each message must:

- parse with the CloudEvents SDK (``cloudevents.core.formats.json.JSONFormat().read``)
  as a CloudEvents 1.0 event;
- validate against its message's JSON Schema in ``docs/asyncapi.yaml`` (the message
  whose payload pins its ``type``; an undocumented type fails);
- come from its topic's service (``source`` ``/<service>``, ``type``
  ``vn.gov.most.<service>.…``), keyed by its ``subject``, its ``traceparent`` header the
  same as its extension attribute.

The counts are printed after the run ("event contract").
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

import pytest

from devkit.testing import AsyncApiMessages, contract_problems, repo_asyncapi

EVENT_TOPIC = re.compile(r"(grants|sandbox|ipshare)\.events\.v1")
SEEN: Counter[str] = Counter()
_MESSAGES: list[AsyncApiMessages] = []


def messages() -> AsyncApiMessages:
    if not _MESSAGES:
        _MESSAGES.append(AsyncApiMessages(repo_asyncapi()))
    return _MESSAGES[0]


def _positions(bootstrap: str) -> dict[Any, int]:
    """End offset of every partition of every events topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for topic in consumer.topics()
                      if EVENT_TOPIC.fullmatch(topic)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return dict(consumer.end_offsets(partitions)) if partitions else {}
    finally:
        consumer.close()


def _read_between(bootstrap: str, before: dict[Any, int], after: dict[Any, int],
                  timeout: float = 30.0) -> list[Any]:
    from kafka import KafkaConsumer

    wanted = {tp: end for tp, end in after.items() if end > before.get(tp, 0)}
    if not wanted:
        return []
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, before.get(tp, 0))
        records: list[Any] = []
        done: set[Any] = set()
        deadline = time.monotonic() + timeout
        while len(done) < len(wanted) and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for record in batch:
                    if record.offset < wanted[tp]:
                        records.append(record)
                    if record.offset >= wanted[tp] - 1:
                        done.add(tp)
        missing = {f"{tp.topic}/{tp.partition}" for tp in wanted if tp not in done}
        assert not missing, f"could not read the events written to {sorted(missing)}"
        return records
    finally:
        consumer.close()


def problems_of(record: Any) -> list[str]:
    """What is wrong with one Kafka message of an events topic (nothing: [])."""
    found = contract_problems(messages(), record.topic, record.key, record.value,
                              dict(record.headers or []))
    if not found:
        SEEN[json.loads(record.value)["type"]] += 1
    where = f"{record.topic}/{record.partition}@{record.offset}"
    return [f"{where}: {problem}" for problem in found]


@pytest.fixture(autouse=True)
def every_event_follows_the_contract(request: pytest.FixtureRequest):
    if "kafka_server" not in request.fixturenames:
        yield
        return
    bootstrap = request.getfixturevalue("kafka_server").bootstrap
    before = _positions(bootstrap)
    yield
    records = _read_between(bootstrap, before, _positions(bootstrap))
    found = [problem for record in records for problem in problems_of(record)]
    assert not found, "events off the contract:\n" + "\n".join(found)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SEEN:
        terminalreporter.section("event contract")
        terminalreporter.write_line(
            f"{SEEN.total()} events emitted by the e2e tests, {len(SEEN)} types, each read "
            "by the CloudEvents SDK and valid against docs/asyncapi.yaml")
        for event_type, count in sorted(SEEN.items()):
            terminalreporter.write_line(f"  {count:4d}  {event_type}")
