"""Database engines and sessions: PostgreSQL through psycopg 3, or SQLite embedded.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing with
"database is locked" halfway through a command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


PING_AFTER_IDLE_SECONDS = 1.0


def connect_timeout(pool_timeout: float) -> int:
    """libpq's ``connect_timeout`` for a pool whose requests wait ``pool_timeout`` seconds
    for a connection: as long, in whole seconds from 2 to 10. Without it a server that
    accepts connections and never answers (stopped, a frozen host) holds each new one
    for libpq's 130 s."""
    return max(2, int(min(pool_timeout, 10)))


def create_db_engine(url: str, *, pool_size: int = 20, max_overflow: int = 10,
                     pool_timeout: float = 10.0, echo: bool = False,
                     ping_after_idle: float = PING_AFTER_IDLE_SECONDS) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        return _sqlite_engine(url, echo=echo)
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                           pool_timeout=pool_timeout, pool_use_lifo=True, echo=echo,
                           connect_args={"connect_timeout": connect_timeout(pool_timeout)})
    _ping_when_idle(engine, ping_after_idle)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling, paid only where it helps.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on *every* checkout. Here a pooled
    connection is pinged at checkout only when it sat idle for ``idle_seconds`` or more
    (a restarted or failed-over server, a connection cut by a firewall: what happens to
    idle connections); on a dead one the whole pool is invalidated and the checkout is
    retried on a new connection, as ``pool_pre_ping`` does. Under load connections are
    reused within milliseconds and nothing is sent; a server lost in that window fails
    the statements in flight, and SQLAlchemy invalidates the pool when it sees the
    disconnect.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as err:
            raise InvalidatePoolError(f"connection idle for {idle_seconds}s or more "
                                      f"is gone: {err}") from err


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine, info: dict[str, Any] | None = None
                    ) -> sessionmaker[Session]:
    """Sessions on ``engine``; each carries ``info`` (``Session.info``)."""
    return sessionmaker(engine, class_=Session, expire_on_commit=False, info=info)


def read_session_factory(engine: Engine, info: dict[str, Any] | None = None
                         ) -> sessionmaker[Session]:
    """Sessions for requests that only read.

    On PostgreSQL their connections are in autocommit: each statement runs in a
    transaction of its own, so a read pays no ``BEGIN`` and no ``ROLLBACK`` round trip
    (two of the four a two-statement read took), and closing the session does no I/O.
    At READ COMMITTED, PostgreSQL's default and the engine's, the statements of one
    transaction each take a fresh snapshot anyway, so a read sees what it saw before.
    Elsewhere (SQLite) the same sessions as :func:`session_factory`.
    """
    if reads_in_autocommit(engine):
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return session_factory(engine, info=info)


def reads_in_autocommit(engine: Engine) -> bool:
    """PostgreSQL: where :func:`read_session_factory` reads in autocommit."""
    return engine.dialect.name == "postgresql"


def ping(engine: Engine) -> None:
    """Raise unless the database answers."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
