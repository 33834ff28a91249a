"""The sandbox's commands: load, call the domain, save, audit and stage the events.

Each handler runs inside the request's unit of work (the route commits it and answers);
the unit tests run them on an in-memory repository and unit of work. A handler never
commits, and raises before writing anything when a rule refuses the command.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Protocol

from sandbox import access, events
from sandbox.domain.applications import (
    Application,
    ApplicationStatus,
    ApprovalTerms,
    Assessment,
    Criterion,
    DecisionNumberSource,
    Proposal,
)
from sandbox.domain.pilots import DecisionKind, Pilot
from sandbox.domain.sectors import SectorProfiles
from sandbox.repository import DecisionRecord, Repository
from servicekit.auth import Principal
from servicekit.decisions import DecisionNumber, sandbox_register
from servicekit.problems import NotFound

APPLICATION = "application"
PILOT = "pilot"


class Work(Protocol):
    """What a handler needs of the unit of work (servicekit.unit_of_work.UnitOfWork)."""

    now: datetime

    @property
    def today(self) -> date: ...
    def record(self, aggregate_type: str, aggregate_id: str, action: str, *,
               from_status: str | None = None, to_status: str | None = None,
               reason: str | None = None, data: dict[str, Any] | None = None,
               new: bool = False) -> None: ...
    def emit(self, name: str, subject: str, data: Any) -> str: ...
    def take_decision_number(self, register: str) -> DecisionNumber: ...


def new_id() -> str:
    return str(uuid.uuid4())


def numbering(uow: Work, register: str) -> DecisionNumberSource:
    """The next number of ``register``, taken only when the domain asks (every rule
    held)."""
    def take() -> tuple[str, int]:
        taken = uow.take_decision_number(register)
        return taken.decision_no, taken.year
    return take


# --- loading -------------------------------------------------------------------------------

def owned_application(repo: Repository, user: Principal, application_id: str) -> Application:
    """The caller's own application, locked for the command; 404 for anyone else's."""
    app = repo.application(application_id, for_update=True)
    if app is None or not access.owns(user, app.owner_id):
        raise NotFound(f"application {application_id} not found")
    return app


def submitted_application(repo: Repository, application_id: str) -> Application:
    """A submitted (or since decided) application for a reviewer's command, locked; a
    draft is the firm's own: 404."""
    app = repo.application(application_id, for_update=True)
    if app is None or app.status == ApplicationStatus.DRAFT:
        raise NotFound(f"application {application_id} not found")
    return app


# --- the firm's commands -------------------------------------------------------------------

def create_application(uow: Work, repo: Repository, profiles: SectorProfiles,
                       user: Principal, proposal: Proposal) -> Application:
    app = Application.draft(id=new_id(), owner_id=user.sub, organisation_id=user.org,
                            proposal=proposal, profile=profiles.get(proposal.sector))
    repo.add_application(app, uow.now)
    uow.record(APPLICATION, app.id, "draft", to_status=app.status.value, new=True,
               data={"sector": proposal.sector})
    return app


def edit_application(uow: Work, repo: Repository, profiles: SectorProfiles,
                     user: Principal, application_id: str, proposal: Proposal) -> Application:
    app = owned_application(repo, user, application_id)
    profile = profiles.get(proposal.sector)
    app.edit(proposal, profile)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "edit", from_status=app.status.value,
               to_status=app.status.value, data={"sector": proposal.sector})
    return app


def submit_application(uow: Work, repo: Repository, profiles: SectorProfiles,
                       user: Principal, application_id: str) -> Application:
    app = owned_application(repo, user, application_id)
    before = app.status.value
    app.submit(profiles.get(app.proposal.sector), uow.today, uow.now)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "submit", from_status=before, to_status=app.status.value,
               data={"submission": app.submission, "decision_due_on": app.decision_due_on})
    events.publish(uow, app.events)
    return app


