"""Dependencies shared by the sandbox routers: roles, the sector profiles in force and
the request's repository."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from sandbox.access import MINISTRY
from sandbox.domain.errors import InvalidInput
from sandbox.domain.sectors import SectorProfile, SectorProfiles
from sandbox.repository import SqlRepository
from servicekit.auth import Principal, require_roles
from servicekit.problems import Invalid
from servicekit.unit_of_work import UnitOfWorkDep

Applicant = Annotated[Principal, Depends(require_roles("sandbox_applicant"))]
Reviewer = Annotated[Principal, Depends(require_roles("reviewer"))]
Ministry = Annotated[Principal, Depends(require_roles(*MINISTRY))]
# The firm (its own) and the ministry roles.
Reader = Annotated[Principal, Depends(require_roles("sandbox_applicant", *MINISTRY))]


def get_profiles(request: Request) -> SectorProfiles:
    """The sector profiles in force (loaded once, when the app is made)."""
    return request.app.state.sector_profiles


ProfilesDep = Annotated[SectorProfiles, Depends(get_profiles)]
SectorQuery = Annotated[str | None, Query(max_length=30, description=(
    "A sector of GET /v1/sectors; an unknown one is a 422 naming the known"))]


def sector_filter(profiles: SectorProfiles, sector: str | None) -> SectorProfile | None:
    """The profile a ``?sector=`` filter names (422 naming the known sectors)."""
    if sector is None:
        return None
    try:
        return profiles.get(sector)
    except InvalidInput as exc:
        raise Invalid(exc.message, loc=["query", "sector"]) from exc


def get_repository(uow: UnitOfWorkDep) -> SqlRepository:
    """The repository on the request's unit of work's session."""
    assert uow.session is not None
    return SqlRepository(uow.session)


RepositoryDep = Annotated[SqlRepository, Depends(get_repository)]
