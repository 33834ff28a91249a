"""Loading and saving grants aggregates: the only place rows and domain objects meet.

:class:`Repository` is what the command handlers need (``grants.handlers``);
:class:`SqlRepository` keeps it in the service's database through the request's session
(the unit of work's transaction), on the functions above it, and the unit tests keep it
in memory. The reads load rows with those functions directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import bindparam, case, delete, func, select
from sqlmodel import Session

from grants.domain.applications import (
    Application,
    ApplicationStatus,
    Endorsement,
    MilestonePlan,
    Recommendation,
    Review,
    RiskLevel,
    TeamMember,
)
from grants.domain.assignments import ACTIVE, OPEN, Assignment, AssignmentStatus
from grants.domain.calls import Call, CallStatus, ReviewMode, ReviewTier
from grants.domain.decisions import DecisionNo
from grants.domain.grants import (
    Breach,
    BreachKind,
    Grant,
    GrantStatus,
    Liability,
    Milestone,
    MilestoneStatus,
    Outcome,
    Result,
)
from grants.domain.portfolio import Commercialisation, Metrics, Totals, metrics
from grants.models import (
    ApplicationRow,
    AssignmentRow,
    BreachRow,
    CallRow,
    GrantRow,
    IncomeRow,
    MilestonePlanRow,
    MilestoneRow,
    ResultRow,
    ReviewRow,
    TeamMemberRow,
)
from servicekit.clock import as_utc
from servicekit.hotpath.statements import Load


def call_from_row(row: CallRow) -> Call:
    return Call(
        id=row.id, agency_id=row.agency_id, title=row.title, description=row.description,
        budget_vnd=row.budget_vnd, max_award_vnd=row.max_award_vnd,
        opens_at=as_utc(row.opens_at), closes_at=as_utc(row.closes_at),
        min_reviews=row.min_reviews, review_mode=ReviewMode(row.review_mode),
        review_tiers=tuple(ReviewTier(t["up_to_vnd"], t["min_reviews"])
                           for t in row.review_tiers),
        requires_endorsement=row.requires_endorsement, status=CallStatus(row.status),
        awarded_vnd=row.awarded_vnd,
        cancelled_from=CallStatus(row.cancelled_from) if row.cancelled_from else None,
        cancel_reason=row.cancel_reason,
    )


RowT = TypeVar("RowT", CallRow, ApplicationRow, AssignmentRow, GrantRow)


def _row_by_id(session: Session, model: type[RowT], row_id: str,
               for_update: bool) -> RowT | None:
    """The ``model`` row of that id, locked for the command when ``for_update``."""
    stmt = select(model).where(model.id == row_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def get_call_row(session: Session, call_id: str, *, for_update: bool = False,
                 for_share: bool = False) -> CallRow | None:
    """The call; ``for_share``: locked against its own commands (close, cancel, a
    decision's budget) until the transaction ends, as a command on one of its
    applications that relies on the call's state needs it."""
    if for_share and not for_update:
        stmt = select(CallRow).where(CallRow.id == call_id).with_for_update(read=True)
        return session.execute(stmt).scalar_one_or_none()
    return _row_by_id(session, CallRow, call_id, for_update)


def add_call(session: Session, call: Call, *, created_by: str, now: datetime) -> CallRow:
    row = CallRow(
        id=call.id, agency_id=call.agency_id, title=call.title, description=call.description,
        budget_vnd=call.budget_vnd, max_award_vnd=call.max_award_vnd,
        awarded_vnd=call.awarded_vnd, opens_at=call.opens_at, closes_at=call.closes_at,
        min_reviews=call.min_reviews, status=call.status.value, created_by=created_by,
        created_at=now, updated_at=now,
    )
    _write_terms(row, call)
    session.add(row)
    return row


def save_call(row: CallRow, call: Call, *, now: datetime) -> None:
    _write_terms(row, call)
    row.status = call.status.value
    row.awarded_vnd = call.awarded_vnd
    row.cancelled_from = call.cancelled_from.value if call.cancelled_from else None
    row.cancel_reason = call.cancel_reason
    row.updated_at = now


def _write_terms(row: CallRow, call: Call) -> None:
    row.title, row.description = call.title, call.description
    row.budget_vnd, row.max_award_vnd = call.budget_vnd, call.max_award_vnd
    row.opens_at, row.closes_at = call.opens_at, call.closes_at
    row.min_reviews = call.min_reviews
    row.review_mode = call.review_mode.value
    row.review_tiers = [{"up_to_vnd": t.up_to_vnd, "min_reviews": t.min_reviews}
                        for t in call.review_tiers]
    row.requires_endorsement = call.requires_endorsement


# --- applications -----------------------------------------------------------------------

def load_application(session: Session, application_id: str, *,
                     for_update: bool = False) -> tuple[ApplicationRow, Application] | None:
    row = _row_by_id(session, ApplicationRow, application_id, for_update)
    return None if row is None else (row, application_from_row(session, row))


def application_from_row(session: Session, row: ApplicationRow) -> Application:
    return applications_from_rows(session, [row])[0]


def applications_from_rows(session: Session, rows: Sequence[ApplicationRow]
                           ) -> list[Application]:
    """The applications of ``rows``: three statements for all of them (teams, milestone
    plans, reviews), however many there are."""
    ids = [r.id for r in rows]
    if not ids:
        return []
    teams = _grouped(session.execute(
        select(TeamMemberRow).where(TeamMemberRow.application_id.in_(ids))
        .order_by(TeamMemberRow.application_id, TeamMemberRow.position)).scalars(),
        "application_id")
    plans = _grouped(session.execute(
        select(MilestonePlanRow).where(MilestonePlanRow.application_id.in_(ids))
        .order_by(MilestonePlanRow.application_id, MilestonePlanRow.position)).scalars(),
        "application_id")
    reviews = _grouped(session.execute(
        select(ReviewRow).where(ReviewRow.application_id.in_(ids))
        .order_by(ReviewRow.application_id, ReviewRow.created_at, ReviewRow.id)).scalars(),
        "application_id")
    return [_application(r, teams.get(r.id, []), plans.get(r.id, []), reviews.get(r.id, []))
            for r in rows]


def _application(row: ApplicationRow, team: Sequence[TeamMemberRow],
                 plans: Sequence[MilestonePlanRow], reviews: Sequence[ReviewRow]
                 ) -> Application:
    return Application(
        id=row.id, call_id=row.call_id, agency_id=row.agency_id,
        applicant_id=row.applicant_id, institution_id=row.institution_id, title=row.title,
        abstract=row.abstract, requested_vnd=row.requested_vnd,
        risk_level=RiskLevel(row.risk_level),
        team=[TeamMember(t.researcher_id, t.name, t.role, t.contribution_bp) for t in team],
        milestones=[MilestonePlan(p.title, p.deliverable, p.verification, p.due_date,
                                  p.tranche_bp) for p in plans],
        status=ApplicationStatus(row.status),
        reviews=[Review(r.reviewer_id, r.reviewer_org, r.scores,
                        Recommendation(r.recommendation), r.comment, as_utc(r.created_at))
                 for r in reviews],
        awarded_vnd=row.awarded_vnd, decision_reason=row.decision_reason, grant_id=row.grant_id,
        decision=_decision(row.decision_no, row.decision_year),
        endorsement=(Endorsement(row.endorsed_by, as_utc(row.endorsed_at))
                     if row.endorsed_by and row.endorsed_at else None),
        withdrawal_reason=row.withdrawal_reason, version=row.version,
    )


def _decision(decision_no: str | None, year: int | None) -> DecisionNo | None:
    return DecisionNo(decision_no, year) if decision_no and year else None


def add_application(session: Session, app: Application, call: Call, *,
                    now: datetime) -> ApplicationRow:
    row = ApplicationRow(
        id=app.id, call_id=app.call_id, agency_id=app.agency_id,
        applicant_id=app.applicant_id, institution_id=app.institution_id, title=app.title,
        abstract=app.abstract, requested_vnd=app.requested_vnd,
        risk_level=app.risk_level.value, status=app.status.value,
        reviews_needed=app.reviews_needed(call), created_at=now, updated_at=now,
    )
    session.add(row)
    session.flush()
    _add_plan(session, app)
    return row


def _add_plan(session: Session, app: Application) -> None:
    session.add_all([
        TeamMemberRow(application_id=app.id, researcher_id=t.researcher_id, position=i,
                      name=t.name, role=t.role, contribution_bp=t.contribution_bp)
        for i, t in enumerate(app.team)
    ])
    session.add_all([
        MilestonePlanRow(application_id=app.id, position=i, title=p.title,
                         deliverable=p.deliverable, verification=p.verification,
                         due_date=p.due_date, tranche_bp=p.tranche_bp)
        for i, p in enumerate(app.milestones)
    ])


def save_application(row: ApplicationRow, app: Application, *, now: datetime) -> None:
    if row.status != app.status.value:
        if app.status == ApplicationStatus.SUBMITTED:
            row.submitted_at = now
        if app.decided:
            row.decided_at = now
        if app.status == ApplicationStatus.WITHDRAWN:
            row.withdrawn_at = now
    row.status = app.status.value
    row.endorsed_by = app.endorsement.endorsed_by if app.endorsement else None
    row.endorsed_at = app.endorsement.endorsed_at if app.endorsement else None
    row.withdrawal_reason = app.withdrawal_reason
    row.awarded_vnd = app.awarded_vnd
    row.decision_reason = app.decision_reason
    row.grant_id = app.grant_id
    if app.decision is not None:
        row.decision_no, row.decision_year = app.decision.decision_no, app.decision.year
    row.updated_at = now


def save_draft_terms(session: Session, row: ApplicationRow, app: Application, call: Call, *,
                     now: datetime) -> None:
    """Write an edited draft: its fields, and its team and milestone plan anew."""
    row.title, row.abstract = app.title, app.abstract
    row.requested_vnd, row.risk_level = app.requested_vnd, app.risk_level.value
    row.reviews_needed = app.reviews_needed(call)
    row.version = app.version
    for table in (TeamMemberRow, MilestonePlanRow):
        session.execute(delete(table).where(table.application_id == app.id))
    _add_plan(session, app)
    save_application(row, app, now=now)


def add_review(session: Session, application_id: str, review: Review, review_id: str) -> ReviewRow:
    row = ReviewRow(id=review_id, application_id=application_id,
                    reviewer_id=review.reviewer_id, reviewer_org=review.reviewer_org,
                    scores=review.scores, recommendation=review.recommendation.value,
                    comment=review.comment, created_at=review.submitted_at)
    session.add(row)
    return row


# --- assignments ------------------------------------------------------------------------

def assignment_from_row(row: AssignmentRow) -> Assignment:
    return Assignment(
        id=row.id, application_id=row.application_id, call_id=row.call_id,
        agency_id=row.agency_id, reviewer_id=row.reviewer_id, reviewer_org=row.reviewer_org,
        name=row.name, due_on=row.due_on, assigned_by=row.assigned_by,
        status=AssignmentStatus(row.status), conflict_of_interest=row.conflict_of_interest,
        statement=row.statement,
        declared_at=as_utc(row.declared_at) if row.declared_at else None,
        decline_reason=row.decline_reason, release_reason=row.release_reason,
    )


def add_assignment(session: Session, a: Assignment, *, now: datetime) -> AssignmentRow:
    row = AssignmentRow(
        id=a.id, application_id=a.application_id, call_id=a.call_id, agency_id=a.agency_id,
        reviewer_id=a.reviewer_id, reviewer_org=a.reviewer_org, name=a.name,
        due_on=a.due_on, status=a.status.value, assigned_by=a.assigned_by, created_at=now,
        updated_at=now)
    session.add(row)
    return row


def save_assignment(row: AssignmentRow, a: Assignment, *, now: datetime) -> None:
    row.status = a.status.value
    row.conflict_of_interest = a.conflict_of_interest
    row.statement = a.statement
    row.declared_at = a.declared_at
    row.decline_reason = a.decline_reason
    row.release_reason = a.release_reason
    row.updated_at = now


def load_assignment(session: Session, assignment_id: str, *,
                    for_update: bool = False) -> tuple[AssignmentRow, Assignment] | None:
    row = _row_by_id(session, AssignmentRow, assignment_id, for_update)
    return None if row is None else (row, assignment_from_row(row))


def assignments_of(session: Session, application_ids: list[str], *,
                   for_update: bool = False) -> list[tuple[AssignmentRow, Assignment]]:
    """Every assignment of these applications, oldest first."""
    stmt = (select(AssignmentRow).where(AssignmentRow.application_id.in_(application_ids))
            .order_by(AssignmentRow.created_at, AssignmentRow.id))
    if for_update:
        stmt = stmt.with_for_update()
    return [(row, assignment_from_row(row)) for row in session.execute(stmt).scalars()]


def open_assignments(session: Session, *, application_id: str | None = None,
                     call_id: str | None = None) -> list[tuple[AssignmentRow, Assignment]]:
    """The open (assigned or accepted) assignments of an application or a call, locked."""
    stmt = select(AssignmentRow).where(AssignmentRow.status.in_([s.value for s in OPEN]))
    if application_id is not None:
        stmt = stmt.where(AssignmentRow.application_id == application_id)
    if call_id is not None:
        stmt = stmt.where(AssignmentRow.call_id == call_id)
    stmt = stmt.order_by(AssignmentRow.created_at, AssignmentRow.id).with_for_update()
    return [(row, assignment_from_row(row)) for row in session.execute(stmt).scalars()]


def reviewer_assignment(session: Session, application_id: str, reviewer_id: str,
                        reviewer_org: str, *,
                        for_update: bool = False) -> tuple[AssignmentRow, Assignment] | None:
    """The reviewer's active assignment to the application (token ``sub`` and ``org`` as
    assigned), if any."""
    stmt = select(AssignmentRow).where(
        AssignmentRow.application_id == application_id,
        AssignmentRow.reviewer_id == reviewer_id, AssignmentRow.reviewer_org == reviewer_org,
        AssignmentRow.status.in_([s.value for s in ACTIVE]))
    if for_update:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    return None if row is None else (row, assignment_from_row(row))


def active_assignment_counts(session: Session, application_ids: list[str]) -> dict[str, int]:
    """How many reviewers each application has (assigned, accepted or reviewed)."""
    if not application_ids:
        return {}
    rows = session.execute(
        select(AssignmentRow.application_id, func.count()).where(
            AssignmentRow.application_id.in_(application_ids),
            AssignmentRow.status.in_([s.value for s in ACTIVE]))
        .group_by(AssignmentRow.application_id)).all()
    return dict(rows)


# --- grants -----------------------------------------------------------------------------

def load_grant(session: Session, grant_id: str, *,
               for_update: bool = False) -> tuple[GrantRow, Grant] | None:
    row = _row_by_id(session, GrantRow, grant_id, for_update)
    return None if row is None else (row, grant_from_row(session, row))


def grant_from_row(session: Session, row: GrantRow) -> Grant:
    team = session.execute(
        select(TeamMemberRow).where(TeamMemberRow.application_id == row.application_id)
        .order_by(TeamMemberRow.position)).scalars().all()
    milestones = session.execute(
        select(MilestoneRow).where(MilestoneRow.grant_id == row.id)
        .order_by(MilestoneRow.seq)).scalars().all()
    breaches = session.execute(
        select(BreachRow).where(BreachRow.grant_id == row.id)
        .order_by(BreachRow.created_at)).scalars().all()
    return grant_from_rows(row, team, milestones, breaches)


def grant_from_rows(row: Any, team: Sequence[Any], milestones: Sequence[Any],
                    breaches: Sequence[Any]) -> Grant:
    """The grant from its row, team (by position), milestones (by seq) and breaches (by
    time): ORM objects or Core rows, read by column name."""
    return Grant(
        id=row.id, application_id=row.application_id, call_id=row.call_id,
        agency_id=row.agency_id, institution_id=row.institution_id,
        awarded_vnd=row.awarded_vnd,
        team=[TeamMember(t.researcher_id, t.name, t.role, t.contribution_bp) for t in team],
        milestones=[
            Milestone(id=m.id, seq=m.seq, title=m.title, deliverable=m.deliverable,
                      verification=m.verification, due_date=m.due_date,
                      tranche_bp=m.tranche_bp, tranche_vnd=m.tranche_vnd,
                      status=MilestoneStatus(m.status), released_vnd=m.released_vnd,
                      cancelled_vnd=m.cancelled_vnd, completion_bp=m.completion_bp,
                      report=m.report, reject_reason=m.reject_reason)
            for m in milestones
        ],
        status=GrantStatus(row.status),
        breaches=[Breach(b.id, BreachKind(b.kind), b.description, b.recorded_by,
                         as_utc(b.created_at)) for b in breaches],
        outcome=Outcome(row.outcome) if row.outcome else None,
        refund_due_vnd=row.refund_due_vnd,
        liability=Liability(row.liability) if row.liability else None,
        justification=row.justification, breach_stated=row.breach_stated,
        procedures_followed=row.procedures_followed,
        closed_at=as_utc(row.closed_at) if row.closed_at else None,
        award_decision=_decision(row.award_decision_no, row.award_decision_year),
        decision=_decision(row.decision_no, row.decision_year),
    )


def grant_views(session: Session, rows: Sequence[GrantRow]
                ) -> list[tuple[GrantRow, Grant, str, list[BreachRow]]]:
    """The grants of a page of ``rows``, each with its application's title and its breach
    rows: four statements for the whole page (titles, teams, milestones, breaches),
    however many rows it has."""
    if not rows:
        return []
    grant_ids = [r.id for r in rows]
    application_ids = [r.application_id for r in rows]
    titles = dict(session.execute(select(ApplicationRow.id, ApplicationRow.title).where(
        ApplicationRow.id.in_(application_ids))).all())
    teams = _grouped(session.execute(
        select(TeamMemberRow).where(TeamMemberRow.application_id.in_(application_ids))
        .order_by(TeamMemberRow.application_id, TeamMemberRow.position)).scalars(),
        "application_id")
    milestones = _grouped(session.execute(
        select(MilestoneRow).where(MilestoneRow.grant_id.in_(grant_ids))
        .order_by(MilestoneRow.grant_id, MilestoneRow.seq)).scalars(), "grant_id")
    breaches = _grouped(session.execute(
        select(BreachRow).where(BreachRow.grant_id.in_(grant_ids))
        .order_by(BreachRow.grant_id, BreachRow.created_at)).scalars(), "grant_id")
    return [(r, grant_from_rows(r, teams.get(r.application_id, []),
                                milestones.get(r.id, []), breaches.get(r.id, [])),
             titles[r.application_id], breaches.get(r.id, [])) for r in rows]


def _grouped(rows: Any, key: str) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(getattr(row, key), []).append(row)
    return grouped


# GET /v1/grants/{id}, the busiest read, in one round trip (servicekit.hotpath.reads):
# the grant with its application's title and applicant, its team, milestones, breaches.
_GRANTS, _APPLICATIONS = GrantRow.__table__, ApplicationRow.__table__
_GRANT_BY_ID = (select(_GRANTS, _APPLICATIONS.c.title, _APPLICATIONS.c.applicant_id)
                .join(_APPLICATIONS, _APPLICATIONS.c.id == _GRANTS.c.application_id)
                .where(_GRANTS.c.id == bindparam("grant_id")))
_TEAM_OF = (select(TeamMemberRow.__table__)
            .join(_GRANTS, _GRANTS.c.application_id == TeamMemberRow.application_id)
            .where(_GRANTS.c.id == bindparam("grant_id")).order_by(TeamMemberRow.position))
_MILESTONES_OF = (select(MilestoneRow.__table__)
                  .where(MilestoneRow.grant_id == bindparam("grant_id"))
                  .order_by(MilestoneRow.seq))
_BREACHES_OF = (select(BreachRow.__table__).where(BreachRow.grant_id == bindparam("grant_id"))
                .order_by(BreachRow.created_at))


def grant_view(grant_id: str) -> Load[tuple[Any, Grant, list[Any]] | None]:
    """The grant's row (with ``title`` and ``applicant_id``), the grant and its breach
    rows; None when there is no such grant."""
    key = {"grant_id": grant_id}

    def make(found: list[Any], team: list[Any], milestones: list[Any], breaches: list[Any]
             ) -> tuple[Any, Grant, list[Any]] | None:
        if not found:
            return None
        return found[0], grant_from_rows(found[0], team, milestones, breaches), breaches

    return Load([(_GRANT_BY_ID, key), (_TEAM_OF, key), (_MILESTONES_OF, key),
                 (_BREACHES_OF, key)], make)


def add_grant(session: Session, grant: Grant, *, now: datetime) -> GrantRow:
    row = GrantRow(id=grant.id, application_id=grant.application_id, call_id=grant.call_id,
                   agency_id=grant.agency_id, institution_id=grant.institution_id,
                   awarded_vnd=grant.awarded_vnd, status=grant.status.value,
                   award_decision_no=grant.award_decision.decision_no,
                   award_decision_year=grant.award_decision.year, created_at=now,
                   updated_at=now)
    session.add(row)
    session.flush()
    session.add_all([
        MilestoneRow(id=m.id, grant_id=grant.id, seq=m.seq, title=m.title,
                     deliverable=m.deliverable, verification=m.verification,
                     due_date=m.due_date, tranche_bp=m.tranche_bp, tranche_vnd=m.tranche_vnd,
                     status=m.status.value)
        for m in grant.milestones
    ])
    return row


def save_grant(session: Session, row: GrantRow, grant: Grant, *, now: datetime) -> None:
    """Write the grant's state and every milestone's state back."""
    row.status = grant.status.value
    row.disbursed_vnd = grant.disbursed_vnd
    row.cancelled_vnd = grant.cancelled_vnd
    row.refund_due_vnd = grant.refund_due_vnd
    row.outcome = grant.outcome.value if grant.outcome else None
    row.liability = grant.liability.value if grant.liability else None
    row.justification = grant.justification
    row.breach_stated = grant.breach_stated
    row.procedures_followed = grant.procedures_followed
    row.closed_at = grant.closed_at
    if grant.decision is not None:
        row.decision_no, row.decision_year = grant.decision.decision_no, grant.decision.year
    row.updated_at = now
    rows = {m.id: m for m in session.execute(
        select(MilestoneRow).where(MilestoneRow.grant_id == row.id)).scalars()}
    for m in grant.milestones:
        r = rows[m.id]
        r.status = m.status.value
        r.released_vnd = m.released_vnd
        r.cancelled_vnd = m.cancelled_vnd
        r.completion_bp = m.completion_bp
        r.report = m.report
        r.reject_reason = m.reject_reason
        r.due_date = m.due_date


# --- the commands' repository ------------------------------------------------------------

class Repository(Protocol):
    """What the command handlers load and save (``grants.handlers``)."""

    def call(self, call_id: str, *, for_update: bool = False,
             for_share: bool = False) -> Call | None: ...
    def add_call(self, call: Call, *, created_by: str, now: datetime) -> None: ...
    def save_call(self, call: Call, now: datetime) -> None: ...
    def decided_applications(self, call_id: str) -> int: ...
    def application(self, application_id: str, *,
                    for_update: bool = False) -> Application | None: ...
    def add_application(self, app: Application, call: Call, now: datetime) -> None: ...
    def save_application(self, app: Application, now: datetime) -> None: ...
    def save_draft_terms(self, app: Application, call: Call, now: datetime) -> None: ...
    def add_review(self, app: Application, review: Review, review_id: str) -> None: ...
    def assignment(self, assignment_id: str, *,
                   for_update: bool = False) -> Assignment | None: ...
    def assignments_of(self, application_id: str) -> list[Assignment]: ...
    def open_assignments(self, *, application_id: str | None = None,
                         call_id: str | None = None) -> list[Assignment]: ...
    def reviewer_assignment(self, application_id: str, reviewer_id: str, reviewer_org: str,
                            *, for_update: bool = False) -> Assignment | None: ...
    def add_assignment(self, assignment: Assignment, now: datetime) -> None: ...
    def save_assignment(self, assignment: Assignment, now: datetime) -> None: ...
    def grant(self, grant_id: str, *, for_update: bool = False) -> Grant | None: ...
    def applicant_of(self, grant: Grant) -> str | None: ...
    def add_grant(self, grant: Grant, now: datetime) -> None: ...
    def save_grant(self, grant: Grant, now: datetime) -> None: ...
    def add_result(self, grant: Grant, result: Result) -> None: ...
    def add_breach(self, grant: Grant, breach: Breach, now: datetime) -> None: ...


class SqlRepository:
    """The aggregates on the request's session; keeps the rows it loaded or added, to
    save them and for the API's view of them (their times)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._calls: dict[str, CallRow] = {}
        self._applications: dict[str, ApplicationRow] = {}
        self._reviews: dict[str, ReviewRow] = {}
        self._assignments: dict[str, AssignmentRow] = {}
        self._rows: dict[str, GrantRow] = {}

    # calls

    def call(self, call_id: str, *, for_update: bool = False,
             for_share: bool = False) -> Call | None:
        row = get_call_row(self.session, call_id, for_update=for_update, for_share=for_share)
        if row is None:
            return None
        self._calls[row.id] = row
        return call_from_row(row)

    def call_row(self, call: Call) -> CallRow:
        return self._calls[call.id]

    def add_call(self, call: Call, *, created_by: str, now: datetime) -> None:
        self._calls[call.id] = add_call(self.session, call, created_by=created_by, now=now)

    def save_call(self, call: Call, now: datetime) -> None:
        save_call(self._calls[call.id], call, now=now)

    def decided_applications(self, call_id: str) -> int:
        """How many of the call's applications are approved or rejected."""
        return self.session.execute(select(func.count()).where(
            ApplicationRow.call_id == call_id,
            ApplicationRow.status.in_((ApplicationStatus.APPROVED.value,
                                       ApplicationStatus.REJECTED.value)))).scalar_one()

    # applications

    def application(self, application_id: str, *,
                    for_update: bool = False) -> Application | None:
        loaded = load_application(self.session, application_id, for_update=for_update)
        if loaded is None:
            return None
        row, app = loaded
        self._applications[app.id] = row
        return app

    def application_row(self, app: Application) -> ApplicationRow:
        return self._applications[app.id]

    def add_application(self, app: Application, call: Call, now: datetime) -> None:
        self._applications[app.id] = add_application(self.session, app, call, now=now)

    def save_application(self, app: Application, now: datetime) -> None:
        save_application(self._applications[app.id], app, now=now)

    def save_draft_terms(self, app: Application, call: Call, now: datetime) -> None:
        save_draft_terms(self.session, self._applications[app.id], app, call, now=now)

    def add_review(self, app: Application, review: Review, review_id: str) -> None:
        self._reviews[review_id] = add_review(self.session, app.id, review, review_id)

    def review_row(self, review_id: str) -> ReviewRow:
        return self._reviews[review_id]

    # assignments

    def _kept(self, loaded: tuple[AssignmentRow, Assignment] | None) -> Assignment | None:
        if loaded is None:
            return None
        row, assignment = loaded
        self._assignments[assignment.id] = row
        return assignment

    def assignment(self, assignment_id: str, *,
                   for_update: bool = False) -> Assignment | None:
        return self._kept(load_assignment(self.session, assignment_id, for_update=for_update))

    def assignment_row(self, assignment: Assignment) -> AssignmentRow:
        return self._assignments[assignment.id]

    def assignments_of(self, application_id: str) -> list[Assignment]:
        """Every assignment of the application, oldest first."""
        return [a for _, a in assignments_of(self.session, [application_id])]

    def open_assignments(self, *, application_id: str | None = None,
                         call_id: str | None = None) -> list[Assignment]:
        found = open_assignments(self.session, application_id=application_id,
                                 call_id=call_id)
        return [a for a in map(self._kept, found) if a is not None]

    def reviewer_assignment(self, application_id: str, reviewer_id: str, reviewer_org: str,
                            *, for_update: bool = False) -> Assignment | None:
        return self._kept(reviewer_assignment(self.session, application_id, reviewer_id,
                                              reviewer_org, for_update=for_update))

    def add_assignment(self, assignment: Assignment, now: datetime) -> None:
        self._assignments[assignment.id] = add_assignment(self.session, assignment, now=now)

    def save_assignment(self, assignment: Assignment, now: datetime) -> None:
        save_assignment(self._assignments[assignment.id], assignment, now=now)

    # grants

    def grant(self, grant_id: str, *, for_update: bool = False) -> Grant | None:
        loaded = load_grant(self.session, grant_id, for_update=for_update)
        if loaded is None:
            return None
        row, grant = loaded
        self._rows[grant.id] = row
        return grant

    def row(self, grant: Grant) -> GrantRow:
        """The row ``grant`` was loaded from (its times, for the API's view)."""
        return self._rows[grant.id]

    def applicant_of(self, grant: Grant) -> str | None:
        """Who drafted the grant's application."""
        return self.session.execute(select(ApplicationRow.applicant_id).where(
            ApplicationRow.id == grant.application_id)).scalar_one_or_none()

    def add_grant(self, grant: Grant, now: datetime) -> None:
        """Add an awarded grant, after the application's decision is written."""
        self.session.flush()
        self._rows[grant.id] = add_grant(self.session, grant, now=now)

    def save_grant(self, grant: Grant, now: datetime) -> None:
        save_grant(self.session, self._rows[grant.id], grant, now=now)
        self.session.flush()

    def add_result(self, grant: Grant, result: Result) -> None:
        self.session.add(ResultRow(
            id=result.id, grant_id=grant.id, kind=result.kind.value, title=result.title,
            authors=[{"researcher_id": a.researcher_id, "name": a.name,
                      "contribution_bp": a.contribution_bp} for a in result.authors],
            registered_by=result.registered_by, created_at=result.registered_at))
        self.session.flush()

    def add_breach(self, grant: Grant, breach: Breach, now: datetime) -> None:
        self.session.add(BreachRow(id=breach.id, grant_id=grant.id, kind=breach.kind.value,
                                   description=breach.description,
                                   recorded_by=breach.recorded_by,
                                   created_at=breach.recorded_at))
        self._rows[grant.id].updated_at = now
        self.session.flush()


# --- the portfolio ----------------------------------------------------------------------

@dataclass(frozen=True)
class CallFigures:
    call_id: str
    title: str
    agency_id: str
    metrics: Metrics


def portfolio(session: Session, *, agency: str | None, call_id: str | None,
              from_: datetime | None, to: datetime | None
              ) -> tuple[Metrics, list[CallFigures]]:
    """The metrics of the grants selected (by funding agency, call, and creation time in
    [from, to)), overall and by call (ordered by call id)."""
    where = []
    if agency:
        where.append(GrantRow.agency_id == agency)
    if call_id:
        where.append(GrantRow.call_id == call_id)
    if from_:
        where.append(GrantRow.created_at >= from_)
    if to:
        where.append(GrantRow.created_at < to)

    good_faith = GrantRow.outcome == Outcome.FAILED_IN_GOOD_FAITH.value
    columns = [
        func.count(GrantRow.id).label("grants"),
        func.sum(case((GrantRow.status == "closed", 1), else_=0)).label("closed"),
        *[func.sum(case((GrantRow.outcome == o.value, 1), else_=0)).label(o.value)
          for o in Outcome],
        func.sum(GrantRow.awarded_vnd).label("awarded"),
        func.sum(GrantRow.disbursed_vnd).label("disbursed"),
        func.sum(GrantRow.cancelled_vnd).label("cancelled"),
        func.sum(GrantRow.refund_due_vnd).label("refund"),
        func.sum(case((good_faith, GrantRow.awarded_vnd), else_=0)).label("risk_awarded"),
        func.sum(case((good_faith, GrantRow.disbursed_vnd), else_=0)).label("risk_disbursed"),
    ]
    overall = session.execute(select(*columns).where(*where)).one()
    per_call = session.execute(
        select(GrantRow.call_id, *columns).where(*where).group_by(GrantRow.call_id)).all()

    results: dict[str | None, dict[str, int]] = {}
    for cid, kind, n in session.execute(
        select(GrantRow.call_id, ResultRow.kind, func.count(ResultRow.id))
        .join(GrantRow, GrantRow.id == ResultRow.grant_id).where(*where)
        .group_by(GrantRow.call_id, ResultRow.kind)
    ):
        for key in (cid, None):
            bucket = results.setdefault(key, {})
            bucket[kind] = bucket.get(kind, 0) + n

    income_cols = [
        func.sum(IncomeRow.gross_vnd).label("gross"),
        func.sum(IncomeRow.researchers_vnd).label("researchers"),
        func.sum(case((IncomeRow.gross_vnd >= 0, 1), else_=-1)).label("distributions"),
    ]
    income_overall = session.execute(
        select(*income_cols).join(GrantRow, GrantRow.id == IncomeRow.source_grant_id)
        .where(*where)).one()
    income_by_call = {r.call_id: r for r in session.execute(
        select(GrantRow.call_id, *income_cols)
        .join(GrantRow, GrantRow.id == IncomeRow.source_grant_id)
        .where(*where).group_by(GrantRow.call_id))}
    calls = {c.id: c for c in session.execute(
        select(CallRow).where(CallRow.id.in_([r.call_id for r in per_call]))).scalars()}

    by_call = [
        CallFigures(r.call_id, calls[r.call_id].title, calls[r.call_id].agency_id,
                    metrics(_totals(r), results.get(r.call_id, {}),
                            _income(income_by_call.get(r.call_id))))
        for r in per_call
    ]
    by_call.sort(key=lambda c: c.call_id)
    return metrics(_totals(overall), results.get(None, {}), _income(income_overall)), by_call


def _totals(row: Any) -> Totals:
    return Totals(
        grants=int(row.grants or 0), closed=int(row.closed or 0),
        by_outcome={o.value: int(getattr(row, o.value) or 0) for o in Outcome},
        awarded_vnd=int(row.awarded or 0), disbursed_vnd=int(row.disbursed or 0),
        cancelled_vnd=int(row.cancelled or 0), refund_due_vnd=int(row.refund or 0),
        risk_awarded_vnd=int(row.risk_awarded or 0),
        risk_disbursed_vnd=int(row.risk_disbursed or 0))


def _income(row: Any) -> Commercialisation:
    if row is None:
        return Commercialisation()
    return Commercialisation(gross_vnd=int(row.gross or 0),
                             researchers_vnd=int(row.researchers or 0),
                             distributions=int(row.distributions or 0))
