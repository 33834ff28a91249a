"""Funding calls: draft → open → closed, with a budget, a maximum award and a window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from grants.domain.errors import IllegalTransition, InvalidInput


class CallStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class CallOpened:
    call_id: str
    agency_id: str
    title: str
    budget_vnd: int
    max_award_vnd: int
    opens_at: datetime
    closes_at: datetime
    min_reviews: int


@dataclass(frozen=True)
class CallClosed:
    call_id: str
    agency_id: str
    awarded_vnd: int
    remaining_budget_vnd: int


@dataclass
class Call:
    id: str
    agency_id: str
    title: str
    description: str
    budget_vnd: int
    max_award_vnd: int
    opens_at: datetime
    closes_at: datetime
    min_reviews: int
    status: CallStatus = CallStatus.DRAFT
    awarded_vnd: int = 0
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def draft(
        cls, *, id: str, agency_id: str, title: str, description: str, budget_vnd: int,
        max_award_vnd: int, opens_at: datetime, closes_at: datetime, min_reviews: int,
    ) -> Call:
        if not agency_id:
            raise InvalidInput("the programme manager's token carries no org (agency)",
                               field="agency_id")
        if budget_vnd <= 0:
            raise InvalidInput("budget_vnd must be positive", field="budget_vnd")
        if max_award_vnd <= 0:
            raise InvalidInput("max_award_vnd must be positive", field="max_award_vnd")
        if max_award_vnd > budget_vnd:
            raise InvalidInput("max_award_vnd cannot exceed budget_vnd", field="max_award_vnd")
        if closes_at <= opens_at:
            raise InvalidInput("closes_at must be after opens_at", field="closes_at")
        if min_reviews < 1:
            raise InvalidInput("min_reviews must be at least 1", field="min_reviews")
        return cls(id=id, agency_id=agency_id, title=title, description=description,
                   budget_vnd=budget_vnd, max_award_vnd=max_award_vnd, opens_at=opens_at,
                   closes_at=closes_at, min_reviews=min_reviews)

    @property
    def remaining_budget_vnd(self) -> int:
        return self.budget_vnd - self.awarded_vnd

    @property
    def published(self) -> bool:
        return self.status != CallStatus.DRAFT

    def accepting_submissions(self, now: datetime) -> bool:
        return self.status == CallStatus.OPEN and self.opens_at <= now < self.closes_at

    def open(self, now: datetime) -> None:
        """Publish the call. A call whose window has already ended cannot be opened."""
        if self.status != CallStatus.DRAFT:
            raise IllegalTransition(f"call is {self.status}; only a draft call can be opened")
        if self.closes_at <= now:
            raise IllegalTransition("the call's submission window has already ended "
                                    f"(closes_at {self.closes_at.isoformat()})")
        self.status = CallStatus.OPEN
        self.events.append(CallOpened(
            call_id=self.id, agency_id=self.agency_id, title=self.title,
            budget_vnd=self.budget_vnd, max_award_vnd=self.max_award_vnd,
            opens_at=self.opens_at, closes_at=self.closes_at, min_reviews=self.min_reviews,
        ))

    def close(self) -> None:
        if self.status != CallStatus.OPEN:
            raise IllegalTransition(f"call is {self.status}; only an open call can be closed")
        self.status = CallStatus.CLOSED
        self.events.append(CallClosed(
            call_id=self.id, agency_id=self.agency_id, awarded_vnd=self.awarded_vnd,
            remaining_budget_vnd=self.remaining_budget_vnd,
        ))
