"""Dependencies shared by the ipshare routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from servicekit.paging import DEFAULT_LIMIT, MAX_LIMIT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
DEFAULT_PAGE = DEFAULT_LIMIT

