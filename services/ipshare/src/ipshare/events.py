"""Events the ipshare service publishes (topic ``ipshare.events.v1``) and consumes."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ipshare.domain.assets import (
    AgreementSigned,
    AgreementTerminated,
    AssetRegistered,
    PolicyChanged,
)
from ipshare.domain.distributions import DistributionPosted, DistributionReversed
from servicekit.unit_of_work import AbstractUnitOfWork

# Published: each domain event as ``vn.gov.most.ipshare.<name>.v1``, keyed by the id named.
NAMES: dict[type, tuple[str, str]] = {
    AssetRegistered: ("asset.registered", "asset_id"),
    AgreementSigned: ("agreement.signed", "agreement_id"),
    AgreementTerminated: ("agreement.terminated", "agreement_id"),
    PolicyChanged: ("policy.changed", "institution_id"),
    DistributionPosted: ("distribution.posted", "distribution_id"),
    DistributionReversed: ("distribution.reversed", "distribution_id"),
}

# Consumed: a result registered on a grant becomes an asset of the grant's institution.
RESULT_REGISTERED = "vn.gov.most.grants.result.registered.v1"
GRANTS_TOPIC = "grants.events.v1"


def publish(uow: AbstractUnitOfWork, events: list[Any]) -> None:
    """Stage each of ``events`` in the outbox, and clear the list. The payload is the
    event's fields as they are (plain values, dicts and lists, which the unit of work
    encodes): ``dataclasses.asdict`` deep-copies them first, which was half of the
    income handler's CPU."""
    for event in events:
        name, key_attr = NAMES[type(event)]
        uow.emit(name, getattr(event, key_attr),
                 {f.name: getattr(event, f.name) for f in fields(event)})
    events.clear()
