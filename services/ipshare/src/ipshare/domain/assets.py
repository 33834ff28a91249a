"""Assets, institution policies, agreements and distributions (domain.md §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from ipshare.domain.errors import IllegalTransition, InvalidInput
from ipshare.domain.split import (
    FULL_BP,
    LEGAL_MIN_SHARE_BP,
    Basis,
    Share,
    Split,
    check_authors,
    compute_split,
)


class AssetKind(StrEnum):
    PATENT = "patent"
    UTILITY_SOLUTION = "utility_solution"
    SOFTWARE = "software"
    DESIGN = "design"
    KNOW_HOW = "know_how"
    DATASET = "dataset"
    PUBLICATION = "publication"


class AgreementKind(StrEnum):
    LICENCE = "licence"
    ASSIGNMENT = "assignment"
    SPIN_OFF = "spin_off"


class AgreementStatus(StrEnum):
    ACTIVE = "active"
    TERMINATED = "terminated"


class DistributionStatus(StrEnum):
    POSTED = "posted"
    REVERSED = "reversed"


@dataclass(frozen=True)
class Author:
    researcher_id: str
    name: str
    contribution_bp: int


@dataclass(frozen=True)
class Policy:
    """An institution's sharing policy; version 0 is the statutory default."""

    institution_id: str
    researcher_share_bp: int = LEGAL_MIN_SHARE_BP
    basis: Basis = Basis.NET
    version: int = 0

    def changed(self, researcher_share_bp: int, basis: Basis) -> Policy:
        if researcher_share_bp < LEGAL_MIN_SHARE_BP:
            raise InvalidInput("researcher_share_bp cannot be below the legal floor of 3000 "
                               "(30%)", field="researcher_share_bp")
        if researcher_share_bp > FULL_BP:
            raise InvalidInput("researcher_share_bp cannot exceed 10000",
                               field="researcher_share_bp")
        return Policy(self.institution_id, researcher_share_bp, basis, self.version + 1)


def validate_authors(authors: list[Author]) -> None:
    check_authors([Share(a.researcher_id, a.contribution_bp) for a in authors])


@dataclass(frozen=True)
class AssetRegistered:
    asset_id: str
    institution_id: str
    kind: str
    title: str
    authors: list[dict[str, Any]]
    source_grant_id: str | None
    source_result_id: str | None
    registered_at: datetime


@dataclass(frozen=True)
class AgreementSigned:
    agreement_id: str
    asset_id: str
    institution_id: str
    kind: str
    counterparty: str
    signed_on: date
    source_grant_id: str | None


@dataclass(frozen=True)
class AgreementTerminated:
    agreement_id: str
    asset_id: str
    institution_id: str
    reason: str
    terminated_at: datetime


@dataclass
class Agreement:
    id: str
    asset_id: str
    institution_id: str
    kind: AgreementKind
    status: AgreementStatus = AgreementStatus.ACTIVE
    events: list[Any] = field(default_factory=list, compare=False)

    @property
    def in_kind(self) -> bool:
        return self.kind == AgreementKind.SPIN_OFF

    def terminate(self, reason: str, now: datetime) -> None:
        if self.status != AgreementStatus.ACTIVE:
            raise IllegalTransition(f"agreement is {self.status}")
        if not reason.strip():
            raise InvalidInput("termination needs a reason", field="reason")
        self.status = AgreementStatus.TERMINATED
        self.events.append(AgreementTerminated(self.id, self.asset_id, self.institution_id,
                                               reason, now))

    def split_income(self, *, gross_vnd: int, costs_vnd: int, policy: Policy,
                     authors: list[Author]) -> Split:
        if self.status != AgreementStatus.ACTIVE:
            raise IllegalTransition(f"agreement {self.id} is {self.status}; income is refused")
        return compute_split(
            gross_vnd=gross_vnd, costs_vnd=costs_vnd, basis=policy.basis,
            researcher_share_bp=policy.researcher_share_bp,
            shares=[Share(a.researcher_id, a.contribution_bp) for a in authors],
            in_kind=self.in_kind)


def reverse(status: DistributionStatus) -> DistributionStatus:
    if status != DistributionStatus.POSTED:
        raise IllegalTransition("the distribution is already reversed")
    return DistributionStatus.REVERSED
