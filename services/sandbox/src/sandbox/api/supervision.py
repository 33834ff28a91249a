"""Supervising a pilot: ``/v1/pilots/{id}/reports``, ``/incidents``, ``/suspend``,
``/resume``, ``/terminate``, ``/extend``, ``/adjust``, ``/exit`` and ``/exit/accept``.

The firm (the pilot's owner; anyone else's pilot is a 404) files reports, incidents and
the exit report; reviewers report incidents and decide the rest, each with a reason.
A decision answers the whole pilot as ``GET /v1/pilots/{id}`` shows it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from sandbox import handlers
from sandbox.api.applications import scope_of
from sandbox.api.deps import Applicant, ProfilesDep, RepositoryDep, Reviewer
from sandbox.api.pilots import exit_read, incident_read, pilot_detail, report_read
from sandbox.domain.supervision import ExitOutcome, Figures, Severity
from sandbox.models import ExitRow, IncidentRow, ReportRow
from sandbox.repository import SqlRepository
from sandbox.schemas import (
    Adjustment,
    ExitAccept,
    ExitCreate,
    ExitRead,
    Extension,
    IncidentCreate,
    IncidentRead,
    PilotDetail,
    ReasonBody,
    ReportCreate,
    ReportRead,
)
from servicekit.auth import Principal, require_roles
from servicekit.unit_of_work import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["pilots"])

# The pilot's firm, or a reviewer.
OwnerOrReviewer = Annotated[Principal, Depends(require_roles("sandbox_applicant", "reviewer"))]


def answer(repo: SqlRepository, pilot_id: str) -> PilotDetail:
    """The pilot as the command left it (its row, flushed), for the answer."""
    repo.session.flush()
    return pilot_detail(repo.session, repo.pilot_row(pilot_id))


# --- the firm's commands -------------------------------------------------------------------

@router.post("/pilots/{pilot_id}/reports", status_code=201, response_model=ReportRead,
             summary="File the periodic report on one period (the pilot's firm): once per "
                     "period, once it is over, on an active or expired pilot; every figure "
                     "over a limit is recorded as a breach (pilot.breach_detected)")
def create_report(pilot_id: str, body: ReportCreate, user: Applicant, uow: UnitOfWorkDep,
                  repo: RepositoryDep):
    figures = Figures(
        period=body.period, participants=body.participants,
        transactions_vnd=body.transactions_vnd, complaints=body.complaints,
        kpis=dict(body.kpis), largest_transaction_vnd=body.largest_transaction_vnd,
        regions=tuple(body.regions) if body.regions is not None else None)
    report = handlers.file_report(uow, repo, user, pilot_id, figures)
    repo.session.flush()
    return uow.commit(report_read(repo.session.get(ReportRow, report.id)), status_code=201)


@router.post("/pilots/{pilot_id}/incidents", status_code=201, response_model=IncidentRead,
             summary="Report an incident (the pilot's firm, or a reviewer not of the firm's "
                     "organisation: 409), with when it occurred; the answer says whether "
                     "it was reported within the sector's deadline. A critical incident "
                     "suspends the pilot at once")
def create_incident(pilot_id: str, body: IncidentCreate, user: OwnerOrReviewer,
                    uow: UnitOfWorkDep, repo: RepositoryDep):
    incident = handlers.report_incident(
        uow, repo, user, pilot_id, severity=Severity(body.severity),
        description=body.description, occurred_at=body.occurred_at)
    repo.session.flush()
    return uow.commit(incident_read(repo.session.get(IncidentRow, incident.id)),
                      status_code=201)


@router.post("/pilots/{pilot_id}/exit", status_code=201, response_model=ExitRead,
             summary="File the exit report (the pilot's firm), once: outcome graduate or "
                     "discontinue, final report, lessons, recommended rule changes")
def create_exit(pilot_id: str, body: ExitCreate, user: Applicant, uow: UnitOfWorkDep,
                repo: RepositoryDep):
    report = handlers.file_exit(
        uow, repo, user, pilot_id, outcome=ExitOutcome(body.outcome),
        final_report=body.final_report, lessons=body.lessons,
        recommendations=list(body.recommendations),
        kpi_results=dict(body.kpi_results) if body.kpi_results is not None else None)
    repo.session.flush()
    return uow.commit(exit_read(repo.session.get(ExitRow, report.id)), status_code=201)


# --- the reviewers' decisions --------------------------------------------------------------

@router.post("/pilots/{pilot_id}/suspend", response_model=PilotDetail,
             summary="Suspend an active pilot, with a reason (a reviewer): a formal "
                     "decision, numbered in the supervising agency's register")
def suspend_pilot(pilot_id: str, body: ReasonBody, user: Reviewer, uow: UnitOfWorkDep,
                  repo: RepositoryDep):
    handlers.suspend_pilot(uow, repo, user, pilot_id, body.reason)
    return uow.commit(answer(repo, pilot_id))


@router.post("/pilots/{pilot_id}/resume", response_model=PilotDetail,
             summary="Resume a suspended pilot, with a reason (a reviewer); it owes reports "
                     "from the current period on. A terminated pilot is never resumed")
def resume_pilot(pilot_id: str, body: ReasonBody, user: Reviewer, uow: UnitOfWorkDep,
                 repo: RepositoryDep):
    handlers.resume_pilot(uow, repo, user, pilot_id, body.reason)
    return uow.commit(answer(repo, pilot_id))


@router.post("/pilots/{pilot_id}/terminate", response_model=PilotDetail,
             summary="Terminate the pilot, with a reason (a reviewer): a formal decision, "
                     "numbered; it ends the pilot")
def terminate_pilot(pilot_id: str, body: ReasonBody, user: Reviewer, uow: UnitOfWorkDep,
                    repo: RepositoryDep):
    handlers.terminate_pilot(uow, repo, user, pilot_id, body.reason)
    return uow.commit(answer(repo, pilot_id))


@router.post("/pilots/{pilot_id}/extend", response_model=PilotDetail,
             summary="Extend the pilot to a later end date, with a reason (a reviewer): as "
                     "many times and as long as the sector profile allows, within its "
                     "maximum total duration and absolute end date")
def extend_pilot(pilot_id: str, body: Extension, user: Reviewer, uow: UnitOfWorkDep,
                 repo: RepositoryDep, profiles: ProfilesDep):
    handlers.extend_pilot(uow, repo, profiles, user, pilot_id, body.ends_on, body.reason)
    return uow.commit(answer(repo, pilot_id))


@router.post("/pilots/{pilot_id}/adjust", response_model=PilotDetail,
             summary="Change the conditions or the limits, with a reason (a reviewer); "
                     "limits stay within the scope the firm requested")
def adjust_pilot(pilot_id: str, body: Adjustment, user: Reviewer, uow: UnitOfWorkDep,
                 repo: RepositoryDep):
    handlers.adjust_pilot(
        uow, repo, user, pilot_id, body.reason, conditions=body.conditions,
        limits=scope_of(body.limits) if body.limits is not None else None)
    return uow.commit(answer(repo, pilot_id))


@router.post("/pilots/{pilot_id}/exit/accept", response_model=PilotDetail,
             summary="Accept the filed exit report (a reviewer): the pilot has exited; a "
                     "formal decision, numbered, and a graduating pilot's numbered "
                     "certificate of completion, shown on the register")
def accept_exit(pilot_id: str, body: ExitAccept, user: Reviewer, uow: UnitOfWorkDep,
                repo: RepositoryDep):
    handlers.accept_exit(uow, repo, user, pilot_id, body.note)
    return uow.commit(answer(repo, pilot_id))
