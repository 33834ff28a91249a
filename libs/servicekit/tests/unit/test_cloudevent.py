from __future__ import annotations

from datetime import UTC, datetime

import pytest

from servicekit import cloudevent

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def test_event_types_follow_the_contract_pattern():
    assert cloudevent.event_type("ipshare", "distribution.posted") == (
        "vn.gov.most.ipshare.distribution.posted.v1")


def test_an_event_survives_the_structured_json_round_trip():
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = cloudevent.build(service="grants", type_="vn.gov.most.grants.call.opened.v1",
                             subject="c-1", data={"budget_vnd": 10**12}, time=NOW,
                             traceparent=tp)
    back = cloudevent.decode(cloudevent.encode(event))
    assert back.get_id() == event.get_id()
    assert back.get_source() == "/grants"
    assert back.get_time() == NOW
    assert back.get_data() == {"budget_vnd": 10**12}
    assert back.get_extension("traceparent") == tp


def test_kafka_envelope_keys_by_aggregate_and_carries_traceparent_header():
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = cloudevent.build(service="grants", type_="t", subject="c-1", data={}, time=NOW,
                             traceparent=tp)
    envelope = cloudevent.to_kafka(event, "grants.events.v1", "c-1")
    assert envelope.key == "c-1"
    assert envelope.header("traceparent") == tp.encode()
    assert envelope.header("content-type") == b"application/cloudevents+json"


@pytest.mark.parametrize("raw", [b"{not json", b'{"type": "x"}', b"[]"])
def test_decoding_refuses_what_is_not_a_cloudevent(raw):
    with pytest.raises(Exception):  # noqa: B017 - any parse or validation error will do
        cloudevent.decode(raw)
