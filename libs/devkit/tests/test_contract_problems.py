"""The event contract check the end-to-end tests run on every emitted event names each
way an event can be off the contract, and passes one that is on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devkit.testing import AsyncApiMessages, contract_problems, repo_asyncapi
from servicekit import cloudevent

TOPIC = "ipshare.events.v1"
TRACEPARENT = "00-5cf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def messages() -> AsyncApiMessages:
    return AsyncApiMessages(repo_asyncapi())


def posted(**change) -> dict:
    data = {"distribution_id": "d-1", "agreement_id": "a-1", "asset_id": "s-1",
            "institution_id": "HUST", "source_grant_id": None, "reference": "INV-1",
            "period": "2026-Q4", "gross_vnd": 1000, "costs_vnd": 0, "basis_vnd": 1000,
            "researcher_pool_vnd": 300, "institution_vnd": 700,
            "policy": {"researcher_share_bp": 3000, "basis": "gross", "version": 1},
            "lines": [{"payee_id": "r-1", "payee_kind": "researcher", "amount_vnd": 300},
                      {"payee_id": "HUST", "payee_kind": "institution", "amount_vnd": 700}],
            "in_kind": False, "posted_at": "2026-11-23T02:00:00+00:00"}
    data.update(change)
    return data


def encoded(data: dict, *, service: str = "ipshare", subject: str = "d-1",
            type_: str = "vn.gov.most.ipshare.distribution.posted.v1") -> bytes:
    return cloudevent.encode(cloudevent.build(
        service=service, type_=type_, subject=subject, data=data,
        time=datetime(2026, 11, 23, 2, tzinfo=UTC), traceparent=TRACEPARENT))


def test_an_event_on_the_contract_passes(messages):
    assert contract_problems(messages, TOPIC, b"d-1", encoded(posted()),
                             {"traceparent": TRACEPARENT.encode()}) == []


@pytest.mark.parametrize(("name", "value", "key", "headers", "named"), [
    ("not a CloudEvent", b'{"hello": 1}', b"d-1", {}, "CloudEvents SDK"),
    ("a field missing", encoded(posted(lines=[])), b"d-1", {}, "message schema"),
    ("an undocumented type", encoded(posted(), type_="vn.gov.most.ipshare.x.y.v1"),
     b"d-1", {}, "not in docs/asyncapi.yaml"),
    ("another service's", encoded(posted(), service="grants"), b"d-1", {}, "from /grants"),
    ("keyed by something else", encoded(posted()), b"k", {}, "not the subject"),
    ("a traceparent header of another trace", encoded(posted()), b"d-1",
     {"traceparent": b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"}, "traceparent"),
])
def test_each_way_off_the_contract_is_named(messages, name, value, key, headers, named):
    found = contract_problems(messages, TOPIC, key, value, headers)
    assert any(named in problem for problem in found), (name, found)


def test_a_float_amount_is_off_the_contract(messages):
    event = json.loads(encoded(posted()))
    event["data"]["gross_vnd"] = 1000.0 + 0.5
    assert contract_problems(messages, TOPIC, b"d-1", json.dumps(event).encode(), {})
