"""Every event the ipshare service emits matches its message in ``docs/asyncapi.yaml``.

The ipshare workflows run over HTTP on PostgreSQL (assets, policies, agreements, income,
reversals, terminations), and a grants ``result.registered`` event goes through the
consumer; then every row of the outbox (what the relay will publish, byte for byte) is
validated against the AsyncAPI document, which is exact for ipshare (every field
required, ``additionalProperties: false``). A second test checks that the document
really refuses events that drift from it.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from jsonschema import ValidationError
from sqlalchemy import create_engine, func, select

from devkit.testing import AsyncApiMessages, outbox_rows, repo_asyncapi
from ipshare.consumers import asset_from_result
from ipshare.events import NAMES, RESULT_REGISTERED
from servicekit import cloudevent
from servicekit.cloudevent import event_type
from servicekit.outbox import OUTBOX

pytestmark = pytest.mark.postgres

INST = "HUST"
TOPIC = "ipshare.events.v1"
# Every event ipshare emits: the domain events of events.NAMES.
IPSHARE_NAMES = {name for name, _key in NAMES.values()}
IPSHARE_TYPES = {event_type("ipshare", name) for name in IPSHARE_NAMES}

TWO_AUTHORS = [{"researcher_id": "r-a", "name": "A", "contribution_bp": 7000},
               {"researcher_id": "r-b", "name": "B", "contribution_bp": 3000}]
THREE_AUTHORS = [{"researcher_id": "r-c", "name": "C", "contribution_bp": 3334},
                 {"researcher_id": "r-d", "name": "D", "contribution_bp": 3333},
                 {"researcher_id": "r-e", "name": "E", "contribution_bp": 3333}]


ASYNCAPI = repo_asyncapi()


@pytest.fixture(scope="module")
def messages() -> AsyncApiMessages:
    return AsyncApiMessages(ASYNCAPI)


def validate(messages: AsyncApiMessages, event: dict[str, Any]) -> None:
    """The repo's validation (formats included)."""
    messages.validate(event)


def last_outbox_id(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(OUTBOX.c.id), 0)))
                       .scalar_one())
    finally:
        engine.dispose()


