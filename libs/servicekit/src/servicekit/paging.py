"""Cursor paging: ``?limit=&cursor=`` → ``{items, next_cursor}`` with opaque keyset cursors."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from servicekit.problems import Invalid

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


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
