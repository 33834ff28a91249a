"""Dependencies shared by the grants routers: roles and a command's repository."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from grants.repository import SqlRepository
from servicekit.auth import Principal, require_roles
from servicekit.unit_of_work import UnitOfWorkDep

ProgramManager = Annotated[Principal, Depends(require_roles("program_manager"))]
Researcher = Annotated[Principal, Depends(require_roles("researcher"))]
Reviewer = Annotated[Principal, Depends(require_roles("reviewer"))]
Institution = Annotated[Principal, Depends(require_roles("institution"))]
CallHistoryReader = Annotated[
    Principal, Depends(require_roles("program_manager", "auditor", "admin"))
]


def get_repository(uow: UnitOfWorkDep) -> SqlRepository:
    """A command's repository, on its unit of work's session (reads take ``SessionDep``
    and ``SqlRepository(session)``)."""
    return SqlRepository(uow.session)


RepositoryDep = Annotated[SqlRepository, Depends(get_repository)]
