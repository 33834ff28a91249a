"""The hot path on PostgreSQL: each round trip is one psycopg pipeline on the event loop,
over an async connection from the pool the app's lifespan opens (:func:`open_pool`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from weakref import WeakKeyDictionary

from psycopg import AsyncConnection
from psycopg import Error as PsycopgError
from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError

from servicekit import idempotency
from servicekit.db import PING_AFTER_IDLE_SECONDS, connect_timeout
from servicekit.hotpath.statements import Queued, Read, compiled, insert_statements

log = logging.getLogger(__name__)


class PipelinedConnection:
    """A hot command's connection, taken from ``pool`` at its first round trip and given
    back by :meth:`close`. Errors surface as the same SQLAlchemy exceptions as on the
    engine's connections, naming the statements of the round trip."""

    def __init__(self, pool: HotPool, dialect: Dialect) -> None:
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


class HotPool:
    """The hot path's async connections (:func:`open_pool`): a psycopg pool, and what a
    request does while the database cannot be reached.

    psycopg's pool, once its connections are lost, queues each request until one of its
    own reconnection attempts succeeds (attempts backed off up to minutes apart) or the
    request's ``timeout`` passes: during an outage every request would wait that long for
    its 503, and after it until the pool's next attempt. Here a request that finds no
    connection waiting while the pool's last attempt to connect failed connects by itself
    instead: refused at once while the server is down (a 503 at once, as the engine's
    requests get), served on that connection (closed afterwards) once it is back, until
    the pool has connected again. A pooled connection idle for ``PING_AFTER_IDLE_SECONDS``
    is pinged first (a restarted server drops idle sessions); a dead one is given back,
    for the pool to replace, and the request connects by itself. Such connections of
    the requests' own are at most ``size`` at a time, as the pool's would be: a request
    finding them all taken waits up to ``timeout`` for one (then ``PoolTimeout``, a 503),
    so a burst after an outage does not open a session per request.
    """

    def __init__(self, conninfo: str, *, size: int, timeout: float, name: str) -> None:
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout(timeout)
        self._idle_since: WeakKeyDictionary[AsyncConnection, float] = WeakKeyDictionary()
        self._direct: set[AsyncConnection] = set()
        self._direct_slots = asyncio.Semaphore(size)
        self._timeout = timeout
        self.unreachable = False  # the pool's last attempt to connect failed

        hot_pool = self

        class Tracked(AsyncConnection):  # tells the pool's attempts to connect apart
            @classmethod
            async def connect(cls, *args: Any, **kwargs: Any) -> Any:
                try:
                    conn = await super().connect(*args, **kwargs)
                except PsycopgError:
                    hot_pool.unreachable = True
                    raise
                hot_pool.unreachable = False
                return conn

        async def returned(conn: AsyncConnection) -> None:
            self._idle_since[conn] = time.monotonic()

        self.pool = AsyncConnectionPool(
            conninfo, min_size=min(2, size), max_size=size, open=False, timeout=timeout,
            name=name, connection_class=Tracked,
            kwargs={"autocommit": True, "connect_timeout": self._connect_timeout},
            reset=returned)

    async def getconn(self) -> AsyncConnection:
        """A live connection: the pool's, or the request's own (see the class)."""
        if self.unreachable and not self.pool.get_stats().get("pool_available"):
            return await self._connect()
        conn = await self.pool.getconn()
        since = self._idle_since.pop(conn, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return conn
        try:
            await conn.execute(b"SELECT 1")
            return conn
        except PsycopgError as exc:
            log.info("a pooled connection idle since %.1f s is gone (%s)",
                     time.monotonic() - since, exc)
        await self.pool.putconn(conn)  # broken: the pool closes it and connects another
        return await self._connect()

    async def putconn(self, conn: AsyncConnection) -> None:
        if conn in self._direct:
            self._direct.discard(conn)
            self._direct_slots.release()
            await conn.close()
        else:
            await self.pool.putconn(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        conn = await self.getconn()
        try:
            yield conn
        finally:
            await self.putconn(conn)

    async def _connect(self) -> AsyncConnection:
        try:
            async with asyncio.timeout(self._timeout):
                await self._direct_slots.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no connection of its own within {self._timeout:g} s "
                              "while the pool reconnects") from None
        try:
            conn = await AsyncConnection.connect(self._conninfo, autocommit=True,
                                                 connect_timeout=self._connect_timeout)
        except BaseException:
            self._direct_slots.release()
            raise
        self._direct.add(conn)
        return conn

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    def get_stats(self) -> dict[str, int]:
        return self.pool.get_stats()


async def open_pool(engine: Engine, *, size: int, timeout: float, name: str) -> HotPool:
    """An open pool of async autocommit connections to ``engine``'s PostgreSQL database
    (:class:`HotPool`).

    Autocommit: the hot path sends ``BEGIN`` and ``COMMIT`` itself, inside its pipelines
    (psycopg would send its own ``BEGIN`` in a round trip of its own). A checkout waits
    up to ``timeout`` seconds for a connection of a busy pool (then ``PoolTimeout``: a
    503); one while the database cannot be reached is refused at once.
    """
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = HotPool(url, size=size, timeout=timeout, name=name)
    await pool.open()
    return pool