class World:
    """The cast and the HTTP calls of the ipshare workflows."""

    def __init__(self, client, tokens, clock):
        self.c = client
        self.clock = clock
        self.office = tokens.headers("off-1", "institution", org=INST)
        self.finance = tokens.headers("fin-1", "finance", org="MOF")

    def ok(self, method: str, path: str, headers: dict, status: int = 200,
           **kwargs: Any) -> dict:
        r = self.c.request(method, path, headers=headers, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def asset(self, authors: list[dict], kind: str = "patent") -> dict:
        return self.ok("POST", "/v1/assets", self.office, 201, json={
            "kind": kind, "title": "Salinity sensor", "authors": authors,
            "source_grant_id": None})

    def policy(self, share: int, basis: str) -> dict:
        return self.ok("PUT", f"/v1/institutions/{INST}/policy", self.office,
                       json={"researcher_share_bp": share, "basis": basis})

    def agreement(self, asset: dict, kind: str) -> dict:
        return self.ok("POST", f"/v1/assets/{asset['id']}/agreements", self.office, 201,
                       json={"kind": kind, "counterparty": "Viettel",
                             "signed_on": "2026-11-01", "terms": "5% royalty"})

    def income(self, agreement: dict, gross: int, costs: int = 0,
               who: dict | None = None) -> dict:
        self.clock.advance(timedelta(minutes=1))
        return self.ok("POST", f"/v1/agreements/{agreement['id']}/income",
                       who or self.office, 201, json={
                           "period": "2026-Q4", "gross_vnd": gross, "costs_vnd": costs,
                           "reference": f"INV-{uuid.uuid4().hex[:8]}"})

    def reverse(self, distribution: dict, reason: str) -> dict:
        self.clock.advance(timedelta(minutes=1))
        return self.ok("POST", f"/v1/distributions/{distribution['id']}/reverse",
                       self.finance, json={"reason": reason})

    def terminate(self, agreement: dict, reason: str) -> dict:
        return self.ok("POST", f"/v1/agreements/{agreement['id']}/terminate", self.office,
                       json={"reason": reason})

    def result_registered(self, messages: AsyncApiMessages, result_id: str,
                          grant_id: str) -> None:
        """A grants ``result.registered`` CloudEvent, applied by the consumer's handler
        in one transaction on the app's engine (as the Kafka consumer would)."""
        event = cloudevent.build(
            service="grants", type_=RESULT_REGISTERED, subject=grant_id,
            time=self.clock.now(), data={
                "result_id": result_id, "grant_id": grant_id, "call_id": "call-1",
                "agency_id": "MOST", "institution_id": INST, "kind": "software",
                "title": "Yield model", "authors": TWO_AUTHORS,
                "registered_at": "2026-11-23T09:00:00Z"})
        # What we feed in is itself a valid grants event.
        validate(messages, json.loads(cloudevent.encode(event)))
        with self.c.app.state.kit.sessions() as session, session.begin():
            asset_from_result(session, event)


@pytest.fixture
def w(client, tokens, clock) -> World:
    return World(client, tokens, clock)


def run_the_workflows(w: World, messages: AsyncApiMessages) -> dict[str, Any]:
    """Every command that emits an event, at least once each; returns what was made."""
    # Assets: two direct (never from a grant), one from a grant's result.
    a = w.asset(TWO_AUTHORS)
    b = w.asset(THREE_AUTHORS, kind="dataset")
    result_id = f"res-{uuid.uuid4().hex[:8]}"
    w.result_registered(messages, result_id, grant_id=f"g-{uuid.uuid4().hex[:8]}")

    licence = w.agreement(a, "licence")
    spin_off = w.agreement(a, "spin_off")
    licence_b = w.agreement(b, "licence")

    # No policy yet: the statutory default (version 0, 30 % of net).
    statutory = w.income(licence, 1_000_000_007)
    assert statutory["policy"] == {"researcher_share_bp": 3000, "basis": "net", "version": 0}

    assert w.policy(4000, "gross")["version"] == 1
    gross_basis = w.income(licence, 200_000_001, costs=50_000_000)
    assert gross_basis["basis_vnd"] == 200_000_001
    assert w.policy(5000, "net")["version"] == 2

    # Net basis with declared costs: the institution bears them.
    net = w.income(licence, 500_000_000, costs=120_000_003)
    assert (net["basis_vnd"], net["researcher_pool_vnd"]) == (379_999_997, 189_999_999)
    # A spin-off: in kind, the basis is the contributed value.
    in_kind = w.income(spin_off, 300_000_001)
    assert in_kind["in_kind"] is True
    # A 1-đồng income on three authors: one line of 1 đồng, two of 0, the institution 0.
    tiny = w.income(licence_b, 1)
    assert sorted(ln["amount_vnd"] for ln in tiny["lines"]) == [0, 0, 0, 1]

    w.reverse(net, "invoice cancelled by the licensee")
    w.reverse(tiny, "posted in error")
    w.terminate(licence, "the licensee went bankrupt")
    return {"a": a, "b": b, "result_id": result_id, "licence": licence,
            "spin_off": spin_off, "statutory": statutory, "net": net, "tiny": tiny,
            "in_kind": in_kind, "gross_basis": gross_basis}


def test_every_event_ipshare_emits_matches_its_asyncapi_message(w, ipshare_db, messages):
    before = last_outbox_id(ipshare_db)
    made = run_the_workflows(w, messages)
    rows = outbox_rows(ipshare_db, after=before)
    assert rows, "the workflows emitted nothing"

    failures: list[str] = []
    events: list[dict[str, Any]] = []
    for row in rows:
        event = json.loads(row["value"])
        events.append(event)
        # The outbox row agrees with the event it carries.
        assert row["event_type"] == event["type"]
        assert row["key"] == event["subject"]
        assert row["topic"] == TOPIC
        assert row["headers"].get("content-type") == "application/cloudevents+json"
        try:
            validate(messages, event)
        except KeyError:
            failures.append(f"{event['type']}: no message of docs/asyncapi.yaml has this type")
        except ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            failures.append(f"{event['type']} at /{path}: {exc.message}")
    assert not failures, "events that do not match docs/asyncapi.yaml:\n" + "\n".join(failures)

    emitted = {e["type"] for e in events}
    assert not emitted - IPSHARE_TYPES, f"unexpected types: {emitted - IPSHARE_TYPES}"
    assert not IPSHARE_TYPES - emitted, f"never emitted: {IPSHARE_TYPES - emitted}"
    documented = {t for t in messages.validators if t.startswith("vn.gov.most.ipshare.")}
    assert documented == IPSHARE_TYPES, "docs/asyncapi.yaml and the code list other events"

    def data_of(name: str) -> list[dict[str, Any]]:
        return [e["data"] for e in events if e["type"] == event_type("ipshare", name)]

    # The workflows covered the variants the schemas distinguish.
    assets = data_of("asset.registered")
    assert len(assets) == 3
    by_result = {d["source_result_id"]: d for d in assets}
    assert by_result[made["result_id"]]["source_grant_id"] is not None
    assert [d["source_grant_id"] for d in assets if d["source_result_id"] is None
            ] == [None, None]
    assert {d["kind"] for d in data_of("agreement.signed")} == {"licence", "spin_off"}
    assert [(d["version"], d["researcher_share_bp"], d["basis"])
            for d in data_of("policy.changed")] == [(1, 4000, "gross"), (2, 5000, "net")]
    assert [d["agreement_id"] for d in data_of("agreement.terminated")] == [
        made["licence"]["id"]]

    posted = {d["distribution_id"]: d for d in data_of("distribution.posted")}
    reversed_ = {d["distribution_id"]: d for d in data_of("distribution.reversed")}
    assert {d["policy"]["version"] for d in posted.values()} == {0, 1, 2}
    assert {d["in_kind"] for d in posted.values()} == {True, False}
    assert 0 in {ln["amount_vnd"] for d in posted.values() for ln in d["lines"]}
    assert set(reversed_) == {made["net"]["id"], made["tiny"]["id"]}

    # The sums the descriptions promise.
    for d in posted.values():
        researchers = [ln for ln in d["lines"] if ln["payee_kind"] == "researcher"]
        assert sum(ln["amount_vnd"] for ln in researchers) == d["researcher_pool_vnd"]
        assert d["lines"][-1] == {"payee_id": d["institution_id"],
                                  "payee_kind": "institution",
                                  "amount_vnd": d["institution_vnd"]}
        assert sum(ln["amount_vnd"] for ln in d["lines"]) == d["gross_vnd"]
        assert [ln["payee_id"] for ln in researchers] == sorted(
            ln["payee_id"] for ln in researchers)

    # A reversal is the posted event negated, plus who, why and when.
    money = ("gross_vnd", "costs_vnd", "basis_vnd", "researcher_pool_vnd", "institution_vnd")
    for dist_id, rev in reversed_.items():
        original = posted[dist_id]
        extra = {"reversal_id", "reason", "reversed_at"}
        assert set(rev) == set(original) | extra
        for key in set(original) - set(money) - {"lines"}:
            assert rev[key] == original[key], key
        assert all(rev[k] == -original[k] for k in money)
        assert rev["lines"] == [{**ln, "amount_vnd": -ln["amount_vnd"]}
                                for ln in original["lines"]]
    assert 0 in {ln["amount_vnd"] for ln in reversed_[made["tiny"]["id"]]["lines"]}

    # Keys: each event is keyed by its aggregate.
    for e in events:
        name = e["type"].removeprefix("vn.gov.most.ipshare.").removesuffix(".v1")
        key = {"asset.registered": "asset_id", "agreement.signed": "agreement_id",
               "agreement.terminated": "agreement_id", "policy.changed": "institution_id",
               "distribution.posted": "distribution_id",
               "distribution.reversed": "distribution_id"}[name]
        assert e["subject"] == e["data"][key], name


Tamper = Callable[[dict[str, Any]], None]


def _first_line(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def pick(e: dict[str, Any]) -> dict[str, Any]:
        return next(ln for ln in e["data"]["lines"] if ln["payee_kind"] == kind)
    return pick


researcher_line = _first_line("researcher")
institution_line = _first_line("institution")

# (event name, what is changed, the change): each must make the event invalid.
TAMPERINGS: list[tuple[str, str, Tamper]] = [
    ("distribution.posted", "an extra data field",
     lambda e: e["data"].update(iban="VN00 0000")),
    ("distribution.posted", "gross_vnd as a string",
     lambda e: e["data"].update(gross_vnd=str(e["data"]["gross_vnd"]))),
    ("distribution.posted", "a line amount as a string",
     lambda e: researcher_line(e).update(amount_vnd=str(researcher_line(e)["amount_vnd"]))),
    ("distribution.posted", "a line amount as a float",
     lambda e: researcher_line(e).update(amount_vnd=researcher_line(e)["amount_vnd"] + 0.5)),
    ("distribution.posted", "a negative posted line",
     lambda e: institution_line(e).update(amount_vnd=-1)),
    ("distribution.posted", "a zero gross", lambda e: e["data"].update(gross_vnd=0)),
    ("distribution.posted", "negative costs", lambda e: e["data"].update(costs_vnd=-1)),
    ("distribution.posted", "an extra field on a line",
     lambda e: researcher_line(e).update(contribution_bp=7000)),
    ("distribution.posted", "an unknown payee kind",
     lambda e: researcher_line(e).update(payee_kind="agency")),
    ("distribution.posted", "no institution line",
     lambda e: e["data"].update(lines=[ln for ln in e["data"]["lines"]
                                       if ln["payee_kind"] == "researcher"])),
    ("distribution.posted", "a missing posted_at", lambda e: e["data"].pop("posted_at")),
    ("distribution.posted", "posted_at not RFC 3339",
     lambda e: e["data"].update(posted_at="23/11/2026 09:00")),
    ("distribution.posted", "a share under the legal floor",
     lambda e: e["data"]["policy"].update(researcher_share_bp=2999)),
    ("distribution.posted", "a negative policy version",
     lambda e: e["data"]["policy"].update(version=-1)),
    ("distribution.posted", "an extra field on the policy",
     lambda e: e["data"]["policy"].update(changed_by="off-1")),
    ("distribution.posted", "costs on an in-kind contribution",
     lambda e: e["data"].update(in_kind=True, costs_vnd=1)),
    ("distribution.posted", "an empty reference", lambda e: e["data"].update(reference="")),
    ("distribution.posted", "a null data", lambda e: e.update(data=None)),
    ("distribution.reversed", "a positive reversing line",
     lambda e: institution_line(e).update(amount_vnd=1)),
    ("distribution.reversed", "a positive gross", lambda e: e["data"].update(
        gross_vnd=-e["data"]["gross_vnd"])),
    ("distribution.reversed", "a zero gross", lambda e: e["data"].update(gross_vnd=0)),
    ("distribution.reversed", "a missing reversal_id",
     lambda e: e["data"].pop("reversal_id")),
    ("distribution.reversed", "a missing reason", lambda e: e["data"].pop("reason")),
    ("distribution.reversed", "an extra field on a line",
     lambda e: researcher_line(e).update(note="x")),
    ("asset.registered", "an unknown kind", lambda e: e["data"].update(kind="trademark")),
    ("asset.registered", "no authors", lambda e: e["data"].update(authors=[])),
    ("asset.registered", "an author with no share",
     lambda e: e["data"]["authors"][0].update(contribution_bp=0)),
    ("asset.registered", "an extra field on an author",
     lambda e: e["data"]["authors"][0].update(email="a@b.c")),
    ("asset.registered", "a result without its grant",
     lambda e: e["data"].update(source_result_id="res-1", source_grant_id=None)),
    ("asset.registered", "a missing source_result_id",
     lambda e: e["data"].pop("source_result_id")),
    ("asset.registered", "an empty source_grant_id",
     lambda e: e["data"].update(source_grant_id="")),
    ("agreement.signed", "an unknown kind", lambda e: e["data"].update(kind="franchise")),
    ("agreement.signed", "signed_on with a time",
     lambda e: e["data"].update(signed_on="2026-11-01T00:00:00Z")),
    ("agreement.signed", "an extra field", lambda e: e["data"].update(terms="5%")),
    ("agreement.terminated", "an empty reason", lambda e: e["data"].update(reason="")),
    ("agreement.terminated", "an extra field", lambda e: e["data"].update(status="x")),
    ("agreement.terminated", "a missing terminated_at",
     lambda e: e["data"].pop("terminated_at")),
    ("policy.changed", "a share under the legal floor",
     lambda e: e["data"].update(researcher_share_bp=2999)),
    ("policy.changed", "a share over 100 %",
     lambda e: e["data"].update(researcher_share_bp=10_001)),
    ("policy.changed", "the statutory version 0", lambda e: e["data"].update(version=0)),
    ("policy.changed", "an unknown basis", lambda e: e["data"].update(basis="mixed")),
    ("policy.changed", "the wrong source", lambda e: e.update(source="/grants")),
    ("policy.changed", "a missing envelope id", lambda e: e.pop("id")),
]


def test_events_that_drift_from_the_document_are_refused(w, ipshare_db, messages):
    before = last_outbox_id(ipshare_db)
    asset = w.asset(TWO_AUTHORS)
    w.policy(3500, "net")
    licence = w.agreement(asset, "licence")
    dist = w.income(licence, 10_000_001, costs=1_000)
    w.reverse(dist, "duplicate invoice")
    w.terminate(licence, "ended by mutual consent")
    events: dict[str, dict[str, Any]] = {}
    for row in outbox_rows(ipshare_db, after=before):
        event = json.loads(row["value"])
        events.setdefault(event["type"], event)
    assert set(events) == IPSHARE_TYPES

    for name, what, tamper in TAMPERINGS:
        original = events[event_type("ipshare", name)]
        validate(messages, original)  # the untouched event is valid
        tampered = copy.deepcopy(original)
        tamper(tampered)
        with pytest.raises(ValidationError):
            validate(messages, tampered)
            pytest.fail(f"{name} with {what} passed validation")

    # Version 0 is the statutory default only: 3000 bp on the net basis.
    posted = copy.deepcopy(events[event_type("ipshare", "distribution.posted")])
    posted["data"]["policy"] = {"researcher_share_bp": 3000, "basis": "net", "version": 0}
    validate(messages, posted)
    posted["data"]["policy"]["basis"] = "gross"
    with pytest.raises(ValidationError):
        validate(messages, posted)

    unknown = copy.deepcopy(events[event_type("ipshare", "agreement.terminated")])
    unknown["type"] = event_type("ipshare", "agreement.renewed")
    with pytest.raises(KeyError):
        messages.validate(unknown)
