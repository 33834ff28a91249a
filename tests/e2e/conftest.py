"""Every event an end-to-end test makes the services emit follows the contract.

Around each test that uses the session's Kafka broker, the events topics
(``<service>.events.v1``) are read from where they stood before the test to where they
stand after it (the services' relays stopped); a test on ``make stack`` reads its
stack's own topics from the beginning with the ``event_contract`` fixture
(``EventContract.written``). Either way each message must
(``devkit.testing.contract_problems``):

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

import pytest

from devkit.testing import EventContract

CONTRACT = EventContract()


@pytest.fixture
def event_contract() -> EventContract:
    return CONTRACT


@pytest.fixture(autouse=True)
def every_event_follows_the_contract(request: pytest.FixtureRequest):
    if "kafka_server" not in request.fixturenames:
        yield
        return
    bootstrap = request.getfixturevalue("kafka_server").bootstrap
    before = CONTRACT.ends(bootstrap)
    yield
    CONTRACT.check(bootstrap, before, CONTRACT.ends(bootstrap))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CONTRACT.seen:
        terminalreporter.section("event contract")
        terminalreporter.write_line(
            f"{CONTRACT.seen.total()} events emitted by the e2e tests, "
            f"{len(CONTRACT.seen)} types, each read by the CloudEvents SDK and valid "
            "against docs/asyncapi.yaml")
        for event_type, count in sorted(CONTRACT.seen.items()):
            terminalreporter.write_line(f"  {count:4d}  {event_type}")
