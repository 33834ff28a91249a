"""The hot path elsewhere (SQLite, or before the app's lifespan opened the pool): the same
statements in the same order, on one of the engine's connections, in worker threads."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine, Table, insert

from servicekit import idempotency
from servicekit.hotpath.statements import Queued, Read


class ThreadedConnection:
    """A hot command's connection, opened at its first round trip and given back by
    :meth:`close`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    async def fetch(self, reads: Sequence[Read]) -> list[list[Any]]:
        """Begin, and run ``reads``; each read's rows."""
        def fetch() -> list[list[Any]]:
            conn = self._connection()
            return [list(conn.execute(statement, params).all())
                    for statement, params in reads]
        return await run_in_threadpool(fetch)

    async def commit(self, queued: Queued) -> None:
        """INSERT the queued rows and commit."""
        def commit() -> None:
            conn = self._connection()
            for table, rows in queued:
                conn.execute(_insert_of(table), rows[0] if len(rows) == 1 else rows)
            conn.commit()
        await run_in_threadpool(commit)

    async def replay_if_won(self, principal: str, claim: idempotency.IdempotencyClaim) -> None:
        """After a refused commit: :func:`servicekit.idempotency.replay_if_won`."""
        await run_in_threadpool(idempotency.replay_if_won, self._connection(), principal,
                                claim)

    async def close(self) -> None:
        """Roll back whatever is not committed and give the connection back."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await run_in_threadpool(conn.close)


@cache
def _insert_of(table: Table) -> Any:
    return insert(table)
