"""Applications, team, milestone plans, reviews, grants, milestones, results,
breaches and commercialisation income attributed from ipshare.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 07:59:11.581072
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commercialisation_income",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("distribution_id", sa.String(64), nullable=False),
        sa.Column("source_grant_id", sa.String(64), nullable=False),
        sa.Column("gross_vnd", sa.BigInteger(), nullable=False),
        sa.Column("researchers_vnd", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        op.f("ix_commercialisation_income_distribution_id"),
        "commercialisation_income",
        ["distribution_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_commercialisation_income_source_grant_id"),
        "commercialisation_income",
        ["source_grant_id"],
        unique=False,
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("agency_id", sa.String(200), nullable=False),
        sa.Column("applicant_id", sa.String(200), nullable=False),
        sa.Column("institution_id", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("requested_vnd", sa.BigInteger(), nullable=False),
        sa.Column("risk_level", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("awarded_vnd", sa.BigInteger(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_applications_call_id"), "applications", ["call_id"], unique=False)
    op.create_table(
        "application_milestones",
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("deliverable", sa.Text(), nullable=False),
        sa.Column("verification", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("tranche_bp", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
        ),
        sa.PrimaryKeyConstraint("application_id", "position"),
    )
    op.create_table(
        "application_team",
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("researcher_id", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("contribution_bp", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
        ),
        sa.PrimaryKeyConstraint("application_id", "researcher_id"),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("agency_id", sa.String(200), nullable=False),
        sa.Column("institution_id", sa.String(200), nullable=False),
        sa.Column("awarded_vnd", sa.BigInteger(), nullable=False),
        sa.Column("disbursed_vnd", sa.BigInteger(), nullable=False),
        sa.Column("cancelled_vnd", sa.BigInteger(), nullable=False),
        sa.Column("refund_due_vnd", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(30), nullable=True),
        sa.Column("liability", sa.String(20), nullable=True),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("breach_stated", sa.Text(), nullable=True),
        sa.Column("procedures_followed", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id"),
        sa.CheckConstraint("awarded_vnd > 0", name="ck_grants_award_positive"),
        sa.CheckConstraint(
            "disbursed_vnd >= 0 AND disbursed_vnd + cancelled_vnd <= awarded_vnd",
            name="ck_grants_never_over_disbursed",
        ),
        sa.CheckConstraint(
            "refund_due_vnd >= 0 AND refund_due_vnd <= disbursed_vnd",
            name="ck_grants_refund_within_disbursed",
        ),
    )
    op.create_index(op.f("ix_grants_agency_id"), "grants", ["agency_id"], unique=False)
    op.create_index(op.f("ix_grants_call_id"), "grants", ["call_id"], unique=False)
    op.create_index(op.f("ix_grants_institution_id"), "grants", ["institution_id"], unique=False)
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("reviewer_id", sa.String(200), nullable=False),
        sa.Column("reviewer_org", sa.String(200), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("recommendation", sa.String(10), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id", "reviewer_id", name="uq_reviews_one_per_reviewer"),
    )
    op.create_index(op.f("ix_reviews_application_id"), "reviews", ["application_id"], unique=False)
    op.create_table(
        "breaches",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("grant_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_breaches_grant_id"), "breaches", ["grant_id"], unique=False)
    op.create_table(
        "milestones",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("grant_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("deliverable", sa.Text(), nullable=False),
        sa.Column("verification", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("tranche_bp", sa.Integer(), nullable=False),
        sa.Column("tranche_vnd", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("released_vnd", sa.BigInteger(), nullable=False),
        sa.Column("cancelled_vnd", sa.BigInteger(), nullable=False),
        sa.Column("completion_bp", sa.Integer(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("grant_id", "seq", name="uq_milestones_grant_seq"),
    )
    op.create_index(op.f("ix_milestones_grant_id"), "milestones", ["grant_id"], unique=False)
    op.create_table(
        "results",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("grant_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("registered_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_results_grant_id"), "results", ["grant_id"], unique=False)
    op.create_index("ix_application_team_researcher", "application_team", ["researcher_id"])
    op.create_index("ix_applications_applicant", "applications", ["applicant_id"])
    op.create_index("ix_grants_status", "grants", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_grants_status", table_name="grants")
    op.drop_index("ix_applications_applicant", table_name="applications")
    op.drop_index("ix_application_team_researcher", table_name="application_team")
    op.drop_index(op.f("ix_results_grant_id"), table_name="results")
    op.drop_table("results")
    op.drop_index(op.f("ix_milestones_grant_id"), table_name="milestones")
    op.drop_table("milestones")
    op.drop_index(op.f("ix_breaches_grant_id"), table_name="breaches")
    op.drop_table("breaches")
    op.drop_index(op.f("ix_reviews_application_id"), table_name="reviews")
    op.drop_table("reviews")
    op.drop_index(op.f("ix_grants_institution_id"), table_name="grants")
    op.drop_index(op.f("ix_grants_call_id"), table_name="grants")
    op.drop_index(op.f("ix_grants_agency_id"), table_name="grants")
    op.drop_table("grants")
    op.drop_table("application_team")
    op.drop_table("application_milestones")
    op.drop_index(op.f("ix_applications_call_id"), table_name="applications")
    op.drop_table("applications")
    op.drop_index(
        op.f("ix_commercialisation_income_source_grant_id"), table_name="commercialisation_income"
    )
    op.drop_index(
        op.f("ix_commercialisation_income_distribution_id"), table_name="commercialisation_income"
    )
    op.drop_table("commercialisation_income")
