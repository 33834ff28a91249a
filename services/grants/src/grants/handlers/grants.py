"""The grant commands: the team reports milestones and registers results; the programme
manager of the funding agency accepts, rejects and reschedules milestones, records
breaches and closes the grant."""

from __future__ import annotations

from datetime import date
from typing import Any

from grants import access, events
from grants.domain.applications import ConflictOfInterest
from grants.domain.grants import (
    GOOD_FAITH_CONDITIONS,
    Author,
    Breach,
    BreachKind,
    Grant,
    Milestone,
    Outcome,
    PartialCompletion,
    Result,
    ResultKind,
)
from grants.handlers import GRANT, new_id
from grants.repository import Repository
from servicekit.auth import Principal
from servicekit.decisions import grants_register
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import AbstractUnitOfWork

# --- loading -------------------------------------------------------------------------------

def visible_grant(repo: Repository, user: Principal, grant_id: str, *,
                  for_update: bool = False) -> Grant:
    """The grant if ``user`` may read it; 404 otherwise."""
    grant = repo.grant(grant_id, for_update=for_update)
    applicant = repo.applicant_of(grant) if grant and user.has("researcher") else None
    if grant is None or not access.can_read_grant(user, grant, applicant):
        raise NotFound(f"grant {grant_id} not found")
    return grant


def managed_grant(repo: Repository, user: Principal, grant_id: str) -> Grant:
    """A grant the programme manager's agency funds, locked for the change, and not one
    whose team they are on or whose application they drafted: no one accepts their own
    deliverables or closes their own grant (409, the reason given)."""
    grant = visible_grant(repo, user, grant_id, for_update=True)
    if not access.funds(user, grant):
        raise Forbidden("programme managers act only on their own agency's grants")
    if access.has_conflict_of_interest(user, grant, repo.applicant_of(grant)):
        raise ConflictOfInterest(
            "conflict of interest: the programme manager is on the grant's team")
    return grant


def team_grant(repo: Repository, user: Principal, grant_id: str) -> Grant:
    """A grant whose team ``user`` is on, locked for the change; 403 for its other
    readers."""
    grant = visible_grant(repo, user, grant_id, for_update=True)
    if not access.on_team(user, grant):
        raise Forbidden("only the grant's team may do this")
    return grant


def milestone_of(grant: Grant, milestone_id: str) -> Milestone:
    try:
        return grant.milestone(milestone_id)
    except KeyError:
        raise NotFound(f"milestone {milestone_id} is not on grant {grant.id}") from None


def _save(uow: AbstractUnitOfWork, repo: Repository, grant: Grant, action: str, *,
          before: str, reason: str | None = None, data: dict[str, Any] | None = None) -> None:
    """The grant's new state, its audit record and its events."""
    repo.save_grant(grant, uow.now)
    uow.record(GRANT, grant.id, action, from_status=before, to_status=grant.status.value,
               reason=reason, data=data)
    events.publish(uow, grant.events)


# --- the team's commands -------------------------------------------------------------------

def report_milestone(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                     grant_id: str, milestone_id: str, report: dict[str, Any]) -> Grant:
    """Report a deliverable with its evidence (``report``: the body as sent)."""
    grant = team_grant(repo, user, grant_id)
    m = milestone_of(grant, milestone_id)
    before = m.status.value
    report = {**report, "reported_by": user.sub, "reported_at": uow.now.isoformat()}
    grant.report_milestone(milestone_id, report)
    _save(uow, repo, grant, "report_milestone", before=grant.status.value,
          data={"milestone_id": m.id, "from": before, "to": m.status.value,
                "evidence": report["evidence"]})
    return grant


