"""What the grants service consumes: ipshare's distribution events, attributed to the
source grant for the portfolio's commercialisation income.

Events for grants this service does not know (yet) are kept, not dropped: the portfolio
joins on the grant, so they count once it is known. Reversals are stored negative, so
sums are net of reversals. The inbox makes redelivery a no-op.
"""

from __future__ import annotations

from cloudevents.core.v1.event import CloudEvent
from sqlmodel import Session

from grants.events import DISTRIBUTION_POSTED, DISTRIBUTION_REVERSED, IPSHARE_TOPIC
from grants.models import IncomeRow
from servicekit.clock import as_utc
from servicekit.kit import ConsumerSpec, Kit

CONSUMER = "grants.portfolio-income"


def record_income(session: Session, event: CloudEvent) -> None:
    """Keep a distribution's amounts for its grant, stamped with the service's clock (the
    kit's, which every session it opens carries)."""
    data = event.get_data()
    if not isinstance(data, dict):
        raise ValueError("distribution event without a JSON object payload")
    source_grant_id = data.get("source_grant_id")
    if not source_grant_id:
        return  # income from an asset not born of a grant: not portfolio income
    sign = -1 if event.get_type() == DISTRIBUTION_REVERSED else 1
    gross = abs(int(data["gross_vnd"])) * sign
    researchers = abs(int(data["researcher_pool_vnd"])) * sign
    kit: Kit = session.info["kit"]
    now = kit.clock.now()
    session.add(IncomeRow(
        event_id=event.get_id(), event_type=event.get_type(),
        distribution_id=str(data["distribution_id"]), source_grant_id=str(source_grant_id),
        gross_vnd=gross, researchers_vnd=researchers,
        occurred_at=as_utc(event.get_time()) if event.get_time() else now,
        received_at=now,
    ))


def consumer_specs() -> list[ConsumerSpec]:
    """What grants consumes."""
    return [ConsumerSpec(name=CONSUMER, topics=[IPSHARE_TOPIC],
                         handlers={DISTRIBUTION_POSTED: record_income,
                                   DISTRIBUTION_REVERSED: record_income})]
