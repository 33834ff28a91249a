"""Dependencies and error mapping shared by the ipshare routers."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator

from ipshare.domain.errors import DomainError, IllegalTransition
from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT
from servicekit.problems import Conflict, Invalid, Problem

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT


def _calendar_date(value: Any) -> Any:
    if isinstance(value, str) and len(value) != len("2026-11-23"):
        raise ValueError("a date is YYYY-MM-DD; a time needs its UTC offset")
    return value


# A date alone, as YYYY-MM-DD: a time without an offset is not taken for one.
CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]


def problem_from(error: DomainError) -> Problem:
    if isinstance(error, IllegalTransition):
        return Conflict(error.message, kind="illegal-transition")
    return Invalid(error.message, loc=["body", error.field] if error.field else None)