def register_result(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                    grant_id: str, *, kind: ResultKind, title: str,
                    authors: list[Author]) -> tuple[Grant, Result]:
    """Register a research result; the grant's institution owns it."""
    grant = team_grant(repo, user, grant_id)
    result = grant.register_result(result_id=new_id(), kind=kind, title=title,
                                   authors=authors, registered_by=user.sub, now=uow.now)
    repo.add_result(grant, result)
    uow.record(GRANT, grant.id, "register_result", from_status=grant.status.value,
               to_status=grant.status.value,
               data={"result_id": result.id, "kind": result.kind.value})
    events.publish(uow, grant.events)
    return grant, result


# --- the programme manager's commands ------------------------------------------------------

def accept_milestone(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                     grant_id: str, milestone_id: str) -> Grant:
    """Accept a reported deliverable: its tranche is released."""
    grant = managed_grant(repo, user, grant_id)
    m = milestone_of(grant, milestone_id)
    grant.accept_milestone(milestone_id, uow.now)
    _save(uow, repo, grant, "accept_milestone", before=grant.status.value,
          data={"milestone_id": m.id, "released_vnd": m.released_vnd})
    return grant


def reject_milestone(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                     grant_id: str, milestone_id: str, reason: str) -> Grant:
    """Reject a report with a reason; the team may report again."""
    grant = managed_grant(repo, user, grant_id)
    milestone_of(grant, milestone_id)
    grant.reject_milestone(milestone_id, reason)
    _save(uow, repo, grant, "reject_milestone", before=grant.status.value, reason=reason,
          data={"milestone_id": milestone_id})
    return grant


def reschedule_milestone(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                         grant_id: str, milestone_id: str, due_date: date,
                         reason: str) -> Grant:
    """Move a due date with a reason (research delay is tolerated)."""
    grant = managed_grant(repo, user, grant_id)
    milestone_of(grant, milestone_id)
    _, previous = grant.reschedule_milestone(milestone_id, due_date, reason, today=uow.today)
    _save(uow, repo, grant, "reschedule_milestone", before=grant.status.value, reason=reason,
          data={"milestone_id": milestone_id, "from_due_date": previous,
                "to_due_date": due_date})
    return grant


def record_breach(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                  grant_id: str, *, kind: BreachKind, description: str) -> Breach:
    """Record a breach found on the grant (it bars failed_in_good_faith)."""
    grant = managed_grant(repo, user, grant_id)
    breach = grant.record_breach(breach_id=new_id(), kind=kind, description=description,
                                 recorded_by=user.sub, now=uow.now)
    repo.add_breach(grant, breach, uow.now)
    uow.record(GRANT, grant.id, "record_breach", from_status=grant.status.value,
               to_status=grant.status.value, reason=description,
               data={"breach_id": breach.id, "kind": breach.kind.value})
    events.publish(uow, grant.events)
    return breach


def close_grant(uow: AbstractUnitOfWork, repo: Repository, user: Principal, grant_id: str,
                *, outcome: Outcome, justification: str, procedures_followed: bool | None,
                breach: str | None, refund_vnd: int | None,
                partial: list[PartialCompletion]) -> Grant:
    """Close with an outcome and its consequences; the closure is a numbered decision of
    the agency's grants register."""
    grant = managed_grant(repo, user, grant_id)
    before = grant.status.value
    grant.close(outcome=outcome, justification=justification, now=uow.now,
                procedures_followed=procedures_followed, breach=breach,
                refund_vnd=refund_vnd, partial=partial,
                take_number=lambda: uow.take_decision_number(
                    grants_register(grant.agency_id)))
    assert grant.decision is not None  # close numbers the decision
    data: dict[str, Any] = {
        "outcome": grant.outcome, "refund_due_vnd": grant.refund_due_vnd,
        "liability": grant.liability, "cancelled_vnd": grant.cancelled_vnd,
        "disbursed_vnd": grant.disbursed_vnd, "decision_no": grant.decision.decision_no,
        "decision_year": grant.decision.year}
    if outcome == Outcome.FAILED_IN_GOOD_FAITH:
        data["attested_conditions"] = list(GOOD_FAITH_CONDITIONS)
    _save(uow, repo, grant, "close", before=before, reason=justification, data=data)
    return grant
