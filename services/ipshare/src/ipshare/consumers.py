"""What ipshare consumes: results registered on grants become assets owned by the grant's
institution (Law 93/2025/QH15 Art. 25(2): no assignment procedure, no repayment).

Each event goes to the same handler as ``POST /v1/assets`` (``handlers.register_asset``),
as the system actor ``system:ipshare.assets-from-results``, in the inbox's transaction.
The inbox makes redelivery a no-op, and ``assets.source_result_id`` is unique besides.
"""

from __future__ import annotations

from cloudevents.core.v1.event import CloudEvent
from sqlmodel import Session

from ipshare import handlers
from ipshare.domain.assets import AssetKind, Author
from ipshare.events import GRANTS_TOPIC, RESULT_REGISTERED
from ipshare.repository import SqlRepository
from servicekit.kit import ConsumerSpec
from servicekit.unit_of_work import UnitOfWork

CONSUMER = "ipshare.assets-from-results"


def asset_from_result(session: Session, event: CloudEvent) -> None:
    data = event.get_data()
    if not isinstance(data, dict):
        raise ValueError("result.registered without a JSON object payload")
    authors = [Author(str(a["researcher_id"]), str(a["name"]), int(a["contribution_bp"]))
               for a in data["authors"]]
    handlers.register_asset(
        UnitOfWork.consuming(session, CONSUMER), SqlRepository(session),
        institution_id=str(data["institution_id"]),
        kind=AssetKind(data["kind"]),  # an unknown kind is dead-lettered, never emitted
        title=str(data["title"]), authors=authors, source_grant_id=str(data["grant_id"]),
        source_result_id=str(data["result_id"]),
        cause={"from_event": event.get_id(), "grant_id": data["grant_id"]})


def consumer_specs() -> list[ConsumerSpec]:
    """What ipshare consumes."""
    return [ConsumerSpec(name=CONSUMER, topics=[GRANTS_TOPIC],
                         handlers={RESULT_REGISTERED: asset_from_result})]
