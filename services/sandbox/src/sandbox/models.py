"""SQLModel tables of the sandbox database (schema made only by Alembic migrations).

Every table derives from :class:`Base`, whose metadata is the sandbox's own: another
service's tables of the same name (grants has ``applications`` too) never share it.
The kit's tables (outbox, inbox, idempotency keys, audit, decision registers) are on
SQLModel's metadata; ``migrations/env.py`` targets both.

Scopes and limits are kept as columns (regions as a JSON list), so a page of the public
register is read from one row per pilot. Business dates are ``DATE`` (Vietnam's days),
instants UTC, money BIGINT đồng.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from servicekit.types import UtcDateTime


class Base(SQLModel, registry=registry()):
    """The sandbox's tables: their own metadata (``Base.metadata``)."""


def _text(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_column=Column(Text, nullable=nullable))


def _json(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_column=Column(JSON, nullable=nullable))


def _bigint(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ...,
                 sa_column=Column(BigInteger, nullable=nullable))


def _instant(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ...,
                 sa_column=Column(UtcDateTime, nullable=nullable))


AWAITING_DECISION_SQL = text("status IN ('submitted', 'under_assessment')")


class ApplicationRow(Base, table=True):
    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_created", "created_at", "id"),
        Index("ix_applications_owner", "owner_id", "created_at", "id"),
        Index("ix_applications_status", "status", "created_at", "id"),
        Index("ix_applications_sector", "sector", "status", "created_at", "id"),
        Index("ix_applications_decision_due", "decision_due_on",
              postgresql_where=AWAITING_DECISION_SQL, sqlite_where=AWAITING_DECISION_SQL),
    )

    id: str = Field(primary_key=True, max_length=36)
    owner_id: str = Field(max_length=200)
    organisation_id: str = Field(max_length=200)
    firm_name: str = Field(max_length=300)
    enterprise_code: str = Field(max_length=10)
    sector: str = Field(max_length=30)
    supervising_agency: str = Field(max_length=50)
    technology: str = Field(max_length=300)
    description: str = _text()
    exemptions: list[dict[str, str]] = _json()
    scope_regions: list[str] = _json()
    scope_max_participants: int = _bigint()
    scope_max_transaction_vnd: int | None = _bigint(nullable=True)
    requested_months: int
    safeguards: str = _text()
    risk_assessment: str = _text()
    exit_plan: str = _text()
    status: str = Field(max_length=20)
    # How many times it was submitted; assessments belong to one submission.
    submission: int = 0
    # The decision clock: the deadline it was started with, the days used before the
    # current run, the day the current run began (NULL while stopped), and the due day.
    decision_deadline_days: int | None = None
    decision_days_used: int = 0
    decision_clock_since: date | None = None
    decision_due_on: date | None = None
    decision_overdue_flagged_on: date | None = None  # the scheduler's flag, once
    changes_requested: list[str] | None = _json(nullable=True)
    decision: str | None = Field(default=None, max_length=10)
    decision_no: str | None = Field(default=None, max_length=100)
    decision_year: int | None = None
    decided_by: str | None = Field(default=None, max_length=200)
    decided_on: date | None = None
    conditions: list[str] | None = _json(nullable=True)
    limits_regions: list[str] | None = _json(nullable=True)
    limits_max_participants: int | None = _bigint(nullable=True)
    limits_max_transaction_vnd: int | None = _bigint(nullable=True)
    starts_on: date | None = None
    ends_on: date | None = None
    reasons: list[str] | None = _json(nullable=True)
    pilot_id: str | None = Field(default=None, max_length=36)
    withdraw_reason: str | None = _text(nullable=True)
    created_at: datetime = _instant()
    updated_at: datetime = _instant()
    submitted_at: datetime | None = _instant(nullable=True)
    decided_at: datetime | None = _instant(nullable=True)


