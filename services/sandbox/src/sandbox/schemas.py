"""Request and response models of the sandbox API.

Request bodies refuse fields they do not know (a misspelt ``max_participants`` would
otherwise be dropped silently); free text is :data:`~servicekit.inputs.Text` (trimmed,
NFC, no NUL), dates ``YYYY-MM-DD``, money strict integer đồng.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from sandbox.domain.applications import CRITERIA
from servicekit.inputs import CalendarDate, NonNegativeVnd, Text, UtcTime, Vnd, integer

Tally = integer(ge=0, le=10**9)
Kpi = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e15, le=1e15)]
Count = integer(ge=1, le=10**9)
Region = Annotated[Text, Field(min_length=1, max_length=100)]
Reason = Annotated[Text, Field(min_length=1, max_length=2_000)]
LongText = Annotated[Text, Field(min_length=1, max_length=20_000)]

STRICT = ConfigDict(extra="forbid")


# --- sectors -------------------------------------------------------------------------------

class SectorRead(BaseModel):
    sector: str
    name: str
    supervising_agency: str
    decision_register: str = Field(description="The supervising agency's sandbox register that "
                                      "numbers the sector's decisions (QĐ-TNKS-<agency>)")
    basis: str
    max_initial_months: int
    max_extensions: int
    max_extension_months: int
    max_total_months: int | None
    ends_before: date | None = Field(description="A pilot's last day is before this date")
    report_frequency: Literal["monthly", "quarterly"]
    report_grace_days: int = Field(description="Days after a period ends until its report "
                                               "falls due")
    decision_deadline_days: int
    start_deadline_days: int
    incident_deadline_hours: int
    exemptible_provisions: list[str] = Field(description="Empty: any provision, as the "
                                                         "reviewers judge")


class SectorList(BaseModel):
    """A list as every list is shaped and paged (all the profiles fit on the default page)."""

    items: list[SectorRead]
    next_cursor: str | None = None


# --- applications --------------------------------------------------------------------------

class ExemptionIn(BaseModel):
    model_config = STRICT
    provision: Annotated[Text, Field(min_length=1, max_length=300)]
    justification: LongText


class ScopeIn(BaseModel):
    model_config = STRICT
    regions: list[Region] = Field(min_length=1, max_length=100)
    max_participants: Count
    max_transaction_vnd: Vnd | None = None


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "firm_name": "Công ty Cổ phần Tài chính Số", "enterprise_code": "0101234567",
        "sector": "fintech", "technology": "P2P lending platform",
        "description": "Peer-to-peer loans to small businesses",
        "exemptions": [{"provision": "p2p_lending",
                        "justification": "no licence category exists yet"}],
        "scope": {"regions": ["HN", "HCM"], "max_participants": 5000,
                  "max_transaction_vnd": 50000000},
        "requested_months": 18, "safeguards": "escrow accounts",
        "risk_assessment": "credit and fraud risks ...", "exit_plan": "wind down ..."}]})

    firm_name: Annotated[Text, Field(min_length=1, max_length=300)]
    enterprise_code: Annotated[str, Field(min_length=1, max_length=20, description=(
        "The firm's 10-digit enterprise code"))]
    sector: Annotated[str, Field(min_length=1, max_length=30, description=(
        "One of GET /v1/sectors"))]
    technology: Annotated[Text, Field(min_length=1, max_length=300)]
    description: Annotated[Text, Field(max_length=20_000)] = ""
    exemptions: list[ExemptionIn] = Field(min_length=1, max_length=50)
    scope: ScopeIn
    requested_months: integer(ge=1, le=600)
    safeguards: LongText
    risk_assessment: LongText
    exit_plan: LongText


class Exemption(BaseModel):
    provision: str
    justification: str


class ScopeRead(BaseModel):
    regions: list[str]
    max_participants: int
    max_transaction_vnd: int | None


class ApplicationRead(BaseModel):
    id: str
    owner_id: str
    organisation_id: str
    firm_name: str
    enterprise_code: str
    sector: str
    supervising_agency: str
    technology: str
    description: str
    exemptions: list[Exemption]
    scope: ScopeRead
    requested_months: int
    safeguards: str
    risk_assessment: str
    exit_plan: str
    status: str
    submission: int = Field(description="How many times it was submitted")
    assessments_count: int = Field(description="Assessments of the current submission")
    decision_due_on: date | None = Field(description="While awaiting a decision: the day "
                                                     "the sector's decision clock runs out")
    overdue: bool
    decision_days_left: int | None = Field(description="Days left on the decision clock "
                                                       "(also while it is stopped)")
    changes_requested: list[str]
    decision: Literal["approve", "reject"] | None = None
    decision_no: str | None = None
    decision_year: int | None = None
    decided_on: date | None = None
    conditions: list[str] | None = None
    limits: ScopeRead | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    reasons: list[str]
    pilot_id: str | None = None
    withdraw_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    decided_at: datetime | None = None


class ApplicationPage(BaseModel):
    items: list[ApplicationRead]
    next_cursor: str | None = None


class Withdrawal(BaseModel):
    model_config = STRICT
    reason: Reason


class ChangesRequest(BaseModel):
    model_config = STRICT
    reasons: list[Reason] = Field(min_length=1, max_length=50)


# --- assessments ---------------------------------------------------------------------------

class CriterionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    passed: StrictBool = Field(alias="pass")
    note: Annotated[Text, Field(max_length=5_000)] = ""


class CriteriaIn(BaseModel):
    model_config = STRICT
    in_scope: CriterionIn
    genuine_innovation: CriterionIn
    consumer_benefit: CriterionIn
    need_for_sandbox: CriterionIn
    readiness: CriterionIn
    risk_controls: CriterionIn


assert tuple(CriteriaIn.model_fields) == CRITERIA  # the contract's six, in its order


class AssessmentCreate(BaseModel):
    model_config = STRICT
    criteria: CriteriaIn
    summary: Annotated[Text, Field(max_length=10_000)] = ""


class CriterionRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    passed: bool = Field(alias="pass")
    note: str


class AssessmentRead(BaseModel):
    id: str
    application_id: str
    submission: int
    reviewer_id: str
    reviewer_org: str
    criteria: dict[str, CriterionRead]
    summary: str
    passed: bool
    failed: list[str]
    created_at: datetime


class AssessmentPage(BaseModel):
    items: list[AssessmentRead]
    next_cursor: str | None = None


# --- decisions -----------------------------------------------------------------------------

class Approve(BaseModel):
    model_config = STRICT
    decision: Literal["approve"]
    conditions: list[Reason] = Field(min_length=1, max_length=100)
    limits: ScopeIn
    starts_on: CalendarDate
    ends_on: CalendarDate


class Reject(BaseModel):
    model_config = STRICT
    decision: Literal["reject"]
    reasons: list[Reason] = Field(min_length=1, max_length=50)


Decision = Annotated[Approve | Reject, Field(discriminator="decision")]


class DecisionRead(BaseModel):
    kind: str
    decision_no: str
    decision_year: int
    decided_on: date


# --- pilots --------------------------------------------------------------------------------

class BreachRead(BaseModel):
    limit: str
    allowed: Any
    reported: Any


class ReportRead(BaseModel):
    id: str
    pilot_id: str
    period: str
    participants: int
    transactions_vnd: int
    largest_transaction_vnd: int | None
    regions: list[str] | None
    kpis: dict[str, float]
    complaints: int
    breaches: list[BreachRead]
    due_on: date | None
    filed_late: bool
    created_at: datetime


class IncidentRead(BaseModel):
    id: str
    pilot_id: str
    severity: str
    description: str
    occurred_at: datetime
    reported_at: datetime
    reported_in_time: bool
    deadline_at: datetime
    suspended_pilot: bool
    created_at: datetime


class ReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "period": "2026-Q1", "participants": 820, "transactions_vnd": 4_100_000_000,
        "largest_transaction_vnd": 9_500_000, "regions": ["HN"],
        "kpis": {"default_rate_pct": 1.2}, "complaints": 3}]})

    period: Annotated[str, Field(min_length=7, max_length=7, description=(
        "The period reported, in the pilot's frequency: a quarter (2026-Q1) or a month "
        "(2026-03); reported once it is over, once"))]
    participants: Tally
    transactions_vnd: NonNegativeVnd = Field(description="The period's total")
    largest_transaction_vnd: NonNegativeVnd | None = Field(default=None, description=(
        "Required when the pilot's limits cap one transaction"))
    regions: list[Region] | None = Field(default=None, max_length=100,
                                         description="The regions served in the period")
    kpis: dict[Annotated[str, Field(min_length=1, max_length=100)], Kpi] = Field(
        default_factory=dict, max_length=100)
    complaints: Tally


class IncidentCreate(BaseModel):
    model_config = STRICT
    severity: Literal["low", "medium", "high", "critical"] = Field(description=(
        "critical suspends the pilot at once"))
    description: LongText
    occurred_at: UtcTime | None = Field(default=None, description=(
        "When it occurred (RFC 3339); default: when reported"))


class ReasonBody(BaseModel):
    model_config = STRICT
    reason: Reason


class Extension(BaseModel):
    model_config = STRICT
    ends_on: CalendarDate = Field(description="The new last day, after the current one")
    reason: Reason


class Adjustment(BaseModel):
    model_config = STRICT
    conditions: list[Reason] | None = Field(default=None, min_length=1, max_length=100,
                                            description="The conditions in force from now")
    limits: ScopeIn | None = Field(default=None, description=(
        "The limits in force from now: never wider than the requested scope"))
    reason: Reason


class ExitCreate(BaseModel):
    model_config = STRICT
    outcome: Literal["graduate", "discontinue"] = Field(description=(
        "graduate: recommend permanent rules or a licence (a certificate of completion); "
        "discontinue"))
    final_report: LongText
    lessons: LongText
    recommendations: list[Reason] = Field(default_factory=list, max_length=100,
                                          description="Recommended rule changes")
    kpi_results: dict[Annotated[str, Field(min_length=1, max_length=100)], Kpi] | None = \
        Field(default=None, max_length=100, description="Results against the KPIs")


class ExitAccept(BaseModel):
    model_config = STRICT
    note: Annotated[Text, Field(max_length=10_000)] = ""


class ExitRead(BaseModel):
    id: str
    pilot_id: str
    outcome: str
    final_report: str
    lessons: str
    recommendations: list[str]
    kpi_results: dict[str, float] | None
    status: Literal["filed", "accepted"]
    filed_at: datetime
    accepted_at: datetime | None
    note: str | None
    decision_no: str | None
    decision_year: int | None
    certificate_no: str | None
    created_at: datetime


class ReportPage(BaseModel):
    items: list[ReportRead]
    next_cursor: str | None = None


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    next_cursor: str | None = None


class PilotRead(BaseModel):
    id: str
    application_id: str
    owner_id: str
    organisation_id: str
    firm_name: str
    enterprise_code: str
    sector: str
    supervising_agency: str
    technology: str
    requested_scope: ScopeRead
    limits: ScopeRead
    conditions: list[str]
    starts_on: date
    ends_on: date
    original_ends_on: date
    extensions_used: int
    status: str
    decision_no: str
    decision_year: int
    decisions: list[DecisionRead]
    approved_on: date
    started_on: date | None
    report_frequency: str
    next_report_due_on: date | None
    report_overdue: bool
    incident_deadline_hours: int
    certificate_no: str | None
    certificate_issued_on: date | None
    last_report_period: str | None
    breaches_count: int
    incidents_count: int
    suspended_at: datetime | None
    suspension_reason: str | None
    suspension_incident_id: str | None = Field(description=(
        "The critical incident that suspended the pilot, if one did"))
    terminated_on: date | None
    termination_reason: str | None
    expired_on: date | None
    exited_on: date | None
    exit_outcome: Literal["graduate", "discontinue"] | None
    created_at: datetime
    updated_at: datetime


class PilotDetail(PilotRead):
    reports: list[ReportRead]
    incidents: list[IncidentRead]
    exit: ExitRead | None = Field(description="The exit report, once filed")


class PilotPage(BaseModel):
    items: list[PilotRead]
    next_cursor: str | None = None


# --- the public register -------------------------------------------------------------------

class RegisterEntry(BaseModel):
    """A pilot as the public register shows it: never the confidential parts (risk
    assessment, reviewers' notes, reports, incidents, the people involved)."""

    pilot_id: str
    firm_name: str
    enterprise_code: str
    sector: str
    supervising_agency: str
    technology: str
    scope: ScopeRead = Field(description="The limits in force")
    conditions: list[str]
    approved_on: date
    starts_on: date
    ends_on: date
    status: str
    decision_no: str = Field(description="The approval's number")
    decision_year: int
    decisions: list[DecisionRead]
    certificate_no: str | None


class RegisterPage(BaseModel):
    items: list[RegisterEntry]
    next_cursor: str | None = None
