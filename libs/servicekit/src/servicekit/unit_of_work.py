"""One transaction per command: state, audit record, outbox events and idempotency key.

A handler loads, calls the domain, then::

    uow.record("call", call.id, "open", from_status="draft", to_status="open")
    uow.emit("call.opened", call.id, {...})
    return uow.commit(CallRead.model_validate(call))

Everything commits together or not at all; the relay is woken after the commit.

A hot write path can hand its rows to :meth:`UnitOfWork.insert` instead of executing
INSERTs itself: from then on the command's audit record, events and idempotency record
are queued behind them, and :meth:`UnitOfWork.commit` writes the lot in one round trip
(one statement, :func:`write_rows`) on PostgreSQL, in the same order and transaction.

A unit of work without a session does no I/O at all: it queues everything, and its
:meth:`~UnitOfWork.commit` returns a :class:`PendingCommit` for whoever holds the
connection to write (:mod:`servicekit.pipelined`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import Connection, Dialect, Executable, Table, insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from servicekit import audit, cloudevent, decisions, idempotency, outbox
from servicekit.auth import OptionalPrincipal, Principal
from servicekit.clock import business_date
from servicekit.problems import Conflict
from servicekit.responses import OrjsonResponse
from servicekit.telemetry import current_traceparent

if TYPE_CHECKING:
    from servicekit.service import Kit

REPLAY_HEADER = "Idempotent-Replayed"

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


@dataclass(frozen=True)
class PendingCommit:
    """What a session-less unit of work's :meth:`~UnitOfWork.commit` leaves to write:
    its rows (the idempotency record among them), then the answer once they commit."""

    rows: list[tuple[Table, list[dict[str, Any]]]]
    body: Any
    status_code: int
    events: int


class UnitOfWork:
    def __init__(
        self,
        kit: Kit,
        session: Session | None,
        principal: Principal | None,
        claim: idempotency.IdempotencyClaim | None,
        request_state: Any = None,
    ) -> None:
        self.kit = kit
        self.session = session
        self.principal = principal
        self.claim = claim
        self.now: datetime = kit.clock.now()
        self._request_state = request_state
        self._staged_events = 0
        self._rows: list[tuple[Table, list[dict[str, Any]]]] = []

    @property
    def today(self) -> date:
        """The business day of :attr:`now` (the service's business time zone)."""
        return business_date(self.now, self.kit.settings.business_timezone)

    def take_decision_number(self, register: str) -> decisions.DecisionNumber:
        """The next number of ``register`` for the business year of :attr:`now`, taken
        in this command's transaction (gap-free, never repeated: servicekit.decisions)."""
        if self.session is None:
            raise RuntimeError("a decision number is taken in a transaction")
        self.flush()
        return decisions.take_number(self.session, register, self.today.year)

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
        """Append to the aggregate's audit chain (who, when, what, why)."""
        if self.session is None and not new:
            raise RuntimeError("a unit of work without a session only starts new chains")
        if self._rows and not new:
            self.flush()  # the chain's head may be among the queued rows
        values = audit.chained(
            self.session, aggregate_type=aggregate_type, aggregate_id=aggregate_id,
            actor=self.actor, action=action, at=self.now, from_status=from_status,
            to_status=to_status, reason=reason,
            data=jsonable(data) if data is not None else None, new=new,
        )
        self._write(audit.AUDIT, values)

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
                    outbox.staged(event, topic=self.kit.settings.topic, now=self.now))
        self._staged_events += 1
        return event.get_id()

    def commit(self, body: Any, status_code: int = 200) -> Any:
        """Commit everything (with the idempotency record) and answer ``body``.

        Without a session: queue the idempotency record and return the
        :class:`PendingCommit`.
        """
        payload = jsonable(body)
        if self.claim is not None and self.principal is not None:
            self._write(idempotency.IDEMPOTENCY, idempotency.record(
                self.principal.sub, self.claim,
                idempotency.StoredResponse(status_code, payload), self.now,
            ))
        if self.session is None:
            queued, self._rows = self._rows, []
            return PendingCommit(queued, payload, status_code, self._staged_events)
        try:
            self.flush()
            self.session.commit()
        except IntegrityError:
            # A 409 (problems.install), unless a concurrent request with the same key won:
            # whoever runs the unit of work looks for its answer first (replay_if_won).
            self.session.rollback()
            raise
        return self.answer(payload, status_code, self._staged_events)

    def answer(self, payload: Any, status_code: int, events: int) -> OrjsonResponse:
        """The response of a committed command; wakes the relay when it staged events."""
        if events:
            self.kit.wake_relay()
        return OrjsonResponse(payload, status_code=status_code)

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Queue INSERTs of ``rows`` (dicts with the same keys) into ``table``.

        They are written, in order, with everything the command writes after them, at
        :meth:`commit` (or :meth:`flush`): one round trip on PostgreSQL. A command reads
        before it queues; whatever the unit of work reads itself flushes first.
        """
        if rows:
            self._rows.append((table, rows))

    def flush(self) -> None:
        """Write the queued rows now."""
        if self._rows:
            if self.session is None:
                raise RuntimeError("a unit of work without a session writes at commit")
            queued, self._rows = self._rows, []
            write_rows(self.session.connection(), queued)

    def _write(self, table: Table, row: dict[str, Any]) -> None:
        if self._rows or self.session is None:
            self._rows.append((table, [row]))
        else:
            self.session.execute(_insert_of(table), row)


@cache
def _insert_of(table: Table) -> Any:
    return insert(table)


def write_rows(conn: Connection, queued: list[tuple[Table, list[dict[str, Any]]]]) -> None:
    """INSERT every queued row in ``conn``'s transaction.

    On PostgreSQL through psycopg: the statements of :func:`insert_statements`, usually
    **one**. Errors surface as the same SQLAlchemy exceptions. Elsewhere (SQLite):
    SQLAlchemy Core, statement by statement.
    """
    if not is_psycopg(conn.dialect):
        for table, rows in queued:
            conn.execute(_insert_of(table), rows[0] if len(rows) == 1 else rows)
        return
    from psycopg import Error as PsycopgError  # PostgreSQL only

    driver = conn.connection.driver_connection
    for statement, params in insert_statements(conn.dialect, queued):
        try:
            driver.execute(statement, params)
        except PsycopgError as exc:
            raise DBAPIError.instance(statement, params, exc, PsycopgError) from exc


def insert_statements(dialect: Dialect, queued: list[tuple[Table, list[dict[str, Any]]]]
                      ) -> list[tuple[str, list[str]]]:
    """The PostgreSQL statements (SQL, parameters) that INSERT every queued row.

    Usually **one statement**: each table's rows travel as one JSON array that PostgreSQL
    expands against the table's row type (``json_populate_recordset``) in a
    data-modifying CTE per table; the columns a row leaves out keep their defaults.
    Foreign keys and unique indexes are checked as for separate INSERTs (at the end of
    the statement at the latest), and rows of one table get their generated ids in the
    order they were queued. This costs one parse and one round trip instead of one per
    statement, and a single ``orjson.dumps`` instead of binding every value.

    When one command queues rows with different column sets for the same table: one
    such INSERT per queued batch, in order.
    """
    tables: dict[Table, tuple[tuple[str, ...], list[dict[str, Any]]]] = {}
    uniform = True
    for table, rows in queued:
        for row in rows:
            columns, group = tables.setdefault(table, (tuple(row), []))
            uniform = uniform and columns == tuple(row)
            group.append(row)
    if uniform:
        batches = [(table, columns, rows) for table, (columns, rows) in tables.items()]
        return [_json_insert(dialect, batches)]
    return [_json_insert(dialect, [(table, tuple(rows[0]), rows)]) for table, rows in queued]


def _json_insert(dialect: Dialect, batches: list[tuple[Table, tuple[str, ...], list[Any]]]
                 ) -> tuple[str, list[str]]:
    shape = tuple((table, columns) for table, columns, _ in batches)
    # orjson does str, numbers, datetimes and dicts itself; jsonable_encoder the rest.
    params = [orjson.dumps(rows, default=jsonable_encoder).decode() for _, _, rows in batches]
    return _insert_sql(dialect, shape), params


_SQL: dict[tuple[str, tuple[tuple[Table, tuple[str, ...]], ...]], str] = {}


def _insert_sql(dialect: Dialect, shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> str:
    """``WITH w0 AS (INSERT ...), ... INSERT ...``: one INSERT per (table, columns)."""
    key = (dialect.name, shape)
    found = _SQL.get(key)
    if found is None:
        quote = dialect.identifier_preparer
        inserts = []
        for table, columns in shape:
            name = quote.format_table(table)
            names = ", ".join(quote.quote(table.c[c].name) for c in columns)
            inserts.append(f"INSERT INTO {name} ({names}) SELECT {names} "
                           f"FROM json_populate_recordset(NULL::{name}, %s::json)")
        *first, last = inserts
        ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(first))
        found = _SQL[key] = f"WITH {ctes} {last}" if ctes else last
    return found


def fetch_all(conn: Connection, statement: Executable, params: dict[str, Any]) -> list[Any]:
    """``conn.execute(statement, params).all()``, straight through psycopg on PostgreSQL.

    For the hot path's few prebuilt SELECTs of plain columns (strings, numbers,
    timestamps: nothing SQLAlchemy converts on the way out): the SQL SQLAlchemy compiles
    for the dialect, run on the session's own connection and transaction, rows with the
    same names and values. Errors surface as the same SQLAlchemy exceptions.
    """
    if not is_psycopg(conn.dialect):
        return list(conn.execute(statement, params).all())
    from psycopg import Error as PsycopgError  # PostgreSQL only
    from psycopg.rows import namedtuple_row

    sql, values = compiled(conn.dialect, statement, params)
    try:
        with conn.connection.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, values)
            return cursor.fetchall()
    except PsycopgError as exc:
        raise DBAPIError.instance(sql, values, exc, PsycopgError) from exc


_COMPILED: dict[tuple[str, int], tuple[Executable, str, dict[str, Any]]] = {}


def compiled(dialect: Dialect, statement: Executable, params: dict[str, Any]
             ) -> tuple[str, dict[str, Any]]:
    """A prebuilt statement's SQL for ``dialect`` (compiled once) and its parameters."""
    key = (dialect.name, id(statement))
    found = _COMPILED.get(key)
    if found is None or found[0] is not statement:
        compiled = statement.compile(dialect=dialect)
        found = _COMPILED[key] = (statement, compiled.string, dict(compiled.params))
    return found[1], {**found[2], **params}


