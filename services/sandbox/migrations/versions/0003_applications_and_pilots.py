"""The sandbox's own tables: applications and their assessments, pilots, formal
decisions, periodic reports, incidents, exits, and the scheduler's runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from servicekit.types import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('applications',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('owner_id', sa.String(length=200), nullable=False),
        sa.Column('organisation_id', sa.String(length=200), nullable=False),
        sa.Column('firm_name', sa.String(length=300), nullable=False),
        sa.Column('enterprise_code', sa.String(length=10), nullable=False),
        sa.Column('sector', sa.String(length=30), nullable=False),
        sa.Column('supervising_agency', sa.String(length=50), nullable=False),
        sa.Column('technology', sa.String(length=300), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('exemptions', sa.JSON(), nullable=False),
        sa.Column('scope_regions', sa.JSON(), nullable=False),
        sa.Column('scope_max_participants', sa.BigInteger(), nullable=False),
        sa.Column('scope_max_transaction_vnd', sa.BigInteger(), nullable=True),
        sa.Column('requested_months', sa.Integer(), nullable=False),
        sa.Column('safeguards', sa.Text(), nullable=False),
        sa.Column('risk_assessment', sa.Text(), nullable=False),
        sa.Column('exit_plan', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('submission', sa.Integer(), nullable=False),
        sa.Column('decision_deadline_days', sa.Integer(), nullable=True),
        sa.Column('decision_days_used', sa.Integer(), nullable=False),
        sa.Column('decision_clock_since', sa.Date(), nullable=True),
        sa.Column('decision_due_on', sa.Date(), nullable=True),
        sa.Column('decision_overdue_flagged_on', sa.Date(), nullable=True),
        sa.Column('changes_requested', sa.JSON(), nullable=True),
        sa.Column('decision', sa.String(length=10), nullable=True),
        sa.Column('decision_no', sa.String(length=100), nullable=True),
        sa.Column('decision_year', sa.Integer(), nullable=True),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('decided_on', sa.Date(), nullable=True),
        sa.Column('conditions', sa.JSON(), nullable=True),
        sa.Column('limits_regions', sa.JSON(), nullable=True),
        sa.Column('limits_max_participants', sa.BigInteger(), nullable=True),
        sa.Column('limits_max_transaction_vnd', sa.BigInteger(), nullable=True),
        sa.Column('starts_on', sa.Date(), nullable=True),
        sa.Column('ends_on', sa.Date(), nullable=True),
        sa.Column('reasons', sa.JSON(), nullable=True),
        sa.Column('pilot_id', sa.String(length=36), nullable=True),
        sa.Column('withdraw_reason', sa.Text(), nullable=True),
        sa.Column('created_at', UtcDateTime, nullable=False),
        sa.Column('updated_at', UtcDateTime, nullable=False),
        sa.Column('submitted_at', UtcDateTime, nullable=True),
        sa.Column('decided_at', UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_applications_created', 'applications', ['created_at', 'id'])
    awaiting = sa.text("status IN ('submitted', 'under_assessment')")
    op.create_index('ix_applications_decision_due', 'applications', ['decision_due_on'],
                    postgresql_where=awaiting, sqlite_where=awaiting)
    op.create_index('ix_applications_owner', 'applications', ['owner_id', 'created_at', 'id'])
    op.create_index('ix_applications_sector', 'applications',
                    ['sector', 'status', 'created_at', 'id'])
    op.create_index('ix_applications_status', 'applications', ['status', 'created_at', 'id'])

    op.create_table('scheduler_runs',
        sa.Column('job', sa.String(length=60), nullable=False),
        sa.Column('run_on', sa.Date(), nullable=False),
        sa.Column('runner', sa.String(length=200), nullable=False),
        sa.Column('started_at', UtcDateTime, nullable=False),
        sa.Column('finished_at', UtcDateTime, nullable=True),
        sa.Column('actions', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('job', 'run_on')
    )
    op.create_table('assessments',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('application_id', sa.String(length=36), nullable=False),
        sa.Column('submission', sa.Integer(), nullable=False),
        sa.Column('reviewer_id', sa.String(length=200), nullable=False),
        sa.Column('reviewer_org', sa.String(length=200), nullable=False),
        sa.Column('criteria', sa.JSON(), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('passed', sa.Boolean(), nullable=False),
        sa.Column('created_at', UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('application_id', 'submission', 'reviewer_id',
                            name='uq_assessments_one_per_reviewer')
    )
    op.create_index('ix_assessments_application', 'assessments',
                    ['application_id', 'created_at', 'id'])
    op.create_index('ix_assessments_reviewer', 'assessments', ['reviewer_id', 'created_at', 'id'])

    op.create_table('pilots',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('application_id', sa.String(length=36), nullable=False),
        sa.Column('owner_id', sa.String(length=200), nullable=False),
        sa.Column('organisation_id', sa.String(length=200), nullable=False),
        sa.Column('firm_name', sa.String(length=300), nullable=False),
        sa.Column('enterprise_code', sa.String(length=10), nullable=False),
        sa.Column('sector', sa.String(length=30), nullable=False),
        sa.Column('supervising_agency', sa.String(length=50), nullable=False),
        sa.Column('technology', sa.String(length=300), nullable=False),
        sa.Column('requested_regions', sa.JSON(), nullable=False),
        sa.Column('requested_max_participants', sa.BigInteger(), nullable=False),
        sa.Column('requested_max_transaction_vnd', sa.BigInteger(), nullable=True),
        sa.Column('limits_regions', sa.JSON(), nullable=False),
        sa.Column('limits_max_participants', sa.BigInteger(), nullable=False),
        sa.Column('limits_max_transaction_vnd', sa.BigInteger(), nullable=True),
        sa.Column('conditions', sa.JSON(), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('original_ends_on', sa.Date(), nullable=False),
        sa.Column('extensions_used', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('report_frequency', sa.String(length=10), nullable=False),
        sa.Column('report_grace_days', sa.Integer(), nullable=False),
        sa.Column('incident_deadline_hours', sa.Integer(), nullable=False),
        sa.Column('decision_no', sa.String(length=100), nullable=False),
        sa.Column('decision_year', sa.Integer(), nullable=False),
        sa.Column('approved_on', sa.Date(), nullable=False),
        sa.Column('started_on', sa.Date(), nullable=True),
        sa.Column('next_report_due_on', sa.Date(), nullable=True),
        sa.Column('report_overdue', sa.Boolean(), nullable=False),
        sa.Column('report_overdue_since', sa.Date(), nullable=True),
        sa.Column('last_report_period', sa.String(length=10), nullable=True),
        sa.Column('breaches_count', sa.Integer(), nullable=False),
        sa.Column('incidents_count', sa.Integer(), nullable=False),
        sa.Column('suspended_at', UtcDateTime, nullable=True),
        sa.Column('suspension_reason', sa.Text(), nullable=True),
        sa.Column('suspension_incident_id', sa.String(length=36), nullable=True),
        sa.Column('terminated_on', sa.Date(), nullable=True),
        sa.Column('termination_reason', sa.Text(), nullable=True),
        sa.Column('expired_on', sa.Date(), nullable=True),
        sa.Column('exited_on', sa.Date(), nullable=True),
        sa.Column('exit_outcome', sa.String(length=20), nullable=True),
        sa.Column('certificate_no', sa.String(length=100), nullable=True),
        sa.Column('certificate_issued_on', sa.Date(), nullable=True),
        sa.Column('created_at', UtcDateTime, nullable=False),
        sa.Column('updated_at', UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('application_id')
    )
    op.create_index('ix_pilots_created', 'pilots', ['created_at', 'id'])
    op.create_index('ix_pilots_owner', 'pilots', ['owner_id', 'created_at', 'id'])
    op.create_index('ix_pilots_sector', 'pilots', ['sector', 'status', 'created_at', 'id'])
    op.create_index('ix_pilots_sector_created', 'pilots', ['sector', 'created_at', 'id'])
    op.create_index('ix_pilots_status', 'pilots', ['status', 'created_at', 'id'])
    op.create_index('ix_pilots_status_ends', 'pilots', ['status', 'ends_on'])
    op.create_index('ix_pilots_status_report_due', 'pilots', ['status', 'next_report_due_on'])
    op.create_index('ix_pilots_status_starts', 'pilots', ['status', 'starts_on'])

    op.create_table('decisions',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('register_name', sa.String(length=100), nullable=False),
        sa.Column('decision_no', sa.String(length=100), nullable=False),
        sa.Column('decision_year', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('application_id', sa.String(length=36), nullable=False),
        sa.Column('pilot_id', sa.String(length=36), nullable=True),
        sa.Column('decided_by', sa.String(length=200), nullable=False),
        sa.Column('decided_on', sa.Date(), nullable=False),
        sa.Column('decided_at', UtcDateTime, nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ),
        sa.ForeignKeyConstraint(['pilot_id'], ['pilots.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('decision_no', 'decision_year', name='uq_decisions_number')
    )
    op.create_index('ix_decisions_application', 'decisions', ['application_id', 'decided_at'])
    op.create_index('ix_decisions_pilot', 'decisions', ['pilot_id', 'decided_at'])

    op.create_table('exits',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('pilot_id', sa.String(length=36), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('final_report', sa.Text(), nullable=False),
        sa.Column('lessons', sa.Text(), nullable=False),
        sa.Column('recommendations', sa.JSON(), nullable=False),
        sa.Column('kpi_results', sa.JSON(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('filed_by', sa.String(length=200), nullable=False),
        sa.Column('filed_at', UtcDateTime, nullable=False),
        sa.Column('accepted_by', sa.String(length=200), nullable=True),
        sa.Column('accepted_at', UtcDateTime, nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('decision_no', sa.String(length=100), nullable=True),
        sa.Column('decision_year', sa.Integer(), nullable=True),
        sa.Column('certificate_no', sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(['pilot_id'], ['pilots.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('pilot_id')
    )
    op.create_table('incidents',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('pilot_id', sa.String(length=36), nullable=False),
        sa.Column('severity', sa.String(length=10), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('occurred_at', UtcDateTime, nullable=False),
        sa.Column('reported_at', UtcDateTime, nullable=False),
        sa.Column('reported_by', sa.String(length=200), nullable=False),
        sa.Column('reporter_role', sa.String(length=60), nullable=False),
        sa.Column('deadline_at', UtcDateTime, nullable=False),
        sa.Column('reported_in_time', sa.Boolean(), nullable=False),
        sa.Column('suspended_pilot', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['pilot_id'], ['pilots.id'], ),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_incidents_pilot', 'incidents', ['pilot_id', 'reported_at', 'id'])

    op.create_table('reports',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('pilot_id', sa.String(length=36), nullable=False),
        sa.Column('period', sa.String(length=10), nullable=False),
        sa.Column('period_starts_on', sa.Date(), nullable=False),
        sa.Column('period_ends_on', sa.Date(), nullable=False),
        sa.Column('participants', sa.BigInteger(), nullable=False),
        sa.Column('transactions_vnd', sa.BigInteger(), nullable=False),
        sa.Column('largest_transaction_vnd', sa.BigInteger(), nullable=True),
        sa.Column('regions', sa.JSON(), nullable=True),
        sa.Column('kpis', sa.JSON(), nullable=False),
        sa.Column('complaints', sa.Integer(), nullable=False),
        sa.Column('breaches', sa.JSON(), nullable=False),
        sa.Column('due_on', sa.Date(), nullable=True),
        sa.Column('filed_late', sa.Boolean(), nullable=False),
        sa.Column('filed_by', sa.String(length=200), nullable=False),
        sa.Column('filed_at', UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(['pilot_id'], ['pilots.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('pilot_id', 'period', name='uq_reports_one_per_period')
    )
    op.create_index('ix_reports_pilot', 'reports', ['pilot_id', 'filed_at', 'id'])


def downgrade() -> None:
    op.drop_table('reports')
    op.drop_table('incidents')
    op.drop_table('exits')
    op.drop_table('decisions')
    op.drop_table('pilots')
    op.drop_table('assessments')
    op.drop_table('scheduler_runs')
    op.drop_table('applications')
