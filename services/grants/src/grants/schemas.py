"""Request and response models of the grants API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field

# Money is integer đồng: strict, so "100" and 1.5 are refused rather than coerced.
Vnd = Annotated[int, Field(strict=True, gt=0, le=10**15)]


class CallCreate(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20_000)
    budget_vnd: Vnd
    max_award_vnd: Vnd
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    min_reviews: int = Field(default=2, ge=1, le=20)


class CallRead(BaseModel):
    id: str
    agency_id: str
    title: str
    description: str
    budget_vnd: int
    max_award_vnd: int
    awarded_vnd: int
    remaining_budget_vnd: int
    opens_at: datetime
    closes_at: datetime
    min_reviews: int
    status: str
    accepting_submissions: bool
    created_at: datetime
    updated_at: datetime


class CallPage(BaseModel):
    items: list[CallRead]
    next_cursor: str | None = None