def is_psycopg(dialect: Dialect) -> bool:
    """PostgreSQL through psycopg: where statements can go to the driver directly."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def replay_response(stored: idempotency.StoredResponse) -> OrjsonResponse:
    return OrjsonResponse(stored.body, status_code=stored.status_code,
                          headers={REPLAY_HEADER: "true"})


def replay_or_conflict(stored: idempotency.StoredResponse | None,
                       exc: IntegrityError) -> OrjsonResponse:
    """After a commit refused by a unique index: the stored answer when a concurrent
    request with the same Idempotency-Key won, else 409."""
    if stored is not None:
        return replay_response(stored)
    raise Conflict("the resource was changed concurrently; retry the request") from exc


ClaimDep = Annotated[idempotency.IdempotencyClaim | None, Depends(idempotency.read_claim)]


def get_uow(
    request: Request,
    principal: OptionalPrincipal,
    claim: ClaimDep,
) -> Iterator[UnitOfWork]:
    """The request's unit of work; a stored answer for its Idempotency-Key is replayed.

    The key is looked up before the command runs, and again if the command is refused
    with a 409 (or a unique index refuses its writes): a retry that raced its first
    attempt, and waited on the row lock the first one held, finds the row changed by
    that attempt (a distribution already reversed, say) and would otherwise get the 409
    instead of the first answer.
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
        except (Conflict, IntegrityError):
            if keyed:
                replay_if_won(session, principal, claim)
            raise


