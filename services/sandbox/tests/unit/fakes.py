"""In-memory stand-ins for the unit of work and the repository, for handler tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from devkit.fakes import stored
from sandbox.domain.applications import Application
from sandbox.domain.pilots import Pilot
from sandbox.domain.supervision import Incident, Report
from sandbox.repository import DecisionRecord
from servicekit.clock import business_date
from servicekit.decisions import DecisionNumber


@dataclass
class Recorded:
    aggregate_type: str
    aggregate_id: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    data: dict[str, Any] | None


@dataclass
class FakeUnitOfWork:
    """Records audit entries and events; numbers decisions per register and year."""

    now: datetime
    audit: list[Recorded] = field(default_factory=list)
    events: list[tuple[str, str, Any]] = field(default_factory=list)
    registers: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def today(self) -> date:
        return business_date(self.now)

    def record(self, aggregate_type: str, aggregate_id: str, action: str, *,
               from_status: str | None = None, to_status: str | None = None,
               reason: str | None = None, data: dict[str, Any] | None = None,
               new: bool = False) -> None:
        self.audit.append(Recorded(aggregate_type, aggregate_id, action, from_status,
                                   to_status, reason, data))

    def emit(self, name: str, subject: str, data: Any) -> str:
        self.events.append((name, subject, data))
        return f"event-{len(self.events)}"

    def take_decision_number(self, register: str) -> DecisionNumber:
        key = (register, self.today.year)
        self.registers[key] = self.registers.get(key, 0) + 1
        return DecisionNumber(self.registers[key], register, self.today.year)

    def event_names(self) -> list[str]:
        return [name for name, _, _ in self.events]


class FakeRepository:
    """Keeps copies, so that only what a handler saves is kept (like a rollback)."""

    def __init__(self) -> None:
        self.applications: dict[str, Application] = {}
        self.pilots: dict[str, Pilot] = {}
        self.decisions: list[DecisionRecord] = []
        self.reports: list[Report] = []
        self.incidents: list[Incident] = []

    def application(self, application_id: str, *, for_update: bool = False,
                    skip_locked: bool = False) -> Application | None:
        found = self.applications.get(application_id)
        return copy.deepcopy(found) if found else None

    def add_application(self, app: Application, now: datetime) -> None:
        self.applications[app.id] = stored(app)

    def save_application(self, app: Application, now: datetime) -> None:
        assert app.id in self.applications
        self.applications[app.id] = stored(app)

    def pilot(self, pilot_id: str, *, for_update: bool = False,
              skip_locked: bool = False) -> Pilot | None:
        found = self.pilots.get(pilot_id)
        return copy.deepcopy(found) if found else None

    def add_pilot(self, pilot: Pilot, today: date, now: datetime) -> None:
        self.pilots[pilot.id] = stored(pilot)

    def save_pilot(self, pilot: Pilot, now: datetime) -> None:
        assert pilot.id in self.pilots
        self.pilots[pilot.id] = stored(pilot)

    def add_decision(self, decision: DecisionRecord) -> None:
        self.decisions.append(decision)

    def add_report(self, report: Report) -> None:
        self.reports.append(report)

    def add_incident(self, incident: Incident) -> None:
        self.incidents.append(incident)
