"""Dependencies and error mapping shared by the ipshare routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from ipshare.domain.errors import DomainError, IllegalTransition
from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT
from servicekit.problems import Conflict, Invalid, Problem

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT


def problem_from(error: DomainError) -> Problem:
    if isinstance(error, IllegalTransition):
        return Conflict(error.message, kind="illegal-transition")
    return Invalid(error.message, loc=["body", error.field] if error.field else None)
