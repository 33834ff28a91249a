"""Hot write commands in two round trips: a batch of reads, a decision, a batch of writes.

A hot command is written as its **reads** (prebuilt Core SELECTs with their parameters)
and a **decision**, ``decide(uow, rows, *args)``, which does no I/O of its own: it gets
the rows of each read, checks, computes, queues what it writes on the unit of work
(:meth:`~servicekit.unit_of_work.UnitOfWork.insert`, ``record(..., new=True)``,
``emit``) and returns ``uow.commit(body, status)``.

On PostgreSQL, while the app's lifespan holds the pool (:func:`open_pool`),
:class:`PipelinedCommand` runs it on the event loop over an async psycopg connection in
pipeline mode, in one transaction:

1. ``BEGIN``, the first read, the Idempotency-Key lookup, the other reads: **one round
   trip**. The first read is meant to be the command's row lock (``FOR UPDATE``): the
   statements after it start once it holds the lock, each with a fresh snapshot, so a
   concurrent command on the same row has committed or not started, and a retry that
   waited on the lock finds the winner's key and replays its answer.
2. ``decide`` in Python.
3. The queued rows (:func:`~servicekit.unit_of_work.insert_statements`, usually one
   statement) and ``COMMIT``: **one round trip**.

No thread pool, no GIL hand-offs, no session. Posting an income took six round trips
and three thread hops before (see bench/README.md). A stored answer for the key is
replayed; a body that differs from the stored request is refused (422); a commit refused
by a unique index is replayed if a retry with the same key won, else answered 409: the
same as :func:`~servicekit.unit_of_work.get_uow` and ``UnitOfWork.commit``.

Elsewhere (SQLite, ``make run``), or without the lifespan's pool: the same statements in
the same order, one by one, in one worker thread, on a
:class:`~servicekit.unit_of_work.CoreSession`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from psycopg import AsyncConnection, AsyncPipeline
from psycopg import Error as PsycopgError
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Dialect, Engine, Executable
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from servicekit import idempotency
from servicekit.auth import Principal, authorize, check_roles, optional_principal
from servicekit.db import PING_AFTER_IDLE_SECONDS
from servicekit.unit_of_work import (
    CoreSession,
    PendingCommit,
    UnitOfWork,
    compiled,
    fetch_all,
    insert_statements,
    replay_if_won,
    replay_or_conflict,
    replay_response,
)

if TYPE_CHECKING:
    from servicekit.service import Kit

Read = tuple[Executable, dict[str, Any]]


class PipelinedCommand:
    """A hot ``async def`` write route's command: ``await command.run(reads, decide,
    *args)`` answers the request (see the module's docstring)."""

    def __init__(self, kit: Kit, principal: Principal,
                 claim: idempotency.IdempotencyClaim | None, request_state: Any) -> None:
        self._kit = kit
        self.principal = principal
        self._claim = claim
        self._request_state = request_state

    async def run(self, reads: Sequence[Read], decide: Callable[..., Any], *args: Any) -> Any:
        pool = self._kit.pipeline_pool
        if pool is None:
            return await run_in_threadpool(self._run_in_thread, reads, decide, args)
        return await self._run_pipelined(pool, reads, decide, args)

    def _statements(self, reads: Sequence[Read]) -> tuple[list[Read], int | None]:
        """The reads with the key's lookup after the first; the lookup's position."""
        if self._claim is None:
            return list(reads), None
        at = min(1, len(reads))
        lookup = idempotency.lookup_query(self.principal.sub, self._claim)
        return [*reads[:at], lookup, *reads[at:]], at

    def _stored(self, rows: list[list[Any]], at: int | None
                ) -> idempotency.StoredResponse | None:
        """Takes the key lookup's rows out of ``rows``: the stored answer, if any."""
        if at is None or self._claim is None:
            return None
        return idempotency.stored_response(rows.pop(at), self._claim)

    def _uow(self, session: Session | None) -> UnitOfWork:
        return UnitOfWork(self._kit, session, self.principal, self._claim,
                          self._request_state)

    async def _run_pipelined(self, pool: AsyncConnectionPool, reads: Sequence[Read],
                             decide: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        dialect = self._kit.engine.dialect
        statements, at = self._statements(reads)
        # Leaving the block on an exception rolls back (the pool's connection context).
        async with pool.connection() as conn:
            rows = await _fetch(conn, dialect, statements, begin=True)
            stored = self._stored(rows, at)
            if stored is not None:
                await conn.rollback()
                return replay_response(stored)
            uow = self._uow(None)
            pending: PendingCommit = decide(uow, rows, *args)
            try:
                await _commit(conn, dialect, pending.rows)
            except IntegrityError as exc:
                await conn.rollback()
                stored = None
                if self._claim is not None:  # autocommit: a statement of its own
                    lookup = idempotency.lookup_query(self.principal.sub, self._claim)
                    found = await _fetch(conn, dialect, [lookup], begin=False)
                    stored = idempotency.stored_response(found[0], self._claim)
                return replay_or_conflict(stored, exc)
        return uow.answer(pending.body, pending.status_code, pending.events)

    def _run_in_thread(self, reads: Sequence[Read], decide: Callable[..., Any],
                       args: tuple[Any, ...]) -> Any:
        statements, at = self._statements(reads)
        with self._kit.engine.connect() as conn:
            session = CoreSession(conn)
            rows = [fetch_all(session.connection(), statement, params)
                    for statement, params in statements]
            stored = self._stored(rows, at)
            if stored is not None:
                return replay_response(stored)
            try:
                # Stands in for a Session wherever the command takes one (duck-typed).
                return decide(self._uow(cast(Session, session)), rows, *args)
            except IntegrityError:  # the commit refused: did a retry with the key win?
                if self._claim is not None:
                    replay_if_won(session, self.principal, self._claim)
                raise


async def _fetch(conn: AsyncConnection, dialect: Dialect, statements: Sequence[Read], *,
                 begin: bool) -> list[list[Any]]:
    """Run ``statements`` (after ``BEGIN`` if ``begin``) in one round trip; their rows.

    An error surfaces when the batch's results come back, so it names the whole batch.
    """
    cursors = []
    sent = ["BEGIN"] if begin else []
    try:
        async with conn.pipeline() as pipeline:
            with sent_together(pipeline):
                if begin:
                    await conn.execute(b"BEGIN")
                for statement, params in statements:
                    sql, values = compiled(dialect, statement, params)
                    sent.append(sql)
                    cursor = conn.cursor(row_factory=namedtuple_row)
                    await cursor.execute(sql, values)
                    cursors.append(cursor)
        return [await cursor.fetchall() for cursor in cursors]
    except PsycopgError as exc:
        raise DBAPIError.instance("; ".join(sent), None, exc, PsycopgError) from exc


async def _commit(conn: AsyncConnection, dialect: Dialect,
                  rows: list[Any]) -> None:
    """INSERT the queued rows and ``COMMIT``, in one round trip."""
    statements = insert_statements(dialect, rows) if rows else []
    try:
        async with conn.pipeline() as pipeline:
            with sent_together(pipeline):
                for sql, params in statements:
                    await conn.execute(sql, params)
                await conn.execute(b"COMMIT")
    except PsycopgError as exc:
        sent = "; ".join([*(sql for sql, _ in statements), "COMMIT"])
        raise DBAPIError.instance(sent, None, exc, PsycopgError) from exc


# psycopg's pipeline hands each statement to libpq and flushes it to the socket as it is
# executed: one send() and two event-loop waits per statement. ``sent_together`` uses two
# of its internals to send them at once; checked here, and by the kit's tests.
_COMMUNICATE = getattr(AsyncPipeline, "_communicate_gen", None)


@contextmanager
def sent_together(pipeline: AsyncPipeline) -> Iterator[None]:
    """Inside the block, executing a statement in ``pipeline`` only queues it; at the
    pipeline's exit the queued statements and its Sync go to the server in one write.

    The same messages in the same order as without it, so the same results and errors;
    only the writes (and the event-loop waits between them) are fewer, and the server
    reads one batch instead of one statement at a time: less CPU on both sides
    (bench/README.md, fifth round). Nothing is sent before the block ends, so fetch
    results only after it. Without the psycopg internals it relies on
    (``AsyncPipeline._communicate_gen``, ``command_queue``: psycopg 3.2-3.3), it
    changes nothing.
    """
    communicate = _COMMUNICATE
    queue = getattr(pipeline, "command_queue", None)
    if communicate is None or queue is None:
        yield
        return

    def queue_only() -> Iterator[Any]:
        return
        yield  # a generator, as the method it stands in for

    def send_queued() -> Any:
        while queue:  # libpq buffers these; the Sync (last) flushes them all
            queue.popleft()()
        return (yield from communicate(pipeline))

    pipeline._communicate_gen = queue_only  # type: ignore[method-assign]
    try:
        yield
    finally:
        pipeline._communicate_gen = send_queued  # type: ignore[method-assign]


def pipelined_command(*roles: str) -> Callable[..., Any]:
    """The dependency of a hot ``async def`` write route: a :class:`PipelinedCommand`
    for a caller holding one of ``roles``.

    It does in one dependency what ``require_roles(...)`` and ``get_uow`` do in four
    (token, roles, Idempotency-Key, unit of work), in the same order and with the same
    errors: FastAPI's per-dependency cost is a visible share of a request that costs a
    few milliseconds. ``command.principal`` is the caller.
    """
    check_roles(roles)

    async def dependency(request: Request) -> PipelinedCommand:
        principal = authorize(request, await optional_principal(request), roles)
        claim = await idempotency.read_claim(request)
        return PipelinedCommand(request.app.state.kit, principal, claim, request.state)

    dependency.__name__ = f"command_for_{'_or_'.join(roles)}"
    return dependency


async def open_pool(engine: Engine, *, size: int, timeout: float,
                    name: str) -> AsyncConnectionPool:
    """An open pool of async autocommit connections to ``engine``'s PostgreSQL database.

    Autocommit: the commands send ``BEGIN`` and ``COMMIT`` themselves, inside their
    pipelines (psycopg would send its own ``BEGIN`` in a round trip of its own). A
    connection is pinged at checkout only after sitting idle for
    ``PING_AFTER_IDLE_SECONDS``, as the engine's pool does (``servicekit.db``). A
    checkout waits up to ``timeout`` seconds (then ``PoolTimeout``: a 503).
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