def withdraw_application(uow: Work, repo: Repository, user: Principal, application_id: str,
                         reason: str) -> Application:
    app = owned_application(repo, user, application_id)
    before = app.status.value
    app.withdraw(reason, uow.today, uow.now)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "withdraw", from_status=before,
               to_status=app.status.value, reason=reason)
    events.publish(uow, app.events)
    return app


# --- the reviewers' commands ---------------------------------------------------------------

def assess_application(uow: Work, repo: Repository, user: Principal, application_id: str,
                       criteria: dict[str, Criterion], summary: str) -> Assessment:
    app = submitted_application(repo, application_id)
    before = app.status.value
    app.assess(Assessment(id=new_id(), reviewer_id=user.sub, reviewer_org=user.org,
                          submission=app.submission, criteria=criteria, summary=summary,
                          assessed_at=uow.now))
    assessment = app.assessments[-1]
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "assess", from_status=before,
               to_status=app.status.value,
               data={"assessment_id": assessment.id, "submission": assessment.submission,
                     "failed": assessment.failed})
    return assessment


def request_changes(uow: Work, repo: Repository, user: Principal, application_id: str,
                    reasons: list[str]) -> Application:
    app = submitted_application(repo, application_id)
    before = app.status.value
    app.request_changes(user.org, reasons, uow.today, uow.now)
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "request_changes", from_status=before,
               to_status=app.status.value, reason="; ".join(reasons))
    events.publish(uow, app.events)
    return app


def decide_application(uow: Work, repo: Repository, profiles: SectorProfiles,
                       user: Principal, application_id: str, *,
                       terms: ApprovalTerms | None = None,
                       reasons: list[str] | None = None) -> tuple[Application, Pilot | None]:
    """Approve on ``terms`` (creating the pilot, started at once when it starts today) or
    reject with ``reasons``; the decision takes the next number of its supervising
    agency's sandbox register once every rule holds."""
    app = submitted_application(repo, application_id)
    before = app.status.value
    profile = profiles.get(app.proposal.sector)
    register = sandbox_register(app.supervising_agency)
    number = numbering(uow, register)
    pilot = None
    if terms is not None:
        app.approve(user.sub, user.org, terms, profile, uow.today, uow.now,
                    pilot_id=new_id(), number=number)
        pilot = Pilot.approved(app, profile)
    else:
        app.reject(user.sub, user.org, reasons or [], uow.today, uow.now, number=number)
    repo.save_application(app, uow.now)
    assert app.decision_no is not None and app.decision_year is not None
    reason = "; ".join(app.reasons) if app.reasons else None
    uow.record(APPLICATION, app.id, "decide", from_status=before, to_status=app.status.value,
               reason=reason,
               data={"decision": app.decision, "decision_no": app.decision_no,
                     "decision_year": app.decision_year, "pilot_id": app.pilot_id})
    events.publish(uow, app.events)
    if pilot is not None:
        repo.add_pilot(pilot, uow.today, uow.now)
        uow.record(PILOT, pilot.id, "approve", to_status=pilot.status.value, new=True,
                   data={"application_id": app.id, "decision_no": app.decision_no,
                         "starts_on": pilot.starts_on, "ends_on": pilot.ends_on})
    repo.add_decision(DecisionRecord(
        id=new_id(), register=register, decision_no=app.decision_no,
        decision_year=app.decision_year,
        kind=(DecisionKind.APPROVAL if pilot else DecisionKind.REJECTION).value,
        application_id=app.id, pilot_id=pilot.id if pilot else None, decided_by=user.sub,
        decided_on=uow.today, decided_at=uow.now, reason=reason))
    if pilot is not None and pilot.starts_on <= uow.today:
        pilot.start(uow.today, uow.now)
        repo.save_pilot(pilot, uow.now)
        uow.record(PILOT, pilot.id, "start", from_status="approved",
                   to_status=pilot.status.value,
                   data={"next_report_due_on": pilot.next_report_due_on})
        events.publish(uow, pilot.events)
    return app, pilot
