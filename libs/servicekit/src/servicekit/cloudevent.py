"""CloudEvents 1.0 structured JSON envelopes, through the ``cloudevents`` SDK.

Every event we publish has ``type`` ``vn.gov.most.<service>.<aggregate>.<verb>.v1``,
``source`` ``/<service>``, ``subject`` the aggregate id, a unique ``id`` (the consumers'
deduplication key) and, when a trace is active, the W3C ``traceparent`` both as an
extension attribute and as a Kafka header.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudevents.core.bindings.kafka import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

TYPE_PREFIX = "vn.gov.most"
_FORMAT = JSONFormat()


def event_type(service: str, name: str, version: int = 1) -> str:
    """``event_type("grants", "call.opened")`` → ``vn.gov.most.grants.call.opened.v1``."""
    return f"{TYPE_PREFIX}.{service}.{name}.v{version}"


def build(
    *,
    service: str,
    type_: str,
    subject: str,
    data: dict[str, Any],
    time: datetime,
    event_id: str | None = None,
    traceparent: str | None = None,
    dataschema: str | None = None,
) -> CloudEvent:
    attributes: dict[str, Any] = {
        "id": event_id or str(uuid.uuid4()),
        "source": f"/{service}",
        "type": type_,
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
    }
    if traceparent:
        attributes["traceparent"] = traceparent
    if dataschema:
        attributes["dataschema"] = dataschema
    return CloudEvent(attributes, data)


def encode(event: CloudEvent) -> bytes:
    """Structured-mode JSON bytes: what the outbox stores and Kafka carries."""
    return _FORMAT.write(event)


def decode(value: bytes) -> CloudEvent:
    """Parse structured-mode JSON; raises on anything that is not a valid v1.0 event."""
    event = _FORMAT.read(CloudEvent, value)
    if not isinstance(event, CloudEvent):
        raise ValueError("not a CloudEvents 1.0 event")
    return event


class WithHeaders:
    """A message's ``headers`` pairs, looked up by name."""

    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(frozen=True)
class Envelope(WithHeaders):
    """A message ready for a bus: topic, key, value and headers."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def to_kafka(event: CloudEvent, topic: str, key: str) -> Envelope:
    message = to_structured(event, _FORMAT, key_mapper=lambda _e: key)
    headers = dict(message.headers)
    traceparent = event.get_extension("traceparent")
    if traceparent:
        headers["traceparent"] = str(traceparent).encode()
    return Envelope(topic=topic, key=key, value=message.value, headers=tuple(headers.items()))

