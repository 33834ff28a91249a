"""Hot reads: a busy read route's statements in one round trip, on the event loop.

A busy read route is an ``async def`` taking :data:`ReadsDep`, and loads what it shows
as a hot command loads its inputs (:class:`~.statements.Load`: prebuilt SELECTs and
what to make of their rows)::

    async def read_distribution(distribution_id: str, reads: ReadsDep, user: ...):
        loaded = await reads.load(repository.distribution_load(distribution_id))

On PostgreSQL, while the app's lifespan holds the pool (:func:`.pipeline.open_pool`),
the statements go out in one pipeline on an autocommit connection: one round trip, no
``BEGIN`` or ``ROLLBACK``, no thread hop, no session. Each statement reads its own
snapshot, as the statements of a READ COMMITTED transaction do. Elsewhere (SQLite,
``make run``) they run one by one on one of the engine's connections, in a worker
thread.

Rows have the statements' column names as attributes (``row.id``) and ``_asdict()``.
Values are the driver's on PostgreSQL: timestamps are aware but in the connection's
time zone (``servicekit.clock.as_utc`` makes them UTC), JSON is parsed, dates are dates.

An ordinary read route (``def``, ``servicekit.unit_of_work.SessionDep``) pays a thread
hop and the ORM session's bookkeeping: fine for most reads; this is for the busiest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from servicekit.hotpath.pipeline import _fetch
from servicekit.hotpath.statements import Load, Read
from servicekit.kit import Kit

T = TypeVar("T")


class Reads:
    """A request's hot reads (see the module's docstring)."""

    def __init__(self, kit: Kit) -> None:
        self._kit = kit

    async def load(self, load: Load[T]) -> T:
        """``load.make`` of the rows of each of ``load.reads``, read in one round trip."""
        return load.make(*await self.fetch(load.reads))

    async def fetch(self, reads: Sequence[Read]) -> list[list[Any]]:
        """The rows of each ``(statement, parameters)``, in order."""
        pool = self._kit.pipeline_pool
        if pool is None:
            return await run_in_threadpool(self._fetch_in_thread, reads)
        async with pool.connection() as conn:
            return await _fetch(conn, self._kit.engine.dialect, reads, begin=False)

    def _fetch_in_thread(self, reads: Sequence[Read]) -> list[list[Any]]:
        with self._kit.engine.connect() as conn:
            return [list(conn.execute(statement, params).all())
                    for statement, params in reads]


async def get_reads(request: Request) -> Reads:
    return Reads(request.app.state.kit)


ReadsDep = Annotated[Reads, Depends(get_reads)]
