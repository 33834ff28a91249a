"""Events the ipshare service publishes (topic ``ipshare.events.v1``) and consumes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ipshare.domain.assets import AgreementSigned, AgreementTerminated, AssetRegistered
from servicekit.unit_of_work import UnitOfWork

NAMES: dict[type, tuple[str, str]] = {
    AssetRegistered: ("asset.registered", "asset_id"),
    AgreementSigned: ("agreement.signed", "agreement_id"),
    AgreementTerminated: ("agreement.terminated", "agreement_id"),
}

POLICY_CHANGED = "policy.changed"
DISTRIBUTION_POSTED = "distribution.posted"
DISTRIBUTION_REVERSED = "distribution.reversed"

# Consumed: a result registered on a grant becomes an asset of the grant's institution.
RESULT_REGISTERED = "vn.gov.most.grants.result.registered.v1"
GRANTS_TOPIC = "grants.events.v1"


def publish(uow: UnitOfWork, events: list[Any]) -> None:
    for event in events:
        name, key_attr = NAMES[type(event)]
        uow.emit(name, getattr(event, key_attr), asdict(event))
    events.clear()