def replay_if_won(session: Session | CoreSession, principal: Principal,
                  claim: idempotency.IdempotencyClaim) -> None:
    """After a command keyed by ``claim`` was refused (a 409, or a unique index at its
    commit): if a concurrent request with the same key won meanwhile, raise its answer to
    be replayed (:class:`~servicekit.idempotency.IdempotentReplay`); else return, and the
    caller lets the refusal stand. Looks in a new transaction, whose snapshot shows the
    winner's commit."""
    session.rollback()
    stored = idempotency.lookup(session, principal.sub, claim)  # type: ignore[arg-type]
    if stored is not None:
        raise idempotency.IdempotentReplay(stored)


class CoreSession:
    """The part of a ``Session`` a Core-only command uses, over one pooled ``Connection``.

    For :class:`~servicekit.pipelined.PipelinedCommand` where it runs in a worker thread
    (SQLite): prebuilt SELECTs, rows queued with :meth:`UnitOfWork.insert`, no ORM
    objects, so no ORM unit of work to keep. The
    session's bookkeeping (its transaction state machine, a ``connection()`` lookup per
    statement) cost ~0.17 ms of CPU per income posting, a tenth of the command. One
    transaction as with a Session: begun at the first statement (again after a commit
    or rollback), committed by :meth:`commit`, rolled back when the connection goes back
    to the pool uncommitted (an error, a refused command).
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def connection(self) -> Connection:
        # Begun explicitly: fetch_all and write_rows execute on the driver connection,
        # which the Connection would not see, and its commit() would then do nothing.
        if not self._conn.in_transaction():
            self._conn.begin()
        return self._conn

    def execute(self, statement: Executable, params: Any = None) -> Any:
        return self.connection().execute(statement, params)

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()


def get_session(request: Request) -> Iterator[Session]:
    """A read-only session for queries."""
    with request.app.state.kit.sessions() as session:
        yield session


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_now(request: Request) -> datetime:
    """``now`` from the service's injectable clock."""
    return request.app.state.kit.clock.now()


NowDep = Annotated[datetime, Depends(get_now)]


def get_today(request: Request) -> date:
    """Today in the service's business time zone (Vietnam's by default)."""
    kit = request.app.state.kit
    return business_date(kit.clock.now(), kit.settings.business_timezone)


TodayDep = Annotated[date, Depends(get_today)]
