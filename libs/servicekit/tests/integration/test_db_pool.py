"""Pooled connections are checked after sitting idle, and only then."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from servicekit.db import create_db_engine

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
