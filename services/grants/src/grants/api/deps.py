"""Dependencies shared by the grants routers: roles, paging and a command's repository."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from grants.repository import SqlRepository
from servicekit.auth import Principal, require_roles
from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT
from servicekit.unit_of_work import UnitOfWorkDep

ProgramManager = Annotated[Principal, Depends(require_roles("program_manager"))]
CallHistoryReader = Annotated[
    Principal, Depends(require_roles("program_manager", "auditor", "admin"))
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT


def get_repository(uow: UnitOfWorkDep) -> SqlRepository:
    """A command's repository, on its unit of work's session (reads take ``SessionDep``
    and ``SqlRepository(session)``)."""
    return SqlRepository(uow.session)


RepositoryDep = Annotated[SqlRepository, Depends(get_repository)]
