"""Pilots: an approved application's test under conditions (domain.md §4).

approved → active (on its start date) → suspended ⇄ active → terminated / exited, and
``expired`` once its end date has passed with no exit report filed (the report can still
be filed and accepted: expired → exited). A terminated pilot ends by the termination
decision. Every pilot ever approved stays on the public register, whatever its status.

A pilot keeps the scope its firm requested (limits are never adjusted wider than it),
the limits and conditions in force, its dates, the sector's numbers it was approved
under (report frequency, incident deadline) and its formal decisions' numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sandbox.domain.applications import Application, ApplicationStatus, Scope
from sandbox.domain.dates import Period
from sandbox.domain.errors import IllegalTransition
from sandbox.domain.sectors import ReportFrequency, SectorProfile


class PilotStatus(StrEnum):
    APPROVED = "approved"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    EXITED = "exited"
    EXPIRED = "expired"


TRANSITIONS: dict[PilotStatus, frozenset[PilotStatus]] = {
    PilotStatus.APPROVED: frozenset({PilotStatus.ACTIVE, PilotStatus.TERMINATED}),
    PilotStatus.ACTIVE: frozenset({PilotStatus.SUSPENDED, PilotStatus.TERMINATED,
                                   PilotStatus.EXPIRED, PilotStatus.EXITED}),
    PilotStatus.SUSPENDED: frozenset({PilotStatus.ACTIVE, PilotStatus.TERMINATED,
                                      PilotStatus.EXPIRED, PilotStatus.EXITED}),
    PilotStatus.EXPIRED: frozenset({PilotStatus.EXITED, PilotStatus.TERMINATED}),
    PilotStatus.TERMINATED: frozenset(),
    PilotStatus.EXITED: frozenset(),
}
ENDED = (PilotStatus.TERMINATED, PilotStatus.EXITED)


class DecisionKind(StrEnum):
    """The formal decisions that carry a register number (a rejection has no pilot)."""

    APPROVAL = "approval"
    REJECTION = "rejection"
    SUSPENSION = "suspension"
    TERMINATION = "termination"
    EXIT_ACCEPTANCE = "exit_acceptance"


@dataclass(frozen=True)
class PilotDecision:
    kind: DecisionKind
    decision_no: str
    decision_year: int
    decided_on: date
    decided_by: str
    reason: str | None = None


@dataclass(frozen=True)
class PilotStarted:
    pilot_id: str
    application_id: str
    organisation_id: str
    firm_name: str
    sector: str
    supervising_agency: str
    technology: str
    conditions: list[str]
    limits: dict[str, Any]
    starts_on: date
    ends_on: date
    next_report_due_on: date
    started_at: datetime


def first_report_due(starts_on: date, frequency: ReportFrequency, grace_days: int) -> date:
    """When the first periodic report falls due: on the period containing the start."""
    return Period.containing(starts_on, frequency).due_on(grace_days)


@dataclass
class Pilot:
    id: str
    application_id: str
    owner_id: str
    organisation_id: str
    firm_name: str
    enterprise_code: str
    sector: str
    supervising_agency: str
    technology: str
    requested: Scope
    limits: Scope
    conditions: tuple[str, ...]
    starts_on: date
    ends_on: date
    original_ends_on: date
    report_frequency: ReportFrequency
    report_grace_days: int
    incident_deadline_hours: int
    status: PilotStatus = PilotStatus.APPROVED
    extensions_used: int = 0
    decisions: list[PilotDecision] = field(default_factory=list)
    started_on: date | None = None
    next_report_due_on: date | None = None
    report_overdue: bool = False
    certificate_no: str | None = None
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def approved(cls, app: Application, profile: SectorProfile) -> Pilot:
        """The pilot an approval creates (``app`` approved, with its terms and number)."""
        if app.status != ApplicationStatus.APPROVED or app.terms is None \
                or app.pilot_id is None or app.decision_no is None:
            raise IllegalTransition(f"application {app.id} is not approved")
        p, terms = app.proposal, app.terms
        return cls(
            id=app.pilot_id, application_id=app.id, owner_id=app.owner_id,
            organisation_id=app.organisation_id, firm_name=p.firm_name,
            enterprise_code=p.enterprise_code, sector=p.sector,
            supervising_agency=app.supervising_agency, technology=p.technology,
            requested=p.scope, limits=terms.limits, conditions=terms.conditions,
            starts_on=terms.starts_on, ends_on=terms.ends_on,
            original_ends_on=terms.ends_on, report_frequency=profile.report_frequency,
            report_grace_days=profile.report_grace_days,
            incident_deadline_hours=profile.incident_deadline_hours,
            decisions=[PilotDecision(DecisionKind.APPROVAL, app.decision_no,
                                     app.decision_year or terms.starts_on.year,
                                     app.decided_on or terms.starts_on,
                                     app.decided_by or "")],
        )

    @property
    def approval(self) -> PilotDecision:
        return next(d for d in self.decisions if d.kind == DecisionKind.APPROVAL)

    @property
    def decision_no(self) -> str:
        """The approval's number."""
        return self.approval.decision_no

    @property
    def decision_year(self) -> int:
        return self.approval.decision_year

    def move_to(self, status: PilotStatus) -> PilotStatus:
        """Change status along :data:`TRANSITIONS`; returns the status it left."""
        before = self.status
        if status not in TRANSITIONS[before]:
            raise IllegalTransition(f"pilot is {before}; it cannot become {status}")
        self.status = status
        return before

    def start(self, today: date, now: datetime) -> None:
        """Start an approved pilot on (or after) its start date; its first report falls
        due on the period containing the start."""
        if self.status != PilotStatus.APPROVED:
            raise IllegalTransition(f"pilot is {self.status}; only an approved pilot starts")
        if today < self.starts_on:
            raise IllegalTransition(f"pilot starts on {self.starts_on}, not before")
        self.move_to(PilotStatus.ACTIVE)
        self.started_on = today
        self.next_report_due_on = first_report_due(self.starts_on, self.report_frequency,
                                                   self.report_grace_days)
        self.events.append(PilotStarted(
            pilot_id=self.id, application_id=self.application_id,
            organisation_id=self.organisation_id, firm_name=self.firm_name,
            sector=self.sector, supervising_agency=self.supervising_agency,
            technology=self.technology, conditions=list(self.conditions),
            limits=self.limits.as_dict(), starts_on=self.starts_on, ends_on=self.ends_on,
            next_report_due_on=self.next_report_due_on, started_at=now))
