"""SQLModel tables of the grants database (schema made only by Alembic migrations).

Every table derives from :class:`Base`, whose metadata is the service's own; the kit's tables
(outbox, inbox, idempotency keys, audit, decision registers) are on SQLModel's metadata,
and ``migrations/env.py`` targets both.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from servicekit.types import UtcDateTime


class Base(SQLModel, registry=registry()):
    """The grants tables: their own metadata (``Base.metadata``)."""


class CallRow(Base, table=True):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_status_created", "status", "created_at", "id"),
        Index("ix_calls_agency", "agency_id", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    agency_id: str = Field(max_length=200)
    title: str = Field(max_length=300)
    description: str = Field(sa_column=Column(Text, nullable=False))
    budget_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    max_award_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    awarded_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    opens_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    closes_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    min_reviews: int
    review_mode: str = Field(default="open", max_length=10)
    # [{up_to_vnd, min_reviews}] in ascending up_to_vnd; [] without tiers.
    review_tiers: list[dict[str, int]] = Field(default_factory=list,
                                               sa_column=Column(JSON, nullable=False))
    requires_endorsement: bool = False
    status: str = Field(max_length=20)
    cancelled_from: str | None = Field(default=None, max_length=20)
    cancel_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class ApplicationRow(Base, table=True):
    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_applicant", "applicant_id"),
        UniqueConstraint("decision_year", "decision_no", name="uq_applications_decision_no"),
    )

    id: str = Field(primary_key=True, max_length=36)
    call_id: str = Field(foreign_key="calls.id", max_length=36, index=True)
    agency_id: str = Field(max_length=200)
    applicant_id: str = Field(max_length=200)
    institution_id: str = Field(max_length=200)
    title: str = Field(max_length=300)
    abstract: str = Field(sa_column=Column(Text, nullable=False))
    requested_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    risk_level: str = Field(max_length=10)
    status: str = Field(max_length=20)
    awarded_vnd: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    decision_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    grant_id: str | None = Field(default=None, max_length=36)
    decision_no: str | None = Field(default=None, max_length=120)
    decision_year: int | None = None
    version: int = 1
    # The reviews a decision needs (the call's tier for requested_vnd): kept with the
    # application for the programme manager's "lacks reviewers" query; the call's tiers
    # never change once it is published, and requested_vnd only while a draft.
    reviews_needed: int
    endorsed_by: str | None = Field(default=None, max_length=200)
    endorsed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    withdrawal_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    submitted_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    decided_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    withdrawn_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))


class TeamMemberRow(Base, table=True):
    __tablename__ = "application_team"
    __table_args__ = (Index("ix_application_team_researcher", "researcher_id"),)

    application_id: str = Field(foreign_key="applications.id", primary_key=True, max_length=36)
    researcher_id: str = Field(primary_key=True, max_length=200)
    position: int
    name: str = Field(max_length=200)
    role: str = Field(max_length=100)
    contribution_bp: int


class MilestonePlanRow(Base, table=True):
    __tablename__ = "application_milestones"

    application_id: str = Field(foreign_key="applications.id", primary_key=True, max_length=36)
    position: int = Field(primary_key=True)
    title: str = Field(max_length=300)
    deliverable: str = Field(sa_column=Column(Text, nullable=False))
    verification: str = Field(sa_column=Column(Text, nullable=False))
    due_date: date
    tranche_bp: int


class ReviewRow(Base, table=True):
    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("application_id", "reviewer_id", name="uq_reviews_one_per_reviewer"),
    )

    id: str = Field(primary_key=True, max_length=36)
    application_id: str = Field(foreign_key="applications.id", max_length=36, index=True)
    reviewer_id: str = Field(max_length=200)
    reviewer_org: str = Field(max_length=200)
    scores: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    recommendation: str = Field(max_length=10)
    comment: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class AssignmentRow(Base, table=True):
    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_reviewer", "reviewer_id", "created_at", "id"),
        Index("ix_assignments_agency", "agency_id", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    application_id: str = Field(foreign_key="applications.id", max_length=36, index=True)
    call_id: str = Field(foreign_key="calls.id", max_length=36)
    agency_id: str = Field(max_length=200)
    reviewer_id: str = Field(max_length=200)
    reviewer_org: str = Field(max_length=200)
    name: str = Field(max_length=200)
    due_on: date
    status: str = Field(max_length=20)
    assigned_by: str = Field(max_length=200)
    conflict_of_interest: bool | None = None
    statement: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    declared_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    decline_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    release_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class GrantRow(Base, table=True):
    __tablename__ = "grants"
    __table_args__ = (
        Index("ix_grants_status", "status", "created_at", "id"),
        UniqueConstraint("decision_year", "decision_no", name="uq_grants_decision_no"),
    )

    id: str = Field(primary_key=True, max_length=36)
    application_id: str = Field(foreign_key="applications.id", max_length=36, unique=True)
    call_id: str = Field(foreign_key="calls.id", max_length=36, index=True)
    agency_id: str = Field(max_length=200, index=True)
    institution_id: str = Field(max_length=200, index=True)
    awarded_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    disbursed_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cancelled_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refund_due_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=20)
    outcome: str | None = Field(default=None, max_length=30)
    liability: str | None = Field(default=None, max_length=20)
    justification: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    breach_stated: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    procedures_followed: bool | None = None
    award_decision_no: str | None = Field(default=None, max_length=120)
    award_decision_year: int | None = None
    # The closure's number (null while the grant is active).
    decision_no: str | None = Field(default=None, max_length=120)
    decision_year: int | None = None
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))


class MilestoneRow(Base, table=True):
    __tablename__ = "milestones"
    __table_args__ = (UniqueConstraint("grant_id", "seq", name="uq_milestones_grant_seq"),)

    id: str = Field(primary_key=True, max_length=36)
    grant_id: str = Field(foreign_key="grants.id", max_length=36, index=True)
    seq: int
    title: str = Field(max_length=300)
    deliverable: str = Field(sa_column=Column(Text, nullable=False))
    verification: str = Field(sa_column=Column(Text, nullable=False))
    due_date: date
    tranche_bp: int
    tranche_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=20)
    released_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cancelled_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    completion_bp: int | None = None
    report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    reject_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ResultRow(Base, table=True):
    __tablename__ = "results"

    id: str = Field(primary_key=True, max_length=36)
    grant_id: str = Field(foreign_key="grants.id", max_length=36, index=True)
    kind: str = Field(max_length=30)
    title: str = Field(max_length=300)
    authors: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    registered_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class BreachRow(Base, table=True):
    __tablename__ = "breaches"

    id: str = Field(primary_key=True, max_length=36)
    grant_id: str = Field(foreign_key="grants.id", max_length=36, index=True)
    kind: str = Field(max_length=20)
    description: str = Field(sa_column=Column(Text, nullable=False))
    recorded_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class IncomeRow(Base, table=True):
    """Commercialisation income attributed to a source grant, from ipshare's events.

    Kept even when the grant is not (yet) known here; it counts once the grant is.
    Reversals are stored with negative amounts, so sums are net of reversals.
    """

    __tablename__ = "commercialisation_income"

    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=200)
    distribution_id: str = Field(max_length=64, index=True)
    source_grant_id: str = Field(max_length=64, index=True)
    gross_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    researchers_vnd: int = Field(sa_column=Column(BigInteger, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    received_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
