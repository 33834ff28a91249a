"""Dependencies shared by the grants routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from grants.domain.errors import DomainError, IllegalTransition
from servicekit.auth import Principal, require_roles
from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT
from servicekit.problems import Conflict, Invalid, Problem

ProgramManager = Annotated[Principal, Depends(require_roles("program_manager"))]
CallHistoryReader = Annotated[
    Principal, Depends(require_roles("program_manager", "auditor", "admin"))
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT


def problem_from(error: DomainError) -> Problem:
    """Map a domain error to problem+json: illegal transitions 409, the rest 422."""
    if isinstance(error, IllegalTransition):
        return Conflict(error.message, kind="illegal-transition")
    loc = ["body", error.field] if error.field else None
    return Invalid(error.message, loc=loc)
