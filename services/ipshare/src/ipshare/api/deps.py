"""Dependencies shared by the ipshare routers: a command's repository."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ipshare.repository import SqlRepository
from servicekit.unit_of_work import UnitOfWorkDep


def get_repository(uow: UnitOfWorkDep) -> SqlRepository:
    """A command's repository, on its unit of work's session (reads take ``SessionDep``
    and ``SqlRepository(session)``)."""
    return SqlRepository(uow.session)


RepositoryDep = Annotated[SqlRepository, Depends(get_repository)]
