"""Distributions: an income split to the đồng and posted, and its reversal (domain.md §3).

A distribution stands under its reference until it is reversed: an agreement has one
standing distribution per reference, so a second posting of the same reference is
refused and a reversal frees it. Nothing is edited: a reversal posts the income's ledger
entries negated, and its event carries every amount and line negated, so a consumer
that sums the events nets the reversed income out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ipshare.domain.assets import Agreement, Author, Policy
from ipshare.domain.errors import DuplicateReference, IllegalTransition
from ipshare.domain.ledger import Entry, income_entries, reversing_entries


class DistributionStatus(StrEnum):
    POSTED = "posted"
    REVERSED = "reversed"


@dataclass(frozen=True)
class Line:
    """What one payee (a researcher, or the institution) is owed by a distribution."""

    payee_id: str
    payee_kind: str  # researcher | institution
    amount_vnd: int


@dataclass(frozen=True)
class Posting:
    """A balanced set of ledger entries: the income's (kind ``distribution``, its id the
    distribution's) or a reversal's (kind ``reversal``, an id of its own)."""

    id: str
    kind: str
    at: datetime
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class DistributionPosted:
    agreement_id: str
    asset_id: str
    institution_id: str
    source_grant_id: str | None
    reference: str
    period: str
    gross_vnd: int
    costs_vnd: int
    basis_vnd: int
    researcher_pool_vnd: int
    institution_vnd: int
    policy: dict[str, Any]
    lines: list[dict[str, Any]]
    in_kind: bool
    distribution_id: str
    posted_at: datetime


@dataclass(frozen=True)
class DistributionReversed(DistributionPosted):
    """The posted distribution's figures negated, with the reversal's id, reason, time."""

    reversal_id: str
    reason: str
    reversed_at: datetime


@dataclass
class Distribution:
    id: str
    agreement_id: str
    asset_id: str
    institution_id: str
    source_grant_id: str | None
    reference: str
    period: str
    gross_vnd: int
    costs_vnd: int
    basis_vnd: int
    researcher_pool_vnd: int
    institution_vnd: int
    policy: Policy
    lines: list[Line]
    in_kind: bool
    created_by: str
    created_at: datetime
    postings: list[Posting]
    status: DistributionStatus = DistributionStatus.POSTED
    reversal_reason: str | None = None
    reversed_at: datetime | None = None
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def post(cls, *, id: str, agreement: Agreement, source_grant_id: str | None,
             policy: Policy, authors: list[Author], reference: str, period: str,
             gross_vnd: int, costs_vnd: int, standing_id: str | None, by: str,
             now: datetime) -> Distribution:
        """Split the income on ``agreement`` under ``policy`` among ``authors`` and post
        it; refused while ``standing_id`` (a posted distribution with the same
        reference on the agreement) stands."""
        split = agreement.split_income(gross_vnd=gross_vnd, costs_vnd=costs_vnd,
                                       policy=policy, authors=authors)
        if standing_id is not None:
            raise DuplicateReference(
                f"reference '{reference}' is already posted on this agreement "
                f"(distribution {standing_id}); reverse it first to post again")
        institution_id = agreement.institution_id
        lines = [Line(rid, "researcher", amount) for rid, amount in split.researcher_lines]
        lines.append(Line(institution_id, "institution", split.institution_vnd))
        posting = Posting(id, "distribution", now,
                          tuple(income_entries(split, institution_id)))
        distribution = cls(
            id=id, agreement_id=agreement.id, asset_id=agreement.asset_id,
            institution_id=institution_id, source_grant_id=source_grant_id,
            reference=reference, period=period, gross_vnd=split.gross_vnd,
            costs_vnd=split.costs_vnd, basis_vnd=split.basis_vnd,
            researcher_pool_vnd=split.researcher_pool_vnd,
            institution_vnd=split.institution_vnd, policy=policy, lines=lines,
            in_kind=agreement.in_kind, created_by=by, created_at=now, postings=[posting])
        distribution.events.append(DistributionPosted(**distribution._figures()))
        return distribution

    def reverse(self, *, reversal_id: str, reason: str, now: datetime) -> Posting:
        """Reverse the posting with its entries negated; returns the reversal's posting."""
        if self.status != DistributionStatus.POSTED:
            raise IllegalTransition("the distribution is already reversed")
        posting = Posting(reversal_id, "reversal", now,
                          tuple(reversing_entries(list(self.postings[0].entries))))
        self.postings.append(posting)
        self.status = DistributionStatus.REVERSED
        self.reversal_reason = reason
        self.reversed_at = now
        self.events.append(DistributionReversed(**self._figures(sign=-1),
                                                reversal_id=reversal_id, reason=reason,
                                                reversed_at=now))
        return posting

    def _figures(self, sign: int = 1) -> dict[str, Any]:
        """What the events carry, every amount times ``sign``."""
        return dict(
            agreement_id=self.agreement_id, asset_id=self.asset_id,
            institution_id=self.institution_id, source_grant_id=self.source_grant_id,
            reference=self.reference, period=self.period, gross_vnd=sign * self.gross_vnd,
            costs_vnd=sign * self.costs_vnd, basis_vnd=sign * self.basis_vnd,
            researcher_pool_vnd=sign * self.researcher_pool_vnd,
            institution_vnd=sign * self.institution_vnd,
            policy={"researcher_share_bp": self.policy.researcher_share_bp,
                    "basis": self.policy.basis.value, "version": self.policy.version},
            lines=[{"payee_id": ln.payee_id, "payee_kind": ln.payee_kind,
                    "amount_vnd": sign * ln.amount_vnd} for ln in self.lines],
            in_kind=self.in_kind, distribution_id=self.id, posted_at=self.created_at)
