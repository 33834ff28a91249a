"""The application commands: the researcher who drafted it drafts, edits, submits and
withdraws it; its host institution endorses it; reviewers review it; the funding
agency's programme manager decides it (an approval creates the grant)."""

from __future__ import annotations

from dataclasses import dataclass

from grants import access, events
from grants.domain.applications import (
    Application,
    ApplicationStatus,
    ConflictOfInterest,
    MilestonePlan,
    Recommendation,
    Review,
    RiskLevel,
    TeamMember,
)
from grants.domain.assignments import Assignment
from grants.domain.calls import Call
from grants.domain.grants import Grant
from grants.handlers import APPLICATION, ASSIGNMENT, CALL, GRANT, new_id
from grants.handlers.releases import release_open
from grants.repository import Repository
from servicekit.auth import Principal
from servicekit.decisions import grants_register
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import AbstractUnitOfWork


@dataclass(frozen=True)
class ApplicationTerms:
    """What a researcher drafts, or sets anew in a draft (where ``call_id`` and
    ``institution_id`` cannot change)."""

    call_id: str
    institution_id: str
    title: str
    abstract: str
    requested_vnd: int
    risk_level: RiskLevel
    team: tuple[TeamMember, ...]
    milestones: tuple[MilestonePlan, ...]


# --- loading -------------------------------------------------------------------------------

def call_of(repo: Repository, app: Application, *, for_update: bool = False,
            for_share: bool = False) -> Call:
    """The application's call; ``for_share``: for a command that relies on the call's
    state (open, not cancelled), which then cannot change before the command commits."""
    call = repo.call(app.call_id, for_update=for_update, for_share=for_share)
    assert call is not None  # an application's call is never deleted
    return call


def viewed(repo: Repository, user: Principal, application_id: str, *,
           for_update: bool = False) -> tuple[Application, access.View]:
    """The application and how much of it ``user`` reads; 404 if nothing."""
    app = repo.application(application_id, for_update=for_update)
    if app is None:
        raise NotFound(f"application {application_id} not found")
    assigned_review, assignment = False, None
    if user.has("reviewer"):
        assigned_review = call_of(repo, app).assigned_review
        if assigned_review:
            assignment = repo.reviewer_assignment(app.id, user.sub, user.org)
    view = access.application_view(user, app, assigned_review=assigned_review,
                                   assignment=assignment)
    if view is None:
        raise NotFound(f"application {application_id} not found")
    return app, view


def visible(repo: Repository, user: Principal, application_id: str, *,
            for_update: bool = False) -> Application:
    """The whole application; an assignee who has not declared yet is refused (403)."""
    app, view = viewed(repo, user, application_id, for_update=for_update)
    if view != access.View.FULL:
        raise Forbidden("declare whether you have a conflict of interest first: until then "
                        "an assigned reviewer reads only the application's summary")
    return app


def owned(repo: Repository, user: Principal, application_id: str,
          action: str) -> Application:
    """The application, locked, if ``user`` drafted it (its owner); 403 otherwise."""
    app = visible(repo, user, application_id, for_update=True)
    if not access.owns_application(user, app):
        raise Forbidden(f"only the researcher who drafted the application {action} it")
    return app


# --- the researcher's and the institution's commands ---------------------------------------

def create_application(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                       terms: ApplicationTerms) -> tuple[Application, Call]:
    """Draft an application to a published call."""
    call = repo.call(terms.call_id)
    if call is None or not call.published:
        raise NotFound(f"call {terms.call_id} not found")
    app = Application.draft(
        id=new_id(), call=call, applicant_id=user.sub, institution_id=terms.institution_id,
        title=terms.title, abstract=terms.abstract, requested_vnd=terms.requested_vnd,
        risk_level=terms.risk_level, team=list(terms.team),
        milestones=list(terms.milestones), today=uow.today)
    repo.add_application(app, call, uow.now)
    uow.record(APPLICATION, app.id, "draft", to_status=app.status.value, new=True)
    return app, call


def edit_application(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                     application_id: str, terms: ApplicationTerms
                     ) -> tuple[Application, Call]:
    """Set a draft's terms anew; the audit record keeps each version's changes."""
    app = owned(repo, user, application_id, "edits")
    call = call_of(repo, app)
    changes = app.revise(
        call=call, call_id=terms.call_id, institution_id=terms.institution_id,
        title=terms.title, abstract=terms.abstract, requested_vnd=terms.requested_vnd,
        risk_level=terms.risk_level, team=list(terms.team),
        milestones=list(terms.milestones), today=uow.today)
    repo.save_draft_terms(app, call, uow.now)
    uow.record(APPLICATION, app.id, "edit", from_status=app.status.value,
               to_status=app.status.value, data={"version": app.version, "changes": changes})
    return app, call


def endorse_application(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                        application_id: str) -> Application:
    """The host institution endorses a draft (``application.endorsed``)."""
    app = visible(repo, user, application_id, for_update=True)
    if not access.hosts_application(user, app):
        raise Forbidden("only the host institution (its org is the application's "
                        "institution_id) endorses the application")
    app.endorse(endorsed_by=user.sub, now=uow.now)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "endorse", from_status=app.status.value,
               to_status=app.status.value, data={"version": app.version})
    events.publish(uow, app.events)
    return app


