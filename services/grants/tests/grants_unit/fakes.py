"""An in-memory repository for the handler tests (the unit of work is
``devkit.fakes.FakeUnitOfWork``)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from devkit.fakes import stored
from grants.domain.applications import Application, ApplicationStatus, Review
from grants.domain.assignments import ACTIVE, OPEN, Assignment
from grants.domain.calls import Call
from grants.domain.grants import Breach, Grant, Result


class FakeRepository:
    """Keeps copies, so that only what a handler saves is kept (like a rollback).
    ``locks`` lists what was loaded locked, in order: ``(kind, id, "update" | "share")``."""

    def __init__(self, *aggregates: Any, applicant_id: str | None = None) -> None:
        self.calls: dict[str, Call] = {}
        self.applications: dict[str, Application] = {}
        self.assignments: dict[str, Assignment] = {}
        self.grants: dict[str, Grant] = {}
        for aggregate in aggregates:
            self.put(aggregate)
        self.applicant_id = applicant_id
        self.reviews: list[tuple[str, str, Review]] = []
        self.results: list[tuple[str, Result]] = []
        self.breaches: list[tuple[str, Breach]] = []
        self.locks: list[tuple[str, str, str]] = []

    def put(self, aggregate: Any) -> None:
        """Store ``aggregate`` as it is, in the dict of its kind."""
        kind = {"Call": self.calls, "Application": self.applications,
                "Assignment": self.assignments, "Grant": self.grants}
        kind[type(aggregate).__name__][aggregate.id] = stored(aggregate)

    def _load(self, found: Any, kind: str, *, for_update: bool = False,
              for_share: bool = False) -> Any:
        if found is None:
            return None
        if for_update or for_share:
            self.locks.append((kind, found.id, "update" if for_update else "share"))
        return copy.deepcopy(found)

    # calls

    def call(self, call_id: str, *, for_update: bool = False,
             for_share: bool = False) -> Call | None:
        return self._load(self.calls.get(call_id), "call", for_update=for_update,
                          for_share=for_share)

    def add_call(self, call: Call, *, created_by: str, now: datetime) -> None:
        self.calls[call.id] = stored(call)

    def save_call(self, call: Call, now: datetime) -> None:
        assert call.id in self.calls
        self.calls[call.id] = stored(call)

    def decided_applications(self, call_id: str) -> int:
        return sum(1 for a in self.applications.values() if a.call_id == call_id and
                   a.status in (ApplicationStatus.APPROVED, ApplicationStatus.REJECTED))

    # applications

    def application(self, application_id: str, *, for_update: bool = False) -> Application | None:
        return self._load(self.applications.get(application_id), "application",
                          for_update=for_update)

    def add_application(self, app: Application, call: Call, now: datetime) -> None:
        self.applications[app.id] = stored(app)

    def save_application(self, app: Application, now: datetime) -> None:
        assert app.id in self.applications
        self.applications[app.id] = stored(app)

    def save_draft_terms(self, app: Application, call: Call, now: datetime) -> None:
        self.save_application(app, now)

    def add_review(self, app: Application, review: Review, review_id: str) -> None:
        self.reviews.append((app.id, review_id, review))

    # assignments

    def assignment(self, assignment_id: str, *, for_update: bool = False) -> Assignment | None:
        return self._load(self.assignments.get(assignment_id), "assignment",
                          for_update=for_update)

    def assignments_of(self, application_id: str) -> list[Assignment]:
        return [copy.deepcopy(a) for a in self.assignments.values()
                if a.application_id == application_id]

    def open_assignments(self, *, application_id: str | None = None,
                         call_id: str | None = None) -> list[Assignment]:
        return [self._load(a, "assignment", for_update=True)
                for a in self.assignments.values() if a.status in OPEN
                and application_id in (None, a.application_id)
                and call_id in (None, a.call_id)]

    def reviewer_assignment(self, application_id: str, reviewer_id: str, reviewer_org: str,
                            *, for_update: bool = False) -> Assignment | None:
        found = next((a for a in self.assignments.values()
                      if a.status in ACTIVE and a.application_id == application_id
                      and a.is_assignee(reviewer_id, reviewer_org)), None)
        return self._load(found, "assignment", for_update=for_update)

    def add_assignment(self, assignment: Assignment, now: datetime) -> None:
        self.assignments[assignment.id] = stored(assignment)

    def save_assignment(self, assignment: Assignment, now: datetime) -> None:
        assert assignment.id in self.assignments
        self.assignments[assignment.id] = stored(assignment)

    # grants

    def grant(self, grant_id: str, *, for_update: bool = False) -> Grant | None:
        return self._load(self.grants.get(grant_id), "grant", for_update=for_update)

    def applicant_of(self, grant: Grant) -> str | None:
        return self.applicant_id

    def add_grant(self, grant: Grant, now: datetime) -> None:
        self.grants[grant.id] = stored(grant)

    def save_grant(self, grant: Grant, now: datetime) -> None:
        assert grant.id in self.grants
        self.grants[grant.id] = stored(grant)

    def add_result(self, grant: Grant, result: Result) -> None:
        self.results.append((grant.id, result))

    def add_breach(self, grant: Grant, breach: Breach, now: datetime) -> None:
        self.breaches.append((grant.id, breach))
