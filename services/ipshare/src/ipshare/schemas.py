"""Request and response models of the ipshare API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ipshare.domain.assets import AgreementKind, AssetKind
from ipshare.domain.split import Basis
from servicekit.inputs import CalendarDate, NonNegativeVnd, Opaque, Text, Vnd, integer

Bp = integer(ge=1, le=10_000)


class AuthorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    researcher_id: Opaque = Field(min_length=1, max_length=200)
    name: Text = Field(min_length=1, max_length=200)
    contribution_bp: Bp


class AuthorRead(BaseModel):
    """An author as stored (read models take stored values as they are)."""

    researcher_id: str
    name: str
    contribution_bp: int


def _example(example: dict) -> ConfigDict:
    """A request body's settings: its example in the API documentation (tests post every
    one of them), and no field it does not know. Money is at stake: a misspelt
    ``cost_vnd`` ignored would post the income as if it had no costs."""
    return ConfigDict(json_schema_extra={"examples": [example]}, extra="forbid")


class AssetCreate(BaseModel):
    model_config = _example({
        "kind": "patent", "title": "Low-cost salinity sensor for Mekong rice fields",
        "authors": [
            {"researcher_id": "r-an", "name": "Nguyễn Văn An", "contribution_bp": 7000},
            {"researcher_id": "r-binh", "name": "Trần Thị Bình", "contribution_bp": 3000}],
        "source_grant_id": None})

    institution_id: Opaque | None = Field(default=None, min_length=1, max_length=200,
                                        description="defaults to the caller's organisation")
    kind: AssetKind
    title: Text = Field(min_length=1, max_length=300)
    authors: list[AuthorIn] = Field(min_length=1, max_length=100)
    source_grant_id: str | None = Field(default=None, description=(
        "always null here: an asset from a grant is registered by the grants service's "
        "`grants.result.registered` event, which carries the grant"))

    @field_validator("source_grant_id")
    @classmethod
    def _not_from_a_grant(cls, value: str | None) -> None:
        # Else any institution could attach its income to another's grant in the
        # ministry's portfolio (grants attributes income by source_grant_id).
        if value is not None:
            raise ValueError("an asset from a grant is registered from the grant's result "
                             "(grants.result.registered), not here; leave source_grant_id "
                             "null")
        return None


class AssetRead(BaseModel):
    id: str
    institution_id: str
    kind: str
    title: str
    authors: list[AuthorRead]
    source_grant_id: str | None
    source_result_id: str | None = None
    created_at: datetime


class AssetPage(BaseModel):
    items: list[AssetRead]
    next_cursor: str | None = None


class PolicyUpdate(BaseModel):
    model_config = _example({"researcher_share_bp": 3000, "basis": "gross"})

    researcher_share_bp: integer(le=10_000) = 3000
    basis: Basis = Basis.NET


class PolicyRead(BaseModel):
    institution_id: str
    researcher_share_bp: int
    basis: str
    version: int
    updated_at: datetime | None = None


class AgreementCreate(BaseModel):
    model_config = _example({"kind": "licence", "counterparty": "Công ty Nông nghiệp Xanh",
                             "signed_on": "2026-11-01",
                             "terms": "Non-exclusive licence, 5% royalty on net sales"})

    kind: AgreementKind
    counterparty: Text = Field(min_length=1, max_length=300)
    signed_on: CalendarDate
    terms: Text = Field(default="", max_length=50_000)


class AgreementRead(BaseModel):
    id: str
    asset_id: str
    institution_id: str
    kind: str
    counterparty: str
    signed_on: date
    terms: str
    status: str
    termination_reason: str | None = None
    created_at: datetime


class AgreementPage(BaseModel):
    items: list[AgreementRead]
    next_cursor: str | None = None


class Reason(BaseModel):
    model_config = _example({"reason": "Invoice INV-2026-0042 was issued twice"})

    reason: Text = Field(min_length=1, max_length=5_000)


class IncomeCreate(BaseModel):
    # domain.md §3's worked example: at 30 % on gross, authors 70/30, this splits into
    # 210,000,002 / 90,000,001 and 700,000,004 for the institution.
    model_config = _example({"period": "2026-Q4", "gross_vnd": 1_000_000_007,
                             "costs_vnd": 0, "reference": "INV-2026-0042"})

    period: Text = Field(min_length=1, max_length=100)
    gross_vnd: Vnd
    costs_vnd: NonNegativeVnd = 0
    reference: Opaque = Field(min_length=1, max_length=200)


class PolicyUsed(BaseModel):
    researcher_share_bp: int
    basis: str
    version: int


class Line(BaseModel):
    payee_id: str
    payee_kind: Literal["researcher", "institution"]
    amount_vnd: int


class DistributionRead(BaseModel):
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
    policy: PolicyUsed
    lines: list[Line]
    in_kind: bool
    status: str
    reversal_reason: str | None = None
    created_at: datetime
    reversed_at: datetime | None = None


class DistributionPage(BaseModel):
    items: list[DistributionRead]
    next_cursor: str | None = None


class StatementItem(BaseModel):
    entry_id: int
    at: datetime
    distribution_id: str
    kind: str
    account: str
    reference: str
    amount_vnd: int
    balance_vnd: int


class Statement(BaseModel):
    payee_id: str
    opening_balance_vnd: int
    items: list[StatementItem]
    closing_balance_vnd: int
    next_cursor: str | None = None


class AccountBalance(BaseModel):
    account: str
    balance_vnd: int


class TrialBalance(BaseModel):
    accounts: list[AccountBalance]
    total_vnd: int
