"""Events the grants service publishes (topic ``grants.events.v1``).

Domain events are plain dataclasses recorded by aggregates; :func:`publish` turns each
into an outbox row with its contract name and payload.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from grants.domain.calls import CallClosed, CallOpened
from servicekit.unit_of_work import UnitOfWork

# Domain event class → (contract name, aggregate id attribute).
NAMES: dict[type, tuple[str, str]] = {
    CallOpened: ("call.opened", "call_id"),
    CallClosed: ("call.closed", "call_id"),
}


def publish(uow: UnitOfWork, events: list[Any]) -> None:
    for event in events:
        name, key_attr = NAMES[type(event)]
        uow.emit(name, getattr(event, key_attr), asdict(event))
    events.clear()
