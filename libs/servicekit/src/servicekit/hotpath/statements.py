"""What the hot path sends: prebuilt SELECTs (:class:`Load`) and the INSERTs of the rows a
command queued (:func:`insert_statements`), as SQL for the driver."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from fastapi.encoders import jsonable_encoder
from sqlalchemy import Dialect, Executable, Table

T = TypeVar("T")

Read = tuple[Executable, dict[str, Any]]
Queued = list[tuple[Table, list[dict[str, Any]]]]


@dataclass(frozen=True)
class Load(Generic[T]):
    """What a hot command reads before it decides, in one round trip: ``reads``, prebuilt
    SELECTs with their parameters (the first is the command's row lock, ``FOR UPDATE``;
    the others run after it holds the lock, each with a fresh snapshot), and ``make``,
    which is given each read's rows, in order, as one argument each and returns what
    the handler is given."""

    reads: Sequence[Read]
    make: Callable[..., T]


def is_psycopg(dialect: Dialect) -> bool:
    """PostgreSQL through psycopg: where the hot path sends statements to the driver."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


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


def insert_statements(dialect: Dialect, queued: Queued) -> list[tuple[str, list[str]]]:
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
