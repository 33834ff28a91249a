"""Dependencies and error mapping shared by the ipshare routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from ipshare.domain.errors import DomainError
from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT
from servicekit.problems import Problem, from_domain

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT


def problem_from(error: DomainError) -> Problem:
    """The kit's problem for a domain error (servicekit.problems.from_domain)."""
    return from_domain(error)
