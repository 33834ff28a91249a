"""Dependencies shared by the grants routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from servicekit.auth import Principal, require_roles
from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT

ProgramManager = Annotated[Principal, Depends(require_roles("program_manager"))]
CallHistoryReader = Annotated[
    Principal, Depends(require_roles("program_manager", "auditor", "admin"))
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT

