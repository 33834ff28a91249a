"""Dependencies and error mapping shared by the ipshare routers."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, BeforeValidator

from ipshare.domain.errors import DomainError, IllegalTransition
from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT
from servicekit.problems import Conflict, Invalid, Problem

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _calendar_date(value: Any) -> Any:
    if isinstance(value, str) and not _DATE.fullmatch(value):
        raise ValueError("a date is YYYY-MM-DD; a time needs its UTC offset")
    return value


# A date alone, as YYYY-MM-DD: a time without an offset is not taken for one.
CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str) and "T" not in value.upper():
        raise ValueError("a time is RFC 3339, e.g. 2026-11-23T09:00:00+07:00")
    return value


# An RFC 3339 time with its offset; not a number of seconds, which pydantic would take.
Rfc3339Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


def problem_from(error: DomainError) -> Problem:
    if isinstance(error, IllegalTransition):
        return Conflict(error.message, kind="illegal-transition")
    return Invalid(error.message, loc=["body", error.field] if error.field else None)
