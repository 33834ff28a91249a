"""Reviewer assignments in calls reviewed by assignment (domain.md §1, "Peer review that
experts trust").

The programme manager assigns a reviewer to a submitted application with a due date;
a known conflict (the reviewer's organisation is the applicant institution, or the
reviewer is on the team) is refused, and so is a reviewer who declared a conflict with
it before. The assignee first reads only the application's summary and declares, once,
with a statement: no conflict (``accepted``: they read the whole application and may
review it) or a conflict (``conflict``: the assignment is released). Before reviewing
they may decline with a reason. An assignment still open when its application is
withdrawn or decided, or its call cancelled, is ``released``.

    assigned ──declare(no conflict)──▶ accepted ──review──▶ reviewed
       │ └──declare(conflict)──▶ conflict            │
       └──────decline──▶ declined ◀──decline─────────┘
    assigned / accepted ──application withdrawn or decided, call cancelled──▶ released
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from grants.domain.applications import Application, ApplicationStatus
from grants.domain.calls import Call
from grants.domain.errors import ConflictOfInterest, IllegalTransition, InvalidInput


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    CONFLICT = "conflict"
    DECLINED = "declined"
    REVIEWED = "reviewed"
    RELEASED = "released"


# Still expected to review (what due and overdue are about).
OPEN = (AssignmentStatus.ASSIGNED, AssignmentStatus.ACCEPTED)
# Counted among the application's reviewers.
ACTIVE = (*OPEN, AssignmentStatus.REVIEWED)
# Declared no conflict: the assignee reads the whole application.
CLEARED = (AssignmentStatus.ACCEPTED, AssignmentStatus.REVIEWED)


@dataclass(frozen=True)
class AssignmentCreated:
    assignment_id: str
    application_id: str
    call_id: str
    agency_id: str
    reviewer_id: str
    reviewer_org: str
    name: str
    due_on: date
    assigned_by: str
    assigned_at: datetime


@dataclass(frozen=True)
class AssignmentReleased:
    """The assignment ended without a review: the application needs another reviewer
    (``conflict``, ``declined``) or no longer needs any (``released``)."""

    assignment_id: str
    application_id: str
    call_id: str
    agency_id: str
    reviewer_id: str
    reviewer_org: str
    from_status: str
    status: str
    reason: str
    released_at: datetime


@dataclass
class Assignment:
    id: str
    application_id: str
    call_id: str
    agency_id: str
    reviewer_id: str
    reviewer_org: str
    name: str
    due_on: date
    assigned_by: str
    status: AssignmentStatus = AssignmentStatus.ASSIGNED
    conflict_of_interest: bool | None = None
    statement: str | None = None
    declared_at: datetime | None = None
    decline_reason: str | None = None
    release_reason: str | None = None
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def assign(
        cls, *, id: str, application: Application, call: Call, reviewer_id: str,
        reviewer_org: str, name: str, due_on: date, assigned_by: str,
        earlier: list[Assignment], today: date, now: datetime,
    ) -> Assignment:
        """``earlier``: the application's assignments so far."""
        call.check_reviewing()
        if not call.assigned_review:
            raise IllegalTransition(f"call {call.id} is reviewed openly (review_mode open): "
                                    "reviewers are not assigned")
        if application.status not in (ApplicationStatus.SUBMITTED,
                                       ApplicationStatus.UNDER_REVIEW):
            raise IllegalTransition(f"application is {application.status}; reviewers are "
                                    "assigned to a submitted application")
        if application.is_team_member(assigned_by):
            raise ConflictOfInterest("conflict of interest: the programme manager is on the "
                                     "applicant team")
        if not name.strip():
            raise InvalidInput("the reviewer's name is required", field="name")
        if due_on < today:
            raise InvalidInput(f"due_on {due_on} is before today ({today})", field="due_on")
        reason = application.conflict_of(reviewer_id, reviewer_org)
        if reason:
            raise ConflictOfInterest(f"conflict of interest: {reason}")
        for before in (a for a in earlier if a.reviewer_id == reviewer_id):
            if before.status == AssignmentStatus.CONFLICT:
                raise ConflictOfInterest(
                    "conflict of interest: the reviewer declared a conflict with this "
                    f"application (assignment {before.id})")
            if before.status in ACTIVE:
                raise IllegalTransition(f"the reviewer is already assigned to this "
                                        f"application (assignment {before.id}, "
                                        f"{before.status})")
        if any(r.reviewer_id == reviewer_id for r in application.reviews):
            raise IllegalTransition("the reviewer has already reviewed this application")
        assignment = cls(id=id, application_id=application.id, call_id=call.id,
                         agency_id=application.agency_id, reviewer_id=reviewer_id,
                         reviewer_org=reviewer_org, name=name, due_on=due_on,
                         assigned_by=assigned_by)
        assignment.events.append(AssignmentCreated(
            assignment_id=id, application_id=application.id, call_id=call.id,
            agency_id=application.agency_id, reviewer_id=reviewer_id,
            reviewer_org=reviewer_org, name=name, due_on=due_on, assigned_by=assigned_by,
            assigned_at=now))
        return assignment

    # --- derived ------------------------------------------------------------------------
    def is_assignee(self, sub: str, org: str) -> bool:
        """The token's ``sub`` and ``org`` are the assignment's."""
        return sub == self.reviewer_id and org == self.reviewer_org

    def overdue(self, today: date) -> bool:
        """Past its due date with no review yet: flagged, never acted on automatically."""
        return self.status in OPEN and self.due_on < today

    @property
    def cleared(self) -> bool:
        return self.status in CLEARED

    # --- transitions --------------------------------------------------------------------
    def declare(self, *, conflict_of_interest: bool, statement: str, now: datetime) -> None:
        """The assignee's declaration, once: no conflict accepts the assignment, a
        conflict releases it."""
        if self.declared_at is not None:
            raise IllegalTransition("the declaration was made at "
                                    f"{self.declared_at.isoformat()} and is made once")
        if self.status != AssignmentStatus.ASSIGNED:
            raise IllegalTransition(f"assignment is {self.status}; there is nothing to "
                                    "declare")
        if not statement.strip():
            raise InvalidInput("the declaration needs a statement", field="statement")
        self.conflict_of_interest = conflict_of_interest
        self.statement = statement
        self.declared_at = now
        if conflict_of_interest:
            self._release(AssignmentStatus.CONFLICT,
                          "the reviewer declared a conflict of interest", now)
        else:
            self.status = AssignmentStatus.ACCEPTED

    def decline(self, reason: str, now: datetime) -> None:
        """The assignee declines, any time before reviewing, with a reason."""
        if self.status not in OPEN:
            raise IllegalTransition(f"assignment is {self.status}; only an assignment not "
                                    "yet reviewed is declined")
        if not reason.strip():
            raise InvalidInput("declining needs a reason", field="reason")
        self.decline_reason = reason
        self._release(AssignmentStatus.DECLINED, reason, now)

    def start_review(self) -> None:
        """The assignee reviews: only once they declared no conflict, and once."""
        if self.status == AssignmentStatus.ASSIGNED:
            raise IllegalTransition("declare no conflict of interest before reviewing "
                                    f"(POST /v1/assignments/{self.id}/declaration)")
        if self.status != AssignmentStatus.ACCEPTED:
            raise IllegalTransition(f"assignment is {self.status}; it takes no review")
        self.status = AssignmentStatus.REVIEWED

    def release(self, reason: str, now: datetime) -> bool:
        """Release an open assignment (its application no longer needs the review);
        whether it was open."""
        if self.status not in OPEN:
            return False
        self._release(AssignmentStatus.RELEASED, reason, now)
        return True

    def _release(self, status: AssignmentStatus, reason: str, now: datetime) -> None:
        before = self.status
        self.status = status
        self.release_reason = reason
        self.events.append(AssignmentReleased(
            assignment_id=self.id, application_id=self.application_id, call_id=self.call_id,
            agency_id=self.agency_id, reviewer_id=self.reviewer_id,
            reviewer_org=self.reviewer_org, from_status=before.value, status=status.value,
            reason=reason, released_at=now))
