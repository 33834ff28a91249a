"""Request and response models of the grants API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool

from grants.domain.applications import Recommendation, RiskLevel
from grants.domain.calls import ReviewMode
from grants.domain.grants import BreachKind, Outcome, ResultKind
from servicekit.inputs import CalendarDate, Opaque, Text, UtcTime, Vnd, integer

Reviews = integer(ge=1, le=20)


class ReviewTierIn(BaseModel):
    """Applications requesting up to ``up_to_vnd`` need ``min_reviews`` reviews."""

    up_to_vnd: Vnd
    min_reviews: Reviews


class ReviewTierOut(BaseModel):
    up_to_vnd: int
    min_reviews: int


class CallCreate(BaseModel):
    """A call's terms: the body of POST /v1/calls and of PUT /v1/calls/{id}."""

    title: Text = Field(min_length=1, max_length=300)
    description: Text = Field(default="", max_length=20_000)
    budget_vnd: Vnd
    max_award_vnd: Vnd
    opens_at: UtcTime
    closes_at: UtcTime
    min_reviews: Reviews = 2
    review_mode: ReviewMode = Field(default=ReviewMode.OPEN, description=(
        "open: any reviewer without a conflict of interest may review; assigned: only "
        "the reviewers the programme manager assigned, once they declared no conflict"))
    review_tiers: list[ReviewTierIn] = Field(default_factory=list, max_length=10, description=(
        "The reviews a decision needs by amount requested: the first tier whose up_to_vnd "
        "covers it, the last tier's above them all. up_to_vnd strictly ascending, "
        "min_reviews non-decreasing and never below the call's min_reviews"))
    requires_endorsement: StrictBool = Field(default=False, description=(
        "A draft is submitted only once its host institution endorsed it"))


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
    review_mode: str
    review_tiers: list[ReviewTierOut]
    requires_endorsement: bool
    status: str
    accepting_submissions: bool
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class CallPage(BaseModel):
    items: list[CallRead]
    next_cursor: str | None = None


# --- applications -----------------------------------------------------------------------

Bp = integer(ge=1, le=10_000)


class TeamMemberIn(BaseModel):
    researcher_id: Opaque = Field(min_length=1, max_length=200)
    name: Text = Field(min_length=1, max_length=200)
    role: Text = Field(default="member", max_length=100)
    contribution_bp: Bp


class MilestoneIn(BaseModel):
    title: Text = Field(min_length=1, max_length=300)
    deliverable: Text = Field(min_length=1, max_length=5_000)
    verification: Text = Field(default="", max_length=5_000)
    due_date: CalendarDate
    tranche_bp: Bp


class ApplicationCreate(BaseModel):
    """A draft's terms: the body of POST /v1/applications and of PUT
    /v1/applications/{id} (where call_id and institution_id cannot change)."""

    call_id: Opaque = Field(min_length=1, max_length=36)
    title: Text = Field(min_length=1, max_length=300)
    abstract: Text = Field(default="", max_length=20_000)
    institution_id: Opaque = Field(min_length=1, max_length=200)
    requested_vnd: Vnd
    risk_level: RiskLevel
    team: list[TeamMemberIn] = Field(min_length=1, max_length=100)
    milestones: list[MilestoneIn] = Field(min_length=1, max_length=50)


class TeamMemberOut(BaseModel):
    researcher_id: str
    name: str
    role: str
    contribution_bp: int


class MilestonePlanOut(BaseModel):
    title: str
    deliverable: str
    verification: str
    due_date: date
    tranche_bp: int


