"""One transaction per command: state, audit record, outbox events and idempotency key.

A handler loads, calls the domain, then::

    uow.record("call", call.id, "open", from_status="draft", to_status="open")
    uow.emit("call.opened", call.id, {...})
    return uow.commit(CallRead.model_validate(call))

Everything commits together or not at all; the relay is woken after the commit.

A handler is written against :class:`AbstractUnitOfWork` (``record``, ``emit``,
``insert``, ``commit``) and runs on any of its kinds: :class:`UnitOfWork` here (one
ORM session per request, each write executed as it is called), the hot path's
(``servicekit.hotpath``: everything queued and written in one round trip at the end),
or a test's in-memory fake.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from servicekit import audit, cloudevent, decisions, idempotency, outbox
from servicekit.auth import OptionalPrincipal, Principal
from servicekit.clock import business_date
from servicekit.db import reads_in_autocommit
from servicekit.domain_errors import DomainError
from servicekit.kit import Kit
from servicekit.openapi import answers
from servicekit.problems import Problem
from servicekit.responses import OrjsonResponse
from servicekit.telemetry import current_traceparent

_AS_IS = frozenset({str, int, float, bool, type(None)})


def jsonable(obj: Any) -> Any:
    """``jsonable_encoder(obj)``, with the same output, faster on what commands pass.

    Plain dicts, lists, tuples, scalars, datetimes and dates (the bulk of every response
    and event) are converted here; a pydantic model goes through ``model_dump(mode=
    "json")`` as in ``jsonable_encoder`` (whose walk over the dump changes nothing: it
    is plain JSON already, and pydantic field names cannot start with ``_``); anything
    else is handed to ``jsonable_encoder`` itself. Like it, dict keys starting with
    ``_sa`` are dropped.
    """
    kind = type(obj)
    if kind in _AS_IS:
        return obj
    if kind is dict:
        encoded = {}
        for key, value in obj.items():
            if type(key) is str:
                if key.startswith("_sa"):
                    continue
            else:
                key = jsonable_encoder(key)
            encoded[key] = jsonable(value)
        return encoded
    if kind is list or kind is tuple:
        return [jsonable(item) for item in obj]
    if kind is datetime or kind is date:
        return obj.isoformat()
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", by_alias=True)
    return jsonable_encoder(obj)


class AbstractUnitOfWork(ABC):
    """What a command handler writes through: ``record``, ``emit``, ``insert`` and
    ``commit``, stamped with one ``now`` and the caller (``principal``)."""

    def __init__(self, kit: Kit, principal: Principal | None,
                 claim: idempotency.IdempotencyClaim | None = None,
                 request_state: Any = None) -> None:
        self.kit = kit
        self.principal = principal
        self.claim = claim
        self.now: datetime = kit.clock.now()
        self._request_state = request_state
        self._events = 0

    @property
    def today(self) -> date:
        """The business day of :attr:`now` (the service's business time zone)."""
        return business_date(self.now, self.kit.settings.business_timezone)

    @property
    def actor(self) -> audit.Actor:
        if self.principal is None:
            return audit.Actor(id="anonymous", role="anonymous")
        # The role the route admitted the caller under (set by require_roles).
        role = getattr(self._request_state, "acting_role", None) or self.principal.acting_role(
            sorted(self.principal.roles)
        )
        return audit.Actor(id=self.principal.sub, role=role, org=self.principal.org)

    def record(
        self,
        aggregate_type: str,
        aggregate_id: str,
        action: str,
        *,
        from_status: str | None = None,
        to_status: str | None = None,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        new: bool = False,
    ) -> None:
        """Append to the aggregate's audit chain (who, when, what, why); ``new``: the
        aggregate is created by this command, and its chain starts here."""
        self._write(audit.AUDIT, [audit.chained(
            self._chain_reader(new), aggregate_type=aggregate_type,
            aggregate_id=aggregate_id, actor=self.actor, action=action, at=self.now,
            from_status=from_status, to_status=to_status, reason=reason,
            data=jsonable(data) if data is not None else None, new=new,
        )])

    def emit(self, name: str, subject: str, data: Any) -> str:
        """Stage ``vn.gov.most.<service>.<name>.v1`` in the outbox; returns the event id."""
        event = cloudevent.build(
            service=self.kit.name,
            type_=cloudevent.event_type(self.kit.name, name),
            subject=subject,
            data=jsonable(data),
            time=self.now,
            traceparent=current_traceparent(),
        )
        self._write(outbox.OUTBOX,
                    [outbox.staged(event, topic=self.kit.settings.topic, now=self.now)])
        self._events += 1
        return event.get_id()

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """INSERT ``rows`` (dicts with the same keys) into ``table``, in this command's
        transaction and in the order of the calls."""
        if rows:
            self._write(table, rows)

    def commit(self, body: Any, status_code: int = 200) -> OrjsonResponse:
        """Commit everything (with the Idempotency-Key's record of this answer) and
        answer ``body``."""
        payload = jsonable(body)
        if self.claim is not None and self.principal is not None:
            self._write(idempotency.IDEMPOTENCY, [idempotency.record(
                self.principal.sub, self.claim,
                idempotency.StoredResponse(status_code, payload), self.now,
            )])
        self._commit()
        return OrjsonResponse(payload, status_code=status_code)

    @abstractmethod
    def take_decision_number(self, register: str) -> decisions.DecisionNumber:
        """The next number of ``register`` for the business year of :attr:`now`, taken
        in this command's transaction (gap-free, never repeated: servicekit.decisions)."""

    @abstractmethod
    def _write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Write (or queue) ``rows`` into ``table``."""

    @abstractmethod
    def _chain_reader(self, new: bool) -> Session | None:
        """Where an audit chain's head is read (None: nowhere, the chain starts here)."""

    @abstractmethod
    def _commit(self) -> None:
        """Make everything written so far durable (or hand it to whoever does)."""


@cache
def _insert_of(table: Table) -> Any:
    return insert(table)


class UnitOfWork(AbstractUnitOfWork):
    """A command's transaction on one ORM session: each write is executed as it is
    called, and :meth:`commit` commits them with the session's own changes."""

    def __init__(self, kit: Kit, session: Session, principal: Principal | None,
                 claim: idempotency.IdempotencyClaim | None = None,
                 request_state: Any = None) -> None:
        super().__init__(kit, principal, claim, request_state)
        self.session = session

    @classmethod
    def consuming(cls, session: Session, consumer: str) -> UnitOfWork:
        """The unit of work of an event consumer's handler, on the session the inbox
        gives it (one of the kit's): the actor is ``system:<consumer>``, and its commit
        commits the inbox row with the effects."""
        kit: Kit = session.info["kit"]
        system = Principal(sub=f"system:{consumer}", name=consumer, org="",
                           roles=frozenset({audit.SYSTEM_ROLE}))
        return cls(kit, session, system)

    def take_decision_number(self, register: str) -> decisions.DecisionNumber:
        return decisions.take_number(self.session, register, self.today.year)

    def _write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self.session.execute(_insert_of(table), rows[0] if len(rows) == 1 else rows)

    def _chain_reader(self, new: bool) -> Session:
        return self.session

    def _commit(self) -> None:
        try:
            self.session.commit()
        except IntegrityError:
            # A 409 (problems.install), unless a concurrent request with the same key won:
            # get_uow looks for its answer first (idempotency.replay_if_won).
            self.session.rollback()
            raise
        if self._events:
            self.kit.wake_relay()


ClaimDep = Annotated[idempotency.IdempotencyClaim | None, Depends(idempotency.read_claim)]


@answers(409, 422, 503)
def get_uow(
    request: Request,
    principal: OptionalPrincipal,
    claim: ClaimDep,
) -> Iterator[UnitOfWork]:
    """The request's unit of work; a stored answer for its Idempotency-Key is replayed.

    The key is looked up before the command runs, and again if the command is refused
    with a 409 or a unique index refuses its writes (``idempotency.replay_if_won``).
    """
    kit: Kit = request.app.state.kit
    with kit.sessions() as session:
        keyed = claim is not None and principal is not None
        if keyed:
            stored = idempotency.lookup(session, principal.sub, claim)
            if stored is not None:
                raise idempotency.IdempotentReplay(stored)
        try:
            yield UnitOfWork(kit, session, principal, claim, request.state)
        except (Problem, DomainError, IntegrityError) as exc:
            if keyed and _conflict(exc):
                idempotency.replay_if_won(session, principal.sub, claim)
            raise


def _conflict(exc: Exception) -> bool:
    """A 409: the state the command found, or a unique index, refused it."""
    return isinstance(exc, IntegrityError) or exc.status == 409  # type: ignore[attr-defined]


@answers(503)
async def get_session(request: Request) -> AsyncIterator[Session]:
    """A read-only session for queries (:func:`~servicekit.db.read_session_factory`).

    Made and closed on the event loop, where neither does I/O on PostgreSQL: the
    connection is taken at the first query, in the route's own thread, and given back
    without a ``ROLLBACK`` (autocommit). A plain ``def`` dependency would cost two more
    thread-pool hops a request. On SQLite closing rolls back, in the thread pool.
    """
    kit: Kit = request.app.state.kit
    session = kit.read_sessions()
    try:
        yield session
    finally:
        if reads_in_autocommit(kit.engine):
            session.close()
        else:
            await run_in_threadpool(session.close)


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow)]
SessionDep = Annotated[Session, Depends(get_session)]


# The two below are ``async`` (no I/O): a plain ``def`` dependency runs in the thread pool,
# a hop per request.


async def get_now(request: Request) -> datetime:
    """``now`` from the service's injectable clock."""
    return request.app.state.kit.clock.now()


NowDep = Annotated[datetime, Depends(get_now)]


async def get_today(request: Request) -> date:
    """Today in the service's business time zone (Vietnam's by default)."""
    return request.app.state.kit.today()


TodayDep = Annotated[date, Depends(get_today)]
