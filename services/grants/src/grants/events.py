"""Events the grants service publishes (topic ``grants.events.v1``).

Domain events are plain dataclasses recorded by aggregates; :func:`publish` turns each
into an outbox row with its contract name and payload.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from grants.domain.applications import (
    ApplicationDecided,
    ApplicationEndorsed,
    ApplicationSubmitted,
    ApplicationWithdrawn,
)
from grants.domain.assignments import AssignmentCreated, AssignmentReleased
from grants.domain.calls import CallCancelled, CallClosed, CallOpened
from grants.domain.grants import (
    BreachRecorded,
    GrantAwarded,
    GrantClosed,
    ResultRegistered,
    TrancheReleased,
)
from servicekit.unit_of_work import AbstractUnitOfWork

# Domain event class → (contract name, aggregate id attribute).
NAMES: dict[type, tuple[str, str]] = {
    CallOpened: ("call.opened", "call_id"),
    CallClosed: ("call.closed", "call_id"),
    CallCancelled: ("call.cancelled", "call_id"),
    ApplicationEndorsed: ("application.endorsed", "application_id"),
    ApplicationSubmitted: ("application.submitted", "application_id"),
    ApplicationWithdrawn: ("application.withdrawn", "application_id"),
    ApplicationDecided: ("application.decided", "application_id"),
    AssignmentCreated: ("assignment.created", "assignment_id"),
    AssignmentReleased: ("assignment.released", "assignment_id"),
    # Grant, milestone, tranche and result events share the grant's key, so finance
    # sees award → releases → close in order.
    GrantAwarded: ("grant.awarded", "grant_id"),
    TrancheReleased: ("tranche.released", "grant_id"),
    ResultRegistered: ("result.registered", "grant_id"),
    BreachRecorded: ("breach.recorded", "grant_id"),
    GrantClosed: ("grant.closed", "grant_id"),
}

# What the grants service consumes (ipshare's finance events, for the portfolio).
DISTRIBUTION_POSTED = "vn.gov.most.ipshare.distribution.posted.v1"
DISTRIBUTION_REVERSED = "vn.gov.most.ipshare.distribution.reversed.v1"
IPSHARE_TOPIC = "ipshare.events.v1"


def publish(uow: AbstractUnitOfWork, events: list[Any]) -> None:
    for event in events:
        name, key_attr = NAMES[type(event)]
        uow.emit(name, getattr(event, key_attr), asdict(event))
    events.clear()
