"""The hot path's unit of work: read once, decide, write once (see the package's docstring).

Its answers are the ordinary unit of work's (``servicekit.unit_of_work.get_uow``): a
stored answer for the Idempotency-Key is replayed, a key sent with another body is
refused (422), a problem raised by the handler rolls everything back, a commit refused
by a unique index is replayed if a retry with the same key won and is a 409 otherwise,
and an unreachable database is a 503.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError

from servicekit import idempotency
from servicekit.auth import Principal, authorize, check_roles, optional_principal
from servicekit.decisions import DecisionNumber
from servicekit.hotpath.pipeline import PipelinedConnection
from servicekit.hotpath.statements import Load, Queued
from servicekit.hotpath.threaded import ThreadedConnection
from servicekit.kit import Kit
from servicekit.openapi import answers
from servicekit.unit_of_work import AbstractUnitOfWork

T = TypeVar("T")


class HotUnitOfWork(AbstractUnitOfWork):
    """A hot command's unit of work, used as ``async with uow:``.

    :meth:`load` is the first round trip. Inside the block the handler's ``insert``,
    ``record`` (new chains only: an existing chain's head is not among the reads),
    ``emit`` and ``commit`` queue rows; leaving the block writes them and commits, the
    second round trip. Leaving it on an exception, or without a ``commit``, writes
    nothing.
    """

    def __init__(self, kit: Kit, principal: Principal,
                 claim: idempotency.IdempotencyClaim | None, request_state: Any = None
                 ) -> None:
        super().__init__(kit, principal, claim, request_state)
        self.principal: Principal = principal
        self._queued: Queued = []
        self._committed = False
        self._link = (PipelinedConnection(kit.pipeline_pool, kit.engine.dialect)
                      if kit.pipeline_pool is not None else ThreadedConnection(kit.engine))

    async def __aenter__(self) -> HotUnitOfWork:
        return self

    async def load(self, load: Load[T]) -> T:
        """``BEGIN``, the load's reads and the Idempotency-Key's look-up after the first
        of them (once it holds the row lock: a retry that waited on it finds the key of
        the attempt it waited for), in one round trip; what ``load.make`` makes of the
        rows. A stored answer for the key is raised to be replayed."""
        reads = list(load.reads)
        at = None
        if self.claim is not None:
            at = min(1, len(reads))
            reads.insert(at, idempotency.lookup_query(self.principal.sub, self.claim))
        rows = await self._link.fetch(reads)
        if at is not None and self.claim is not None:
            stored = idempotency.stored_response(rows.pop(at), self.claim)
            if stored is not None:
                raise idempotency.IdempotentReplay(stored)
        return load.make(*rows)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc is None and self._committed:
                await self._send()
        finally:
            await self._link.close()

    async def _send(self) -> None:
        """The queued rows and ``COMMIT``; the relay is woken when events were staged."""
        try:
            await self._link.commit(self._queued)
        except IntegrityError:
            if self.claim is not None:
                await self._link.replay_if_won(self.principal.sub, self.claim)
            raise  # a 409 (servicekit.problems)
        if self._events:
            self.kit.wake_relay()

    def _write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self._queued.append((table, rows))

    def take_decision_number(self, register: str) -> DecisionNumber:
        raise RuntimeError("a hot unit of work takes no decision number: the register's "
                           "row lock would be taken after its reads")

    def _chain_reader(self, new: bool) -> None:
        if not new:
            raise RuntimeError("a hot unit of work starts new audit chains only "
                               "(record(..., new=True))")
        return None

    def _commit(self) -> None:
        self._committed = True


def hot_unit_of_work(*roles: str) -> Callable[[Request], Coroutine[Any, Any, HotUnitOfWork]]:
    """The dependency of a hot ``async def`` write route: a :class:`HotUnitOfWork` for a
    caller holding one of ``roles``.

    It does in one dependency what ``require_roles(...)`` and ``get_uow`` do in four
    (token, roles, Idempotency-Key, unit of work), in the same order and with the same
    errors: FastAPI's per-dependency cost is a visible share of a request that costs a
    few milliseconds.
    """
    check_roles(roles)

    @answers(401, 403, 409, 422, 503, token="required")
    async def dependency(request: Request) -> HotUnitOfWork:
        principal = authorize(request, await optional_principal(request), roles)
        claim = await idempotency.read_claim(request)
        return HotUnitOfWork(request.app.state.kit, principal, claim, request.state)

    dependency.__name__ = f"unit_of_work_for_{'_or_'.join(roles)}"
    return dependency
