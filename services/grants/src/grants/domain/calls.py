"""Funding calls: draft → open → closed, with a budget, a maximum award and a window;
cancelled (from any of those) while no application has been decided.

How a call is reviewed (domain.md §1, "Peer review that experts trust"): ``review_mode``
``open`` lets any reviewer without a conflict review, ``assigned`` only the reviewers the
programme manager assigned who declared no conflict; ``review_tiers`` make the reviews a
decision needs grow with the amount requested; ``requires_endorsement`` has the host
institution endorse a draft before it is submitted.
"""

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
    CANCELLED = "cancelled"


class ReviewMode(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"


@dataclass(frozen=True)
class ReviewTier:
    """Applications requesting up to ``up_to_vnd`` need ``min_reviews`` reviews."""

    up_to_vnd: int
    min_reviews: int


def check_tiers(tiers: list[ReviewTier], min_reviews: int) -> None:
    """``up_to_vnd`` strictly ascending (no two tiers overlap), ``min_reviews``
    non-decreasing and never below the call's own ``min_reviews``."""
    for i, tier in enumerate(tiers):
        if tier.up_to_vnd <= 0:
            raise InvalidInput(f"review_tiers[{i}].up_to_vnd must be positive",
                               field="review_tiers")
        if tier.min_reviews < min_reviews:
            raise InvalidInput(f"review_tiers[{i}].min_reviews {tier.min_reviews} is below "
                               f"the call's min_reviews {min_reviews}", field="review_tiers")
        if i == 0:
            continue
        before = tiers[i - 1]
        if tier.up_to_vnd <= before.up_to_vnd:
            raise InvalidInput(f"review_tiers must ascend without overlap: tier {i} "
                               f"(up_to_vnd {tier.up_to_vnd}) does not exceed tier {i - 1} "
                               f"(up_to_vnd {before.up_to_vnd})", field="review_tiers")
        if tier.min_reviews < before.min_reviews:
            raise InvalidInput(f"review_tiers' min_reviews must not decrease: tier {i} "
                               f"needs {tier.min_reviews}, tier {i - 1} "
                               f"{before.min_reviews}", field="review_tiers")


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


@dataclass(frozen=True)
class CallCancelled:
    call_id: str
    agency_id: str
    from_status: str
    reason: str
    cancelled_at: datetime


# What a programme manager may change in a draft call (PUT /v1/calls/{id}).
TERMS = ("title", "description", "budget_vnd", "max_award_vnd", "opens_at", "closes_at",
         "min_reviews", "review_mode", "review_tiers", "requires_endorsement")


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
    review_mode: ReviewMode = ReviewMode.OPEN
    review_tiers: tuple[ReviewTier, ...] = ()
    requires_endorsement: bool = False
    status: CallStatus = CallStatus.DRAFT
    awarded_vnd: int = 0
    cancelled_from: CallStatus | None = None
    cancel_reason: str | None = None
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def draft(
        cls, *, id: str, agency_id: str, title: str, description: str, budget_vnd: int,
        max_award_vnd: int, opens_at: datetime, closes_at: datetime, min_reviews: int,
        review_mode: ReviewMode = ReviewMode.OPEN, review_tiers: list[ReviewTier] | None = None,
        requires_endorsement: bool = False,
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
        tiers = list(review_tiers or [])
        check_tiers(tiers, min_reviews)
        return cls(id=id, agency_id=agency_id, title=title, description=description,
                   budget_vnd=budget_vnd, max_award_vnd=max_award_vnd, opens_at=opens_at,
                   closes_at=closes_at, min_reviews=min_reviews,
                   review_mode=ReviewMode(review_mode), review_tiers=tuple(tiers),
                   requires_endorsement=requires_endorsement)

    @property
    def remaining_budget_vnd(self) -> int:
        return self.budget_vnd - self.awarded_vnd

    @property
    def published(self) -> bool:
        """Opened at some time: a draft, or a draft cancelled before opening, is not."""
        if self.status == CallStatus.CANCELLED:
            return self.cancelled_from != CallStatus.DRAFT
        return self.status != CallStatus.DRAFT

    @property
    def assigned_review(self) -> bool:
        return self.review_mode == ReviewMode.ASSIGNED

    @property
    def reviewing(self) -> bool:
        """Its applications are assigned, reviewed and decided: until it is cancelled."""
        return self.status != CallStatus.CANCELLED

    def check_reviewing(self) -> None:
        """Refuse work on the applications of a cancelled call: none will be decided."""
        if not self.reviewing:
            raise IllegalTransition(f"call {self.id} is cancelled: its applications are no "
                                    "longer reviewed or decided")

    def reviews_needed(self, requested_vnd: int) -> int:
        """The reviews a decision on ``requested_vnd`` needs: the first tier covering it,
        the last tier's above them all, the call's ``min_reviews`` without tiers."""
        for tier in self.review_tiers:
            if requested_vnd <= tier.up_to_vnd:
                return tier.min_reviews
        return self.review_tiers[-1].min_reviews if self.review_tiers else self.min_reviews

    def revise(self, revised: Call) -> dict[str, dict[str, Any]]:
        """Take a draft's new terms (``revised``, validated by :meth:`draft`); returns
        each changed term ``{from, to}``."""
        if self.status != CallStatus.DRAFT:
            raise IllegalTransition(f"call is {self.status}; only a draft call is edited")
        changes: dict[str, dict[str, Any]] = {}
        for name in TERMS:
            before, after = getattr(self, name), getattr(revised, name)
            if before != after:
                changes[name] = {"from": before, "to": after}
                setattr(self, name, after)
        return changes

    def cancel(self, reason: str, *, decided: int, now: datetime) -> None:
        """Cancel while no application has been decided (``decided``: how many were)."""
        if self.status == CallStatus.CANCELLED:
            raise IllegalTransition("call is already cancelled")
        if not reason.strip():
            raise InvalidInput("a cancellation needs a reason", field="reason")
        if decided:
            raise IllegalTransition(f"{decided} application(s) of this call have been "
                                    "decided; a call with a decision cannot be cancelled")
        self.cancelled_from = self.status
        self.status = CallStatus.CANCELLED
        self.cancel_reason = reason
        if self.published:
            self.events.append(CallCancelled(
                call_id=self.id, agency_id=self.agency_id, from_status=self.cancelled_from,
                reason=reason, cancelled_at=now))

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
