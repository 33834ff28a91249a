"""The hot path on PostgreSQL: each round trip is one psycopg pipeline on the event loop,
over an async connection from the pool the app's lifespan opens (:func:`open_pool`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from psycopg import AsyncConnection
from psycopg import Error as PsycopgError
from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError

from servicekit import idempotency
from servicekit.db import PING_AFTER_IDLE_SECONDS
from servicekit.hotpath.statements import Queued, Read, compiled, insert_statements

log = logging.getLogger(__name__)


class PipelinedConnection:
    """A hot command's connection, taken from ``pool`` at its first round trip and given
    back by :meth:`close`. Errors surface as the same SQLAlchemy exceptions as on the
    engine's connections, naming the statements of the round trip."""

    def __init__(self, pool: AsyncConnectionPool, dialect: Dialect) -> None:
        self._pool = pool
        self._dialect = dialect
        self._conn: AsyncConnection | None = None

    async def fetch(self, reads: Sequence[Read]) -> list[list[Any]]:
        """``BEGIN`` and ``reads``, in one round trip; each read's rows."""
        conn = self._conn = await self._pool.getconn()
        return await _fetch(conn, self._dialect, reads, begin=True)

    async def commit(self, queued: Queued) -> None:
        """INSERT the queued rows and ``COMMIT``, in one round trip."""
        conn = self._conn
        if conn is None:  # a command that read nothing
            conn = self._conn = await self._pool.getconn()
            await conn.execute(b"BEGIN")
        statements = insert_statements(self._dialect, queued) if queued else []
        try:
            async with conn.pipeline():
                for sql, params in statements:
                    await conn.execute(sql, params)
                await conn.execute(b"COMMIT")
        except PsycopgError as exc:
            sent = "; ".join([*(sql for sql, _ in statements), "COMMIT"])
            raise DBAPIError.instance(sent, None, exc, PsycopgError) from exc

    async def replay_if_won(self, principal: str, claim: idempotency.IdempotencyClaim) -> None:
        """After a refused commit: :func:`servicekit.idempotency.replay_if_won`."""
        conn = self._conn
        assert conn is not None
        await conn.rollback()
        [rows] = await _fetch(conn, self._dialect,
                              [idempotency.lookup_query(principal, claim)], begin=False)
        stored = idempotency.stored_response(rows, claim)
        if stored is not None:
            raise idempotency.IdempotentReplay(stored)

    async def close(self) -> None:
        """Roll back whatever is not committed and give the connection back."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await conn.rollback()
        except PsycopgError as exc:  # the pool replaces a connection in a bad state
            log.warning("rollback failed on %s: %s", conn, exc)
        finally:
            await self._pool.putconn(conn)


async def _fetch(conn: AsyncConnection, dialect: Dialect, reads: Sequence[Read], *,
                 begin: bool) -> list[list[Any]]:
    """Run ``reads`` (after ``BEGIN`` if ``begin``) in one round trip; their rows.

    An error surfaces when the batch's results come back, so it names the whole batch.
    """
    cursors = []
    sent = ["BEGIN"] if begin else []
    try:
        async with conn.pipeline():
            if begin:
                await conn.execute(b"BEGIN")
            for statement, params in reads:
                sql, values = compiled(dialect, statement, params)
                sent.append(sql)
                cursor = conn.cursor(row_factory=namedtuple_row)
                await cursor.execute(sql, values)
                cursors.append(cursor)
        return [await cursor.fetchall() for cursor in cursors]
    except PsycopgError as exc:
        raise DBAPIError.instance("; ".join(sent), None, exc, PsycopgError) from exc


async def open_pool(engine: Engine, *, size: int, timeout: float,
                    name: str) -> AsyncConnectionPool:
    """An open pool of async autocommit connections to ``engine``'s PostgreSQL database.

    Autocommit: the hot path sends ``BEGIN`` and ``COMMIT`` itself, inside its pipelines
    (psycopg would send its own ``BEGIN`` in a round trip of its own). A connection is
    pinged at checkout only after sitting idle for ``PING_AFTER_IDLE_SECONDS``, as the
    engine's pool does (``servicekit.db``). A checkout waits up to ``timeout`` seconds
    (then ``PoolTimeout``: a 503).
    """
    idle_since: WeakKeyDictionary[AsyncConnection, float] = WeakKeyDictionary()

    async def returned(conn: AsyncConnection) -> None:
        idle_since[conn] = time.monotonic()

    async def check(conn: AsyncConnection) -> None:
        since = idle_since.pop(conn, None)
        if since is not None and time.monotonic() - since >= PING_AFTER_IDLE_SECONDS:
            await conn.execute(b"SELECT 1")  # raises on a dead connection: replaced

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = AsyncConnectionPool(url, min_size=min(2, size), max_size=size, open=False,
                               timeout=timeout, name=name, kwargs={"autocommit": True},
                               reset=returned, check=check)
    await pool.open()
    return pool