class AssessmentRow(Base, table=True):
    __tablename__ = "assessments"
    __table_args__ = (
        UniqueConstraint("application_id", "submission", "reviewer_id",
                         name="uq_assessments_one_per_reviewer"),
        Index("ix_assessments_application", "application_id", "created_at", "id"),
        Index("ix_assessments_reviewer", "reviewer_id", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    application_id: str = Field(foreign_key="applications.id", max_length=36)
    submission: int
    reviewer_id: str = Field(max_length=200)
    reviewer_org: str = Field(max_length=200)
    # {criterion: {"pass": bool, "note": str}} for the six criteria.
    criteria: dict[str, dict[str, Any]] = _json()
    summary: str = _text()
    passed: bool
    created_at: datetime = _instant()


class PilotRow(Base, table=True):
    __tablename__ = "pilots"
    __table_args__ = (
        # The register and the lists: keyset pages on (created_at, id), filtered.
        Index("ix_pilots_created", "created_at", "id"),
        Index("ix_pilots_status", "status", "created_at", "id"),
        Index("ix_pilots_sector", "sector", "status", "created_at", "id"),
        Index("ix_pilots_sector_created", "sector", "created_at", "id"),
        Index("ix_pilots_owner", "owner_id", "created_at", "id"),
        # The scheduler's scans: pilots to start, reports falling due, end dates passing.
        Index("ix_pilots_status_starts", "status", "starts_on"),
        Index("ix_pilots_status_report_due", "status", "next_report_due_on"),
        Index("ix_pilots_status_ends", "status", "ends_on"),
    )

    id: str = Field(primary_key=True, max_length=36)
    application_id: str = Field(foreign_key="applications.id", max_length=36, unique=True)
    owner_id: str = Field(max_length=200)
    organisation_id: str = Field(max_length=200)
    firm_name: str = Field(max_length=300)
    enterprise_code: str = Field(max_length=10)
    sector: str = Field(max_length=30)
    supervising_agency: str = Field(max_length=50)
    technology: str = Field(max_length=300)
    # The scope the firm requested: limits are never set or adjusted wider than it.
    requested_regions: list[str] = _json()
    requested_max_participants: int = _bigint()
    requested_max_transaction_vnd: int | None = _bigint(nullable=True)
    limits_regions: list[str] = _json()
    limits_max_participants: int = _bigint()
    limits_max_transaction_vnd: int | None = _bigint(nullable=True)
    conditions: list[str] = _json()
    starts_on: date
    ends_on: date
    original_ends_on: date
    extensions_used: int = 0
    status: str = Field(max_length=20)
    # The sector's numbers the pilot was approved under.
    report_frequency: str = Field(max_length=10)
    report_grace_days: int
    incident_deadline_hours: int
    # The approval decision; later decisions are rows of ``decisions``.
    decision_no: str = Field(max_length=100)
    decision_year: int
    approved_on: date
    started_on: date | None = None
    next_report_due_on: date | None = None
    report_overdue: bool = False
    report_overdue_since: date | None = None  # the due day first missed
    last_report_period: str | None = Field(default=None, max_length=10)
    breaches_count: int = 0
    incidents_count: int = 0
    suspended_at: datetime | None = _instant(nullable=True)
    suspension_reason: str | None = _text(nullable=True)
    suspension_incident_id: str | None = Field(default=None, max_length=36)
    terminated_on: date | None = None
    termination_reason: str | None = _text(nullable=True)
    expired_on: date | None = None
    exited_on: date | None = None
    exit_outcome: str | None = Field(default=None, max_length=20)
    certificate_no: str | None = Field(default=None, max_length=100)
    certificate_issued_on: date | None = None
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class DecisionRow(Base, table=True):
    """Every formal decision, numbered in its supervising agency's register for the
    year: approvals, rejections, suspensions a reviewer decides, terminations, exit
    acceptances. The unique key refuses a number given twice."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("decision_no", "decision_year", name="uq_decisions_number"),
        Index("ix_decisions_application", "application_id", "decided_at"),
        Index("ix_decisions_pilot", "pilot_id", "decided_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    register_name: str = Field(max_length=100)
    decision_no: str = Field(max_length=100)
    decision_year: int
    kind: str = Field(max_length=30)
    application_id: str = Field(foreign_key="applications.id", max_length=36)
    pilot_id: str | None = Field(default=None, foreign_key="pilots.id", max_length=36)
    decided_by: str = Field(max_length=200)
    decided_on: date
    decided_at: datetime = _instant()
    reason: str | None = _text(nullable=True)


class ReportRow(Base, table=True):
    """A periodic report: one per pilot and period (``2026-Q1`` or ``2026-03``)."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("pilot_id", "period", name="uq_reports_one_per_period"),
        Index("ix_reports_pilot", "pilot_id", "filed_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    pilot_id: str = Field(foreign_key="pilots.id", max_length=36)
    period: str = Field(max_length=10)
    period_starts_on: date
    period_ends_on: date
    participants: int = _bigint()
    transactions_vnd: int = _bigint()
    largest_transaction_vnd: int | None = _bigint(nullable=True)
    regions: list[str] | None = _json(nullable=True)
    kpis: dict[str, float] = _json()
    complaints: int
    # [{"limit", "allowed", "reported"}] for every figure over a limit.
    breaches: list[dict[str, Any]] = _json()
    due_on: date | None = None
    filed_late: bool = False
    filed_by: str = Field(max_length=200)
    filed_at: datetime = _instant()


class IncidentRow(Base, table=True):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_pilot", "pilot_id", "reported_at", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    pilot_id: str = Field(foreign_key="pilots.id", max_length=36)
    severity: str = Field(max_length=10)
    description: str = _text()
    occurred_at: datetime = _instant()
    reported_at: datetime = _instant()
    reported_by: str = Field(max_length=200)
    reporter_role: str = Field(max_length=60)
    # Reported within the sector's deadline (occurred_at + incident_deadline_hours)?
    deadline_at: datetime = _instant()
    reported_in_time: bool
    suspended_pilot: bool = False


class ExitRow(Base, table=True):
    """A pilot's final report (filed by the owner) and its acceptance by a reviewer."""

    __tablename__ = "exits"

    id: str = Field(primary_key=True, max_length=36)
    pilot_id: str = Field(foreign_key="pilots.id", max_length=36, unique=True)
    outcome: str = Field(max_length=20)
    final_report: str = _text()
    lessons: str = _text()
    recommendations: list[str] = _json()
    kpi_results: dict[str, Any] | None = _json(nullable=True)
    status: str = Field(max_length=20)
    filed_by: str = Field(max_length=200)
    filed_at: datetime = _instant()
    accepted_by: str | None = Field(default=None, max_length=200)
    accepted_at: datetime | None = _instant(nullable=True)
    note: str | None = _text(nullable=True)
    decision_no: str | None = Field(default=None, max_length=100)
    decision_year: int | None = None
    certificate_no: str | None = Field(default=None, max_length=100)


class SchedulerRunRow(Base, table=True):
    """One row per scheduler job and business day: the replica that ran it last, when,
    and the actions it took that day (``sandbox.scheduler``; runs are serialised by an
    advisory lock, each action by its row's lock)."""

    __tablename__ = "scheduler_runs"

    job: str = Field(primary_key=True, max_length=60)
    run_on: date = Field(primary_key=True)
    runner: str = Field(max_length=200)
    started_at: datetime = _instant()
    finished_at: datetime | None = _instant(nullable=True)
    actions: int = 0
