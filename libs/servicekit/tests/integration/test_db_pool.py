"""Pooled connections are kept, reused, and checked after sitting idle (only then)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from devkit.localservers import PostgresServer
from servicekit.db import create_db_engine
from servicekit.settings import ServiceSettings

pytestmark = pytest.mark.postgres


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def kill(url: str, pid: int) -> None:
    """What a server restart or a cut network does to a pooled connection."""
    other = create_db_engine(url)
    try:
        with other.connect() as conn:
            terminated = conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"),
                                      {"pid": pid}).scalar()
            assert terminated
    finally:
        other.dispose()


@pytest.fixture
def url(databases) -> str:
    return databases.fresh("pool", lambda _url: None)


def test_a_connection_that_died_while_idle_is_replaced_at_checkout(url):
    engine = create_db_engine(url, ping_after_idle=0.0)
    try:
        first = backend_pid(engine)
        kill(url, first)

        second = backend_pid(engine)  # the ping finds it dead: a new one, no error

        assert second != first
    finally:
        engine.dispose()


def test_a_connection_reused_at_once_is_not_pinged(url):
    engine = create_db_engine(url, ping_after_idle=3600)
    try:
        first = backend_pid(engine)
        kill(url, first)

        with pytest.raises(OperationalError):  # nothing was sent before the statement
            backend_pid(engine)
        assert backend_pid(engine) != first  # and the pool recovered by itself
    finally:
        engine.dispose()


def backend_pids_at_once(engine: Engine, n: int) -> set[int]:
    """The backends of ``n`` connections checked out at the same time."""
    conns = [engine.connect() for _ in range(n)]
    try:
        return {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in conns}
    finally:
        for conn in conns:
            conn.close()


def test_as_many_concurrent_users_as_the_pool_holds_reuse_the_same_sessions(url):
    # Connections beyond the pool size are closed when returned: under steady concurrency
    # above it every request would pay for a new database session.
    size = ServiceSettings().db_pool_size
    engine = create_db_engine(url, pool_size=size, max_overflow=5)
    try:
        first = backend_pids_at_once(engine, size)
        again = backend_pids_at_once(engine, size)

        assert len(first) == size
        assert again == first

        beyond = backend_pids_at_once(engine, size + 5)  # overflow: opened, then closed
        assert len(beyond - first) == 5
        assert backend_pids_at_once(engine, size) == first
    finally:
        engine.dispose()



def test_a_service_sizes_its_pool_from_its_settings(url, tmp_path):
    from servicekit.service import create_service_app

    settings = ServiceSettings(database_url=url, dev_key_dir=tmp_path / "keys",
                               db_pool_size=3, db_pool_overflow=0)
    engine = create_service_app(settings, title="t", description="d", background=False)\
        .state.kit.engine
    try:
        assert engine.pool.size() == 3
        assert len(backend_pids_at_once(engine, 3)) == 3
    finally:
        engine.dispose()


def test_connecting_to_a_stopped_server_is_given_up_after_the_pool_timeout(
    restartable_postgres: PostgresServer,
) -> None:
    # A stopped server (a frozen host) accepts the connection and never answers it;
    # libpq alone would wait 130 s.
    engine = create_db_engine(restartable_postgres.url("postgres"), pool_timeout=2.0)
    try:
        with ThreadPoolExecutor(1) as pool, restartable_postgres.paused():
            started = time.monotonic()
            connecting = pool.submit(engine.connect)
            with pytest.raises(OperationalError, match="timeout"):
                connecting.result(timeout=6).close()
            assert time.monotonic() - started < 3.0
    finally:
        engine.dispose()
