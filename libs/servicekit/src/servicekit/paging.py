"""Cursor paging: ``?limit=&cursor=`` → ``{items, next_cursor}`` with opaque keyset cursors."""

from __future__ import annotations

import base64
import json
import operator
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query

from servicekit.problems import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# A list's ``?limit=``: 1 to MAX_LIMIT items a page (default DEFAULT_LIMIT where declared).
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


_POSITION = re.compile(r"[0-9]{1,18}")


def position_cursor(cursor: str | None) -> int:
    """The position a sequence's cursor carries (an audit ``seq``, a ledger entry id):
    0 for none; 422 for anything this API did not make (it hands out plain numbers)."""
    if not cursor:
        return 0
    if _POSITION.fullmatch(cursor) is None:
        raise Invalid("cursor is not valid", loc=["query", "cursor"])
    return int(cursor)


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """The values a cursor carries; 422 for a cursor this API did not make."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError as exc:
        raise Invalid("cursor is not valid", loc=["query", "cursor"]) from exc
    if not isinstance(values, list) or len(values) != arity:
        raise Invalid("cursor is not valid", loc=["query", "cursor"])
    return values


def keyset_page(
    session: Any, stmt: Any, created_col: Any, id_col: Any, *, limit: int,
    cursor: str | None, newest_first: bool = True,
) -> tuple[list[Any], str | None]:
    """Paged by ``(created_at, id)``, newest first (or oldest first, for what reads as a
    sequence: reviews, results); returns rows and the next cursor.

    The cursor's position is one row-value comparison, ``(created_at, id) < (c, i)``,
    which PostgreSQL answers from an index on ``(..., created_at, id)`` as a range: a
    page deep in a large table costs what the first page costs. (The equivalent
    ``created_at < c OR (created_at = c AND id < i)`` is only a filter there: a page at
    90 % of 10^5 rows read 90,000 index entries.)"""
    from sqlalchemy import literal, tuple_

    from servicekit.clock import as_utc

    after = decode_cursor(cursor, 2)
    if after is not None:
        try:
            created = datetime.fromisoformat(after[0])
        except (TypeError, ValueError) as exc:
            raise Invalid("cursor is not valid", loc=["query", "cursor"]) from exc
        beyond = operator.lt if newest_first else operator.gt
        position = tuple_(literal(created, created_col.type),
                          literal(str(after[1]), id_col.type))
        stmt = stmt.where(beyond(tuple_(created_col, id_col), position))
    order = (created_col.desc(), id_col.desc()) if newest_first else (created_col, id_col)
    rows = session.execute(stmt.order_by(*order).limit(limit + 1))
    rows = rows.scalars().all()
    if len(rows) <= limit:
        return list(rows), None
    last = rows[limit - 1]
    created_value = getattr(last, created_col.key)
    return list(rows[:limit]), encode_cursor(as_utc(created_value), getattr(last, id_col.key))
