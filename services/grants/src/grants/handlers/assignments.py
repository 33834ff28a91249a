"""Reviewer assignments (calls reviewed by assignment): the programme manager assigns a
reviewer with a due date; the assignee declares, once, whether they have a conflict of
interest, or declines before reviewing."""

from __future__ import annotations

from datetime import date
from typing import Any

from grants import access, events
from grants.domain.assignments import Assignment
from grants.handlers import ASSIGNMENT, new_id
from grants.handlers.applications import call_of, visible
from grants.repository import Repository
from servicekit.auth import Principal
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import AbstractUnitOfWork

# --- loading -------------------------------------------------------------------------------

def readable(repo: Repository, user: Principal, assignment_id: str) -> Assignment:
    """The assignment if ``user`` reads it (its assignee, the agency's programme managers,
    auditors); 404 otherwise."""
    assignment = repo.assignment(assignment_id)
    if assignment is None or not access.assignment_reader(user, assignment):
        raise NotFound(f"assignment {assignment_id} not found")
    return assignment


def assigned_to(repo: Repository, user: Principal, assignment_id: str) -> Assignment:
    """The assignment, locked, when ``user`` is its assignee (token ``sub`` and ``org``
    as assigned); 404 to anyone else."""
    assignment = repo.assignment(assignment_id, for_update=True)
    if assignment is None or not assignment.is_assignee(user.sub, user.org):
        raise NotFound(f"assignment {assignment_id} not found")
    return assignment


# --- the programme manager's command -------------------------------------------------------

def assign_reviewer(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                    application_id: str, *, reviewer_id: str, reviewer_org: str, name: str,
                    due_on: date) -> Assignment:
    """Assign a reviewer to a submitted application of the manager's agency, due on
    ``due_on`` (``assignment.created``); a known conflict is refused with its reason.
    The call is read FOR SHARE: it cannot be cancelled before the assignment commits."""
    app = visible(repo, user, application_id, for_update=True)
    if not access.acts_for_agency(user, app.agency_id):
        raise Forbidden("programme managers assign reviewers only to their own agency's "
                        "applications")
    earlier = repo.assignments_of(app.id)
    assignment = Assignment.assign(
        id=new_id(), application=app, call=call_of(repo, app, for_share=True),
        reviewer_id=reviewer_id, reviewer_org=reviewer_org, name=name, due_on=due_on,
        assigned_by=user.sub, earlier=earlier, today=uow.today, now=uow.now)
    repo.add_assignment(assignment, uow.now)
    uow.record(ASSIGNMENT, assignment.id, "assign", to_status=assignment.status.value,
               new=True,
               data={"application_id": app.id, "reviewer_id": assignment.reviewer_id,
                     "reviewer_org": assignment.reviewer_org, "due_on": assignment.due_on})
    events.publish(uow, assignment.events)
    return assignment


# --- the assignee's commands ---------------------------------------------------------------

def declare(uow: AbstractUnitOfWork, repo: Repository, user: Principal, assignment_id: str,
            *, conflict_of_interest: bool, statement: str) -> Assignment:
    """Declare, once, with a statement: no conflict (the assignee reads and reviews the
    whole application) or a conflict (the assignment is released)."""
    assignment = assigned_to(repo, user, assignment_id)
    before = assignment.status.value
    assignment.declare(conflict_of_interest=conflict_of_interest, statement=statement,
                       now=uow.now)
    _save(uow, repo, assignment, "declare", before=before, reason=statement,
          data={"conflict_of_interest": conflict_of_interest, "statement": statement})
    return assignment


def decline(uow: AbstractUnitOfWork, repo: Repository, user: Principal, assignment_id: str,
            reason: str) -> Assignment:
    """Decline before reviewing, with a reason."""
    assignment = assigned_to(repo, user, assignment_id)
    before = assignment.status.value
    assignment.decline(reason, uow.now)
    _save(uow, repo, assignment, "decline", before=before, reason=reason, data={})
    return assignment


def _save(uow: AbstractUnitOfWork, repo: Repository, assignment: Assignment, action: str, *,
          before: str, reason: str, data: dict[str, Any]) -> None:
    """The assignment's new state, its audit record and its events."""
    repo.save_assignment(assignment, uow.now)
    uow.record(ASSIGNMENT, assignment.id, action, from_status=before,
               to_status=assignment.status.value, reason=reason,
               data={"application_id": assignment.application_id, **data})
    events.publish(uow, assignment.events)
