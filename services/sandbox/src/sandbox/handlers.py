"""The sandbox's commands: load, call the domain, save, audit and stage the events.

The firm drafts, edits, submits and withdraws its applications; reviewers assess them,
request changes and decide. On a pilot, the firm files reports, incidents and the exit
report; reviewers report incidents and decide: suspend, resume, terminate, extend,
adjust, accept the exit. A reviewer of the applicant's own organisation acts on neither
(409). A formal decision takes the next number of the supervising agency's sandbox
register once every rule holds; a graduating pilot's certificate of completion the next
of its certificate register. The scheduler's actions (:mod:`sandbox.scheduler`) are the
last section.

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
    Scope,
)
from sandbox.domain.errors import ConflictOfInterest
from sandbox.domain.pilots import DecisionKind, Pilot, PilotDecision, PilotStatus
from sandbox.domain.sectors import SectorProfiles
from sandbox.domain.supervision import (
    ExitOutcome,
    ExitReport,
    Figures,
    Incident,
    Report,
    Severity,
)
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


# --- applications: loading -----------------------------------------------------------------

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


# --- applications: the firm's commands -----------------------------------------------------

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


# --- applications: the reviewers' commands -------------------------------------------------

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


def certificate_register(agency_id: str) -> str:
    """The register numbering a supervising agency's certificates of completion:
    ``GCN-TNKS-<agency>`` (giấy chứng nhận: certificate)."""
    return f"GCN-TNKS-{agency_id}"


# --- pilots: loading -----------------------------------------------------------------------

def owned_pilot(repo: Repository, user: Principal, pilot_id: str) -> Pilot:
    """The caller's own pilot, locked for the command; 404 for anyone else's."""
    pilot = repo.pilot(pilot_id, for_update=True)
    if pilot is None or not access.owns(user, pilot.owner_id):
        raise NotFound(f"pilot {pilot_id} not found")
    return pilot


def supervised_pilot(repo: Repository, user: Principal, pilot_id: str) -> Pilot:
    """A pilot for a reviewer's decision, locked; refused (409) to a reviewer of the
    firm's own organisation."""
    pilot = repo.pilot(pilot_id, for_update=True)
    if pilot is None:
        raise NotFound(f"pilot {pilot_id} not found")
    if user.org and user.org == pilot.organisation_id:
        raise ConflictOfInterest("conflict of interest: the reviewer's organisation is "
                                 "the pilot's firm")
    return pilot


def _save(uow: Work, repo: Repository, pilot: Pilot, action: str, before: str, *,
          reason: str | None = None, data: dict | None = None) -> None:
    repo.save_pilot(pilot, uow.now)
    uow.record(PILOT, pilot.id, action, from_status=before, to_status=pilot.status.value,
               reason=reason, data=data)
    events.publish(uow, pilot.events)


def _numbered(uow: Work, repo: Repository, pilot: Pilot, decision: PilotDecision) -> None:
    repo.add_decision(DecisionRecord(
        id=new_id(), register=sandbox_register(pilot.supervising_agency),
        decision_no=decision.decision_no, decision_year=decision.decision_year,
        kind=decision.kind.value, application_id=pilot.application_id, pilot_id=pilot.id,
        decided_by=decision.decided_by, decided_on=decision.decided_on,
        decided_at=uow.now, reason=decision.reason))


# --- pilots: the firm's commands -----------------------------------------------------------

def file_report(uow: Work, repo: Repository, user: Principal, pilot_id: str,
                figures: Figures) -> Report:
    pilot = owned_pilot(repo, user, pilot_id)
    before = pilot.status.value
    report = pilot.file_report(new_id(), figures, user.sub, uow.today, uow.now)
    repo.add_report(report)
    _save(uow, repo, pilot, "report", before,
          data={"report_id": report.id, "period": str(report.period),
                "filed_late": report.filed_late,
                "breaches": [b.as_dict() for b in report.breaches],
                "next_report_due_on": pilot.next_report_due_on})
    return report


def report_incident(uow: Work, repo: Repository, user: Principal, pilot_id: str, *,
                    severity: Severity, description: str,
                    occurred_at: datetime | None) -> Incident:
    """The owner or a reviewer (not one of the firm's own organisation: 409) reports an
    incident; a critical one suspends the pilot."""
    if user.has("reviewer"):
        pilot = supervised_pilot(repo, user, pilot_id)
        role = "reviewer"
    else:
        pilot = owned_pilot(repo, user, pilot_id)
        role = "sandbox_applicant"
    before = pilot.status.value
    incident = pilot.report_incident(new_id(), severity, description, occurred_at,
                                     user.sub, role, uow.now)
    repo.add_incident(incident)
    _save(uow, repo, pilot, "incident", before,
          reason=pilot.suspension_reason if incident.suspended_pilot else None,
          data={"incident_id": incident.id, "severity": severity.value,
                "reported_in_time": incident.reported_in_time,
                "suspended_pilot": incident.suspended_pilot})
    return incident


def file_exit(uow: Work, repo: Repository, user: Principal, pilot_id: str, *,
              outcome: ExitOutcome, final_report: str, lessons: str,
              recommendations: list[str], kpi_results: dict[str, float] | None
              ) -> ExitReport:
    pilot = owned_pilot(repo, user, pilot_id)
    before = pilot.status.value
    pilot.file_exit(ExitReport(
        id=new_id(), outcome=outcome, final_report=final_report, lessons=lessons,
        recommendations=tuple(recommendations), kpi_results=kpi_results,
        filed_by=user.sub, filed_at=uow.now))
    _save(uow, repo, pilot, "file_exit", before, data={"outcome": outcome.value})
    assert pilot.exit_report is not None
    return pilot.exit_report


