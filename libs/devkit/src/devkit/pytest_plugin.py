"""pytest fixtures for the real PostgreSQL and Kafka of ``devkit.localservers``.

Enable with ``pytest_plugins = ["devkit.pytest_plugin"]`` in the root conftest.

- ``postgres_server`` / ``kafka_server`` / ``redis_server`` (session): the servers named
  by ``TEST_DATABASE_URL`` / ``TEST_KAFKA_BOOTSTRAP`` / ``TEST_REDIS_URL`` when set, else
  local ones started on first use and stopped at the end of the session.
- ``databases`` (session): fresh databases cloned from migrated templates.
- ``kafka_topic``: a fresh, uniquely named 3-partition topic per test.
- ``restartable_kafka``: the session's broker, for a test that kills and restarts it.
- ``restartable_postgres``: a PostgreSQL of the test's own, for a test that kills and
  restarts it (the session's server stays up for everyone else).
- ``key_dir`` (session) / ``tokens`` (session): the dev key pair's folder the apps under
  test trust, and a signer of tokens with it.
- ``clock``: a ``FixedClock`` at ``TEST_NOW`` per test.
- A failing test that used a local server gets the tail of its log in the report.

A conftest that needs another scope or instant overrides the fixture by its name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from devkit.localservers import (
    KafkaServer,
    PostgresServer,
    RedisServer,
    external_kafka,
    external_postgres,
    external_redis,
    log_tail,
    start_kafka,
    start_postgres,
    start_redis,
)
from devkit.testing import DatabaseFactory, Tokens
from servicekit.clock import FixedClock

LOG_TAIL_LINES = 80
# 09:00 UTC (16:00 in Hanoi) on 23 November 2026.
TEST_NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
Server = PostgresServer | KafkaServer | RedisServer
ServerT = TypeVar("ServerT", PostgresServer, KafkaServer, RedisServer)
_servers = pytest.StashKey[dict[str, Server]]()


def _remember(config: pytest.Config, fixture: str, server: Server) -> None:
    config.stash.setdefault(_servers, {})[fixture] = server


def _session_server(request: pytest.FixtureRequest, variable: str,
                    external: Callable[[str], ServerT], start: Callable[[], ServerT],
                    ) -> Iterator[ServerT]:
    """The server ``variable`` names when set, else a local one started here; stopped
    after the session."""
    address = os.environ.get(variable)
    server = external(address) if address else start()
    _remember(request.config, request.fixturename, server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """PostgreSQL for the session; create a database per test module with it."""
    yield from _session_server(request, "TEST_DATABASE_URL", external_postgres,
                               start_postgres)


@pytest.fixture(scope="session")
def kafka_server(request: pytest.FixtureRequest) -> Iterator[KafkaServer]:
    """Kafka for the session; use ``kafka_topic`` for a fresh topic."""
    yield from _session_server(request, "TEST_KAFKA_BOOTSTRAP", external_kafka, start_kafka)


@pytest.fixture
def restartable_kafka(kafka_server: KafkaServer) -> Iterator[KafkaServer]:
    """The session's broker, for a test that kills it (``kill()``, as ``kill -9`` does) and
    starts it again (``restart()``, same port and data). It runs again after the test.
    Skipped with an external broker, which this process cannot kill."""
    if not kafka_server.restartable:
        pytest.skip("an external broker (TEST_KAFKA_BOOTSTRAP) is not killed from here")
    yield kafka_server
    if not kafka_server.running:
        kafka_server.restart()


@pytest.fixture
def restartable_postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A PostgreSQL started for this test alone (about 2 s), which it may stop as a crash
    would (``kill()``) and start again (``restart()``, same port and data; every
    acknowledged commit kept); removed after the test. Local even when
    ``TEST_DATABASE_URL`` names a server."""
    server = start_postgres(crash_safe=True)
    _remember(request.config, "restartable_postgres", server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """Redis for the session (the gateway's shared store); tests use their own keys."""
    yield from _session_server(request, "TEST_REDIS_URL", external_redis, start_redis)


@pytest.fixture(scope="session")
def databases(postgres_server: PostgresServer) -> Iterator[DatabaseFactory]:
    """Fresh databases cloned from per-service templates migrated once per session."""
    factory = DatabaseFactory(postgres_server)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def kafka_topic(kafka_server: KafkaServer) -> Iterator[str]:
    """A new topic with 3 partitions, deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    kafka_server.create_topic(name, partitions=3)
    yield name
    kafka_server.delete_topic(name)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the dev key pair the apps under test trust (made on first use)."""
    return tmp_path_factory.mktemp("dev-keys")


@pytest.fixture(scope="session")
def tokens(key_dir: Path) -> Tokens:
    """Signs tokens with the dev key pair of ``key_dir``."""
    return Tokens(key_dir)


@pytest.fixture
def clock() -> FixedClock:
    """A clock standing at ``TEST_NOW`` until the test moves it."""
    return FixedClock(TEST_NOW)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Append the server log tails to the report of a failed test that used them."""
    report = yield
    if report.failed:
        used = getattr(item, "fixturenames", ())
        for fixture, server in item.config.stash.get(_servers, {}).items():
            if fixture in used and server.log_path is not None:
                report.sections.append(
                    (
                        f"{fixture} log (last {LOG_TAIL_LINES} lines of {server.log_path})",
                        log_tail(server.log_path, LOG_TAIL_LINES),
                    )
                )
    return report