class ApplicationRead(BaseModel):
    id: str
    call_id: str
    agency_id: str
    applicant_id: str
    institution_id: str
    title: str
    abstract: str
    requested_vnd: int
    risk_level: str
    team: list[TeamMemberOut]
    milestones: list[MilestonePlanOut]
    status: str
    version: int = Field(description="1 when drafted, one more at each edit that changed it")
    reviews_count: int
    reviews_needed: int = Field(description=(
        "The reviews a decision needs: the call's tier for requested_vnd"))
    reviewers_assigned: int = Field(description=(
        "Reviewers assigned to it who have not declined or declared a conflict "
        "(assigned, accepted or reviewed); 0 in calls reviewed openly"))
    needs_reviewers: bool = Field(description=(
        "In a call reviewed by assignment (and not cancelled), a submitted application "
        "with fewer reviewers assigned than the reviews it needs"))
    endorsed_by: str | None = None
    endorsed_at: datetime | None = None
    withdrawal_reason: str | None = None
    withdrawn_at: datetime | None = None
    awarded_vnd: int | None = None
    decision_reason: str | None = None
    grant_id: str | None = None
    decision_no: str | None = Field(default=None, description=(
        "The award's or rejection's number in the agency's grants register, "
        "e.g. \"17/QĐ-MOST\""))
    decision_year: int | None = Field(default=None, description=(
        "The calendar year (Vietnam's) of decision_no's register"))
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    decided_at: datetime | None = None


class TeamNameRole(BaseModel):
    name: str
    role: str


class ApplicationSummary(BaseModel):
    """What an assigned reviewer reads until they declare no conflict of interest: what
    a conflict is judged on (title, call, institution, the team's names and roles)."""

    id: str
    view: Literal["summary"] = "summary"
    call_id: str
    call_title: str
    title: str
    institution_id: str
    team: list[TeamNameRole]


class ApplicationPage(BaseModel):
    items: list[ApplicationRead]
    next_cursor: str | None = None


Criterion = Annotated[Text, Field(min_length=1, max_length=100)]


class ReviewCreate(BaseModel):
    scores: dict[Criterion, integer(ge=1, le=5)] = Field(
        min_length=1, max_length=50)
    recommendation: Recommendation
    comment: Text = Field(default="", max_length=20_000)
    # A declaration: true or false, not "no" or 0 taken for false.
    conflict_of_interest: StrictBool = False


class ReviewRead(BaseModel):
    id: str
    application_id: str
    reviewer_id: str
    scores: dict[str, int]
    recommendation: str
    comment: str
    conflict_of_interest: bool = False
    created_at: datetime


class ReviewPage(BaseModel):
    items: list[ReviewRead]
    next_cursor: str | None = None


class Approve(BaseModel):
    decision: Literal["approve"]
    awarded_vnd: Vnd
    reason: Text | None = Field(default=None, max_length=5_000)


class Reject(BaseModel):
    decision: Literal["reject"]
    reason: Text = Field(min_length=1, max_length=5_000)


Decision = Annotated[Approve | Reject, Field(discriminator="decision")]


# --- grants -----------------------------------------------------------------------------

class MilestoneRead(BaseModel):
    id: str
    seq: int
    title: str
    deliverable: str
    verification: str
    tranche_bp: int
    tranche_vnd: int
    released_vnd: int
    cancelled_vnd: int
    completion_bp: int | None = None
    due_date: date
    status: str
    overdue: bool
    report: dict[str, Any] | None = None
    reject_reason: str | None = None


class BreachRead(BaseModel):
    id: str
    grant_id: str
    kind: str
    description: str
    recorded_by: str
    created_at: datetime


class GrantRead(BaseModel):
    id: str
    application_id: str
    call_id: str
    agency_id: str
    institution_id: str
    title: str
    awarded_vnd: int
    disbursed_vnd: int
    cancelled_vnd: int
    refund_due_vnd: int
    status: str
    outcome: str | None = None
    liability: str | None = None
    justification: str | None = None
    breach: str | None = None
    procedures_followed: bool | None = None
    award_decision_no: str | None = Field(default=None, description=(
        "The award decision's number (the application's decision_no)"))
    award_decision_year: int | None = None
    decision_no: str | None = Field(default=None, description=(
        "The closure decision's number, e.g. \"18/QĐ-MOST\"; null while active"))
    decision_year: int | None = None
    team: list[TeamMemberOut]
    milestones: list[MilestoneRead]
    breaches: list[BreachRead]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None


class GrantPage(BaseModel):
    items: list[GrantRead]
    next_cursor: str | None = None


class Evidence(BaseModel):
    kind: Literal["url", "document", "dataset", "demo", "other"]
    ref: Text = Field(min_length=1, max_length=2_000)


class MilestoneReport(BaseModel):
    """Evidence of the deliverable. There is deliberately no place for invoices."""

    summary: Text = Field(min_length=1, max_length=20_000)
    evidence: list[Evidence] = Field(min_length=1, max_length=50)