# --- pilots: the reviewers' commands -------------------------------------------------------

def suspend_pilot(uow: Work, repo: Repository, user: Principal, pilot_id: str,
                  reason: str) -> Pilot:
    pilot = supervised_pilot(repo, user, pilot_id)
    before = pilot.status.value
    decision = pilot.suspend(reason, user.sub, uow.today, uow.now,
                             number=numbering(uow, sandbox_register(pilot.supervising_agency)))
    _numbered(uow, repo, pilot, decision)
    _save(uow, repo, pilot, "suspend", before, reason=reason,
          data={"decision_no": decision.decision_no})
    return pilot


def resume_pilot(uow: Work, repo: Repository, user: Principal, pilot_id: str,
                 reason: str) -> Pilot:
    pilot = supervised_pilot(repo, user, pilot_id)
    before = pilot.status.value
    pilot.resume(reason, uow.today, uow.now)
    _save(uow, repo, pilot, "resume", before, reason=reason,
          data={"next_report_due_on": pilot.next_report_due_on})
    return pilot


def terminate_pilot(uow: Work, repo: Repository, user: Principal, pilot_id: str,
                    reason: str) -> Pilot:
    pilot = supervised_pilot(repo, user, pilot_id)
    before = pilot.status.value
    decision = pilot.terminate(
        reason, user.sub, uow.today, uow.now,
        number=numbering(uow, sandbox_register(pilot.supervising_agency)))
    _numbered(uow, repo, pilot, decision)
    _save(uow, repo, pilot, "terminate", before, reason=reason,
          data={"decision_no": decision.decision_no})
    return pilot


def extend_pilot(uow: Work, repo: Repository, profiles: SectorProfiles, user: Principal,
                 pilot_id: str, ends_on: date, reason: str) -> Pilot:
    pilot = supervised_pilot(repo, user, pilot_id)
    before, previous = pilot.status.value, pilot.ends_on
    pilot.extend(ends_on, reason, profiles.get(pilot.sector), uow.now)
    _save(uow, repo, pilot, "extend", before, reason=reason,
          data={"previous_ends_on": previous, "ends_on": pilot.ends_on,
                "extensions_used": pilot.extensions_used})
    return pilot


def adjust_pilot(uow: Work, repo: Repository, user: Principal, pilot_id: str, reason: str,
                 *, conditions: list[str] | None, limits: Scope | None) -> Pilot:
    pilot = supervised_pilot(repo, user, pilot_id)
    before = pilot.status.value
    pilot.adjust(reason, uow.now,
                 conditions=tuple(conditions) if conditions is not None else None,
                 limits=limits)
    _save(uow, repo, pilot, "adjust", before, reason=reason,
          data={"conditions": list(pilot.conditions), "limits": pilot.limits.as_dict()})
    return pilot


def accept_exit(uow: Work, repo: Repository, user: Principal, pilot_id: str,
                note: str) -> Pilot:
    pilot = supervised_pilot(repo, user, pilot_id)
    before = pilot.status.value
    agency = pilot.supervising_agency

    def certificate() -> str:
        return uow.take_decision_number(certificate_register(agency)).decision_no

    decision = pilot.accept_exit(note, user.sub, uow.today, uow.now,
                                 number=numbering(uow, sandbox_register(agency)),
                                 certificate=certificate)
    _numbered(uow, repo, pilot, decision)
    _save(uow, repo, pilot, "accept_exit", before, reason=note or None,
          data={"decision_no": decision.decision_no, "outcome": pilot.exit_outcome,
                "certificate_no": pilot.certificate_no})
    return pilot


# --- what the scheduler does (sandbox.scheduler) -------------------------------------------
# Each acts on one pilot or application, locked; it returns False and writes nothing when
# there is nothing to do (another replica did it, or the state moved on since the scan).

def start_pilot(uow: Work, repo: Repository, pilot_id: str) -> bool:
    """Start an approved pilot on its start date."""
    pilot = repo.pilot(pilot_id, for_update=True, skip_locked=True)
    if pilot is None or pilot.status != PilotStatus.APPROVED or uow.today < pilot.starts_on:
        return False
    before = pilot.status.value
    pilot.start(uow.today, uow.now)
    _save(uow, repo, pilot, "start", before,
          data={"next_report_due_on": pilot.next_report_due_on})
    return True


def flag_report_overdue(uow: Work, repo: Repository, pilot_id: str) -> bool:
    """Flag an active pilot's owed report once its due day has passed."""
    pilot = repo.pilot(pilot_id, for_update=True, skip_locked=True)
    if pilot is None or not pilot.flag_report_overdue(uow.today):
        return False
    _save(uow, repo, pilot, "report_overdue", pilot.status.value,
          data={"period": str(pilot.owed_period), "due_on": pilot.next_report_due_on})
    return True


def expire_pilot(uow: Work, repo: Repository, pilot_id: str) -> bool:
    """Mark a pilot past its end date with no exit report filed as expired."""
    pilot = repo.pilot(pilot_id, for_update=True, skip_locked=True)
    if pilot is None:
        return False
    before = pilot.status.value
    if not pilot.expire(uow.today):
        return False
    _save(uow, repo, pilot, "expire", before, data={"ends_on": pilot.ends_on})
    return True


def flag_decision_overdue(uow: Work, repo: Repository, application_id: str) -> bool:
    """Flag, once, an application whose decision clock has run out."""
    app = repo.application(application_id, for_update=True, skip_locked=True)
    if app is None or not app.flag_overdue(uow.today):
        return False
    repo.save_application(app, uow.now)
    uow.record(APPLICATION, app.id, "decision_overdue", from_status=app.status.value,
               to_status=app.status.value, data={"decision_due_on": app.decision_due_on})
    events.publish(uow, app.events)
    return True
