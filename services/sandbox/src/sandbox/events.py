"""Events the sandbox service publishes (topic ``sandbox.events.v1``).

Domain events are plain dataclasses recorded by the aggregates; :func:`publish` turns
each into an outbox row with its contract name (``vn.gov.most.sandbox.<name>.v1``),
keyed by its aggregate's id.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sandbox.domain.applications import (
    ApplicationDecided,
    ApplicationDecisionOverdue,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    ChangesRequested,
)
from sandbox.domain.pilots import (
    IncidentReported,
    PilotAdjusted,
    PilotBreachDetected,
    PilotExited,
    PilotExpired,
    PilotExtended,
    PilotReportFiled,
    PilotReportOverdue,
    PilotResumed,
    PilotStarted,
    PilotSuspended,
    PilotTerminated,
)
from servicekit.unit_of_work import UnitOfWork

# Domain event class → (contract name, aggregate id attribute).
NAMES: dict[type, tuple[str, str]] = {
    ApplicationSubmitted: ("application.submitted", "application_id"),
    ChangesRequested: ("application.changes_requested", "application_id"),
    ApplicationWithdrawn: ("application.withdrawn", "application_id"),
    ApplicationDecided: ("application.decided", "application_id"),
    ApplicationDecisionOverdue: ("application.decision_overdue", "application_id"),
    PilotStarted: ("pilot.started", "pilot_id"),
    PilotReportFiled: ("pilot.report_filed", "pilot_id"),
    PilotBreachDetected: ("pilot.breach_detected", "pilot_id"),
    PilotReportOverdue: ("pilot.report_overdue", "pilot_id"),
    # Incidents belong to their pilot: keyed by it, in order with its suspension.
    IncidentReported: ("incident.reported", "pilot_id"),
    PilotSuspended: ("pilot.suspended", "pilot_id"),
    PilotResumed: ("pilot.resumed", "pilot_id"),
    PilotExtended: ("pilot.extended", "pilot_id"),
    PilotAdjusted: ("pilot.adjusted", "pilot_id"),
    PilotExpired: ("pilot.expired", "pilot_id"),
    PilotTerminated: ("pilot.terminated", "pilot_id"),
    PilotExited: ("pilot.exited", "pilot_id"),
}


def publish(uow: UnitOfWork, events: list[Any]) -> None:
    for event in events:
        name, key_attr = NAMES[type(event)]
        uow.emit(name, getattr(event, key_attr), asdict(event))
    events.clear()
