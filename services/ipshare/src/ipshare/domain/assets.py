"""Assets, institution policies and agreements (domain.md §3); distributions are in
``distributions``."""

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


@dataclass(frozen=True)
class PolicyChanged:
    institution_id: str
    researcher_share_bp: int
    basis: str
    version: int


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
class Asset:
    """A research result an institution owns (Law 93/2025/QH15 Art. 25), with its authors."""

    id: str
    institution_id: str
    kind: AssetKind
    title: str
    authors: list[Author]
    source_grant_id: str | None
    source_result_id: str | None
    registered_by: str
    created_at: datetime
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def register(cls, *, id: str, institution_id: str, kind: AssetKind, title: str,
                 authors: list[Author], source_grant_id: str | None,
                 source_result_id: str | None, by: str, now: datetime) -> Asset:
        validate_authors(authors)
        asset = cls(id, institution_id, kind, title, list(authors), source_grant_id,
                    source_result_id, by, now)
        asset.events.append(AssetRegistered(
            asset_id=id, institution_id=institution_id, kind=kind.value, title=title,
            authors=[{"researcher_id": a.researcher_id, "name": a.name,
                      "contribution_bp": a.contribution_bp} for a in authors],
            source_grant_id=source_grant_id, source_result_id=source_result_id,
            registered_at=now))
        return asset

    def is_author(self, researcher_id: str) -> bool:
        return any(a.researcher_id == researcher_id for a in self.authors)


@dataclass
class Agreement:
    """A licence, assignment or spin-off on an asset. The income path loads only what its
    rules need (the fields before ``status``); the rest describes the agreement."""

    id: str
    asset_id: str
    institution_id: str
    kind: AgreementKind
    source_grant_id: str | None = None  # the asset's
    status: AgreementStatus = AgreementStatus.ACTIVE
    counterparty: str = ""
    signed_on: date | None = None
    terms: str = ""
    termination_reason: str | None = None
    created_at: datetime | None = None
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def sign(cls, *, id: str, asset: Asset, kind: AgreementKind, counterparty: str,
             signed_on: date, terms: str, now: datetime) -> Agreement:
        agreement = cls(id, asset.id, asset.institution_id, kind, asset.source_grant_id,
                        counterparty=counterparty, signed_on=signed_on, terms=terms,
                        created_at=now)
        agreement.events.append(AgreementSigned(
            agreement_id=id, asset_id=asset.id, institution_id=asset.institution_id,
            kind=kind.value, counterparty=counterparty, signed_on=signed_on,
            source_grant_id=asset.source_grant_id))
        return agreement

    @property
    def in_kind(self) -> bool:
        return self.kind == AgreementKind.SPIN_OFF

    def terminate(self, reason: str, now: datetime) -> None:
        if self.status != AgreementStatus.ACTIVE:
            raise IllegalTransition(f"agreement is {self.status}")
        if not reason.strip():
            raise InvalidInput("termination needs a reason", field="reason")
        self.status = AgreementStatus.TERMINATED
        self.termination_reason = reason
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

