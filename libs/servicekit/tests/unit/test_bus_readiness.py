"""The Kafka bus's readiness check against a broker that accepts connections and never
answers (a hung or partitioned broker): it answers within its own bound, even while the
relay's thread is building a producer against that broker, and again after a check failed
on a client that had connected while the broker still answered."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from kafka.errors import KafkaTimeoutError

from servicekit.bus import KafkaBus


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A listening socket whose connections are accepted by the kernel, never answered."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_readiness_answers_in_its_bound_while_a_producer_waits_for_the_broker(
        silent_broker: str) -> None:
    bus = KafkaBus(silent_broker, client_id="ready-test", delivery_timeout_seconds=4)
    failures: list[Exception] = []

    def build_producer() -> None:  # as the relay does on its next publish
        try:
            bus.producer  # noqa: B018 - up to 4 s waiting for the broker's metadata
        except Exception as exc:  # noqa: BLE001 - the silent broker's timeout, kept
            failures.append(exc)

    building = threading.Thread(target=build_producer)
    building.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - kafka-python's timeout, whichever
            bus.ready()
        assert time.monotonic() - started < 2.5  # within the gateway's 2 s probe, nearly
    finally:
        building.join(15)
        bus.close()
    assert not building.is_alive() and failures  # the producer itself could not start


class ConnectedThenUnanswered:
    """The bus's admin client once its broker stopped answering: kafka-python would spend
    its 10 s connection set-up reconnecting it on every later check."""

    closed = False

    def list_topics(self) -> None:
        raise KafkaTimeoutError("no answer within 1.5 s")

    def close(self) -> None:
        self.closed = True


def test_after_a_failed_check_the_next_uses_a_new_client_within_the_same_bound(
        silent_broker: str) -> None:
    bus = KafkaBus(silent_broker, client_id="ready-test")
    stale = ConnectedThenUnanswered()
    bus._admin = stale  # type: ignore[assignment]
    with pytest.raises(KafkaTimeoutError):
        bus.ready()
    assert stale.closed
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - kafka-python's timeout, whichever
        bus.ready()
    assert time.monotonic() - started < 2.5
    bus.close()
