"""What ipshare consumes: results registered on grants become assets owned by the grant's
institution (Law 93/2025/QH15 Art. 25(2): no assignment procedure, no repayment).

The inbox makes redelivery a no-op, and ``assets.source_result_id`` is unique besides.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from functools import partial

from cloudevents.core.v1.event import CloudEvent
from fastapi.encoders import jsonable_encoder
from sqlmodel import Session

from ipshare.domain.assets import AssetKind, Author, validate_authors
from ipshare.events import GRANTS_TOPIC, RESULT_REGISTERED
from ipshare.store import add_asset
from servicekit import audit, cloudevent, outbox
from servicekit.clock import Clock, SystemClock
from servicekit.kit import ConsumerSpec

CONSUMER = "ipshare.assets-from-results"
SYSTEM = audit.Actor(id=f"system:{CONSUMER}", role=audit.SYSTEM_ROLE)


def asset_from_result(session: Session, event: CloudEvent, *,
                      clock: Clock | None = None) -> None:
    data = event.get_data()
    if not isinstance(data, dict):
        raise ValueError("result.registered without a JSON object payload")
    authors = [Author(str(a["researcher_id"]), str(a["name"]), int(a["contribution_bp"]))
               for a in data["authors"]]
    kind = AssetKind(data["kind"])  # an unknown kind is dead-lettered, never emitted
    validate_authors(authors)
    now = (clock or SystemClock()).now()
    asset_id = str(uuid.uuid4())
    registered = add_asset(
        session, asset_id=asset_id, institution_id=str(data["institution_id"]),
        kind=kind.value, title=str(data["title"]), authors=authors,
        source_grant_id=str(data["grant_id"]), source_result_id=str(data["result_id"]),
        registered_by=SYSTEM.id, now=now)
    audit.append(session, aggregate_type="asset", aggregate_id=asset_id, actor=SYSTEM,
                 action="register", at=now, to_status="registered", new=True,
                 data={"from_event": event.get_id(), "grant_id": data["grant_id"]})
    out = cloudevent.build(service="ipshare",
                           type_=cloudevent.event_type("ipshare", "asset.registered"),
                           subject=asset_id, data=jsonable_encoder(asdict(registered)),
                           time=now, traceparent=str(event.get_extension("traceparent") or "")
                           or None)
    outbox.stage(session, out, topic="ipshare.events.v1", now=now)


def consumer_specs(clock: Clock | None = None) -> list[ConsumerSpec]:
    """What ipshare consumes; ``clock`` stamps the assets (the service's own clock)."""
    return [ConsumerSpec(name=CONSUMER, topics=[GRANTS_TOPIC], handlers={
        RESULT_REGISTERED: partial(asset_from_result, clock=clock or SystemClock())})]