def submit_application(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                       application_id: str) -> tuple[Application, Call]:
    """Submit a draft while its call is open; the call is read FOR SHARE, so it cannot
    close or be cancelled before the submission commits."""
    app = owned(repo, user, application_id, "submits")
    call = call_of(repo, app, for_share=True)
    app.submit(call, uow.now)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "submit", from_status="draft",
               to_status=app.status.value)
    events.publish(uow, app.events)
    return app, call


def withdraw_application(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                         application_id: str, reason: str) -> Application:
    """The owner withdraws an undecided application with a reason; its open reviewer
    assignments are released."""
    app = owned(repo, user, application_id, "withdraws")
    before = app.status.value
    app.withdraw(reason, uow.now)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "withdraw", from_status=before,
               to_status=app.status.value, reason=reason)
    events.publish(uow, app.events)
    release_open(uow, repo, "the application was withdrawn", application_id=app.id)
    return app


# --- the reviewer's and the programme manager's commands -----------------------------------

def create_review(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                  application_id: str, *, scores: dict[str, int],
                  recommendation: Recommendation, comment: str,
                  conflict_of_interest: bool) -> str:
    """Review a submitted application; returns the review's id. In a call reviewed by
    assignment only an assignee who declared no conflict reviews (to any other reviewer
    the application does not exist), and their assignment is then ``reviewed``."""
    app = repo.application(application_id, for_update=True)
    if app is None or app.status == ApplicationStatus.DRAFT:
        raise NotFound(f"application {application_id} not found")
    before = app.status.value
    call = call_of(repo, app, for_share=True)
    assigned: Assignment | None = None
    if call.assigned_review:
        assigned = repo.reviewer_assignment(app.id, user.sub, user.org, for_update=True)
        if assigned is None:
            raise NotFound(f"application {application_id} not found")
    call.check_reviewing()
    if assigned is not None:
        assigned.start_review()
    review = Review(user.sub, user.org, dict(scores), recommendation, comment, uow.now)
    app.add_review(review, declared_conflict=conflict_of_interest)
    review_id = new_id()
    repo.add_review(app, review, review_id)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "review", from_status=before, to_status=app.status.value,
               data={"review_id": review_id, "recommendation": review.recommendation})
    if assigned is not None:
        repo.save_assignment(assigned, uow.now)
        uow.record(ASSIGNMENT, assigned.id, "review", from_status="accepted",
                   to_status=assigned.status.value,
                   data={"application_id": app.id, "review_id": review_id})
    return review_id


def decide_application(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                       application_id: str, *, awarded_vnd: int | None,
                       reason: str | None) -> tuple[Application, Call]:
    """Approve (``awarded_vnd``: creating the grant) or reject (``awarded_vnd`` None,
    with a reason). The decision is a numbered decision of the agency's grants register;
    the call's row lock serialises decisions on one call, so the budget holds."""
    app = visible(repo, user, application_id, for_update=True)
    if not access.acts_for_agency(user, app.agency_id):
        raise Forbidden("programme managers decide only their own agency's applications")
    if app.is_team_member(user.sub):  # no one decides on their own application
        raise ConflictOfInterest(
            "conflict of interest: the programme manager is on the applicant team")
    call = call_of(repo, app, for_update=True)
    # Before the decision takes its number: the register stays locked only from then on.
    release_open(uow, repo, "the application was decided", application_id=app.id)
    before = app.status.value
    grant: Grant | None = None

    def take_number():
        return uow.take_decision_number(grants_register(app.agency_id))

    if awarded_vnd is not None:
        app.approve(call, awarded_vnd, uow.now, grant_id=new_id(), take_number=take_number)
        grant = Grant.award(app, grant_id=app.grant_id,
                            milestone_ids=[new_id() for _ in app.milestones], now=uow.now)
    else:
        app.reject(call, reason or "", uow.now, take_number=take_number)
    assert app.decision is not None  # approve and reject number the decision
    repo.save_call(call, uow.now)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "decide", from_status=before, to_status=app.status.value,
               reason=reason,
               data={"awarded_vnd": app.awarded_vnd, "grant_id": app.grant_id,
                     "decision_no": app.decision.decision_no,
                     "decision_year": app.decision.year})
    events.publish(uow, app.events)
    if grant is not None:
        repo.add_grant(grant, uow.now)
        uow.record(GRANT, grant.id, "award", to_status=grant.status.value, new=True,
                   data={"awarded_vnd": grant.awarded_vnd, "application_id": app.id,
                         "decision_no": app.decision.decision_no})
        uow.record(CALL, call.id, "commit_budget", from_status=call.status.value,
                   to_status=call.status.value,
                   data={"awarded_vnd": awarded_vnd, "application_id": app.id,
                         "remaining_budget_vnd": call.remaining_budget_vnd})
        events.publish(uow, grant.events)
    return app, call
