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
    ApplicationSubmitted,
    ApplicationWithdrawn,
    ChangesRequested,
)
from sandbox.domain.pilots import PilotStarted
from servicekit.unit_of_work import UnitOfWork

# Domain event class → (contract name, aggregate id attribute).
NAMES: dict[type, tuple[str, str]] = {
    ApplicationSubmitted: ("application.submitted", "application_id"),
    ChangesRequested: ("application.changes_requested", "application_id"),
    ApplicationWithdrawn: ("application.withdrawn", "application_id"),
    ApplicationDecided: ("application.decided", "application_id"),
    PilotStarted: ("pilot.started", "pilot_id"),
}


def publish(uow: UnitOfWork, events: list[Any]) -> None:
    for event in events:
        name, key_attr = NAMES[type(event)]
        uow.emit(name, getattr(event, key_attr), asdict(event))
    events.clear()