class Reason(BaseModel):
    reason: Text = Field(min_length=1, max_length=5_000)


class Reschedule(BaseModel):
    due_date: CalendarDate
    reason: Text = Field(min_length=1, max_length=5_000)


class AuthorIn(BaseModel):
    researcher_id: Opaque = Field(min_length=1, max_length=200)
    name: Text = Field(min_length=1, max_length=200)
    contribution_bp: Bp


class AuthorOut(BaseModel):
    researcher_id: str
    name: str
    contribution_bp: int


class ResultCreate(BaseModel):
    kind: ResultKind
    title: Text = Field(min_length=1, max_length=300)
    authors: list[AuthorIn] = Field(min_length=1, max_length=100)


class ResultRead(BaseModel):
    id: str
    grant_id: str
    institution_id: str
    kind: str
    title: str
    authors: list[AuthorOut]
    registered_by: str
    created_at: datetime


class ResultPage(BaseModel):
    items: list[ResultRead]
    next_cursor: str | None = None


class BreachCreate(BaseModel):
    kind: BreachKind
    description: Text = Field(min_length=1, max_length=20_000)


class PartialIn(BaseModel):
    milestone_id: str
    completion_bp: integer(ge=1, le=9_999)


class GrantClose(BaseModel):
    outcome: Outcome
    justification: Text = Field(default="", max_length=20_000)
    # The attestation that grants the exemption: JSON true, not "yes", "on" or 1.
    procedures_followed: StrictBool | None = None
    breach: Text | None = Field(default=None, max_length=20_000)
    refund_vnd: integer(ge=0, le=10**15) | None = None
    partial: list[PartialIn] | None = None


# --- reviewer assignments -----------------------------------------------------------------

class AssignmentCreate(BaseModel):
    reviewer_id: Opaque = Field(min_length=1, max_length=200, description=(
        "The reviewer's sub: the assignee acts with a token of this sub"))
    reviewer_org: Opaque = Field(min_length=1, max_length=200, description=(
        "The reviewer's org: the assignee's token carries it"))
    name: Text = Field(min_length=1, max_length=200)
    due_on: CalendarDate = Field(description="The review's due day (Vietnam's), not before today")


class AssignmentRead(BaseModel):
    id: str
    application_id: str
    call_id: str
    agency_id: str
    reviewer_id: str
    reviewer_org: str
    name: str
    due_on: date
    status: str = Field(description="assigned | accepted | conflict | declined | reviewed | "
                                    "released")
    overdue: bool = Field(description="Past due_on (Vietnam's day) and not reviewed yet")
    assigned_by: str
    conflict_of_interest: bool | None = Field(default=None, description=(
        "The declaration: null until the assignee declares"))
    statement: str | None = None
    declared_at: datetime | None = None
    decline_reason: str | None = None
    release_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class AssignmentPage(BaseModel):
    items: list[AssignmentRead]
    next_cursor: str | None = None


class Declaration(BaseModel):
    """The assignee's declaration, made once before reading the whole application."""

    # true or false, not "no" or 0 taken for false.
    conflict_of_interest: StrictBool
    statement: Text = Field(min_length=1, max_length=5_000)


# --- the portfolio --------------------------------------------------------------------------

class AcceptedRisk(BaseModel):
    """Failed in good faith: accepted risk, never counted as a loss."""

    count: int
    awarded_vnd: int
    disbursed_vnd: int


class Commercialisation(BaseModel):
    gross_vnd: int
    researchers_vnd: int
    distributions: int


class Metrics(BaseModel):
    grants: int
    active: int
    closed: int
    by_outcome: dict[str, int]
    success_rate: float | None
    success_rate_bp: int | None
    accepted_risk: AcceptedRisk
    awarded_vnd: int
    committed_vnd: int
    disbursed_vnd: int
    cancelled_vnd: int
    refund_due_vnd: int
    results_by_kind: dict[str, int]
    commercialisation: Commercialisation


class CallMetrics(Metrics):
    call_id: str
    title: str
    agency_id: str


class Portfolio(BaseModel):
    agency_id: str | None  # the agency whose portfolio this is; None: national
    filters: dict[str, Any]
    overall: Metrics
    by_call: list[CallMetrics]
