"""Every event the grants service emits matches its message in ``docs/asyncapi.yaml``.

The whole lifecycle runs over HTTP on PostgreSQL; then every row of the outbox (what the
relay will publish, byte for byte) is validated against the AsyncAPI document, which
is exact for grants (every field required, ``additionalProperties: false``). A second
test checks that the document really refuses events that drift from it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import ValidationError

from devkit.testing import AsyncApiMessages, outbox_rows, repo_asyncapi
from grants.events import NAMES
from servicekit.cloudevent import event_type

pytestmark = pytest.mark.postgres

AGENCY = "MOST"
INSTITUTION = "HUST"
TOPIC = "grants.events.v1"
GRANTS_TYPES = {event_type("grants", name) for name, _key in NAMES.values()}


ASYNCAPI = repo_asyncapi()


@pytest.fixture(scope="module")
def messages() -> AsyncApiMessages:
    return AsyncApiMessages(ASYNCAPI)


def validate(messages: AsyncApiMessages, event: dict[str, Any]) -> None:
    """The repo's validation (formats included)."""
    messages.validate(event)


class World:
    """The cast and the HTTP calls of the lifecycle (after test_lifecycle_api.World)."""

    def __init__(self, client, tokens):
        self.c = client
        self.pm = tokens.headers("pm-1", "program_manager", org=AGENCY)
        self.lead = tokens.headers("r-lead", "researcher", org=INSTITUTION)
        self.member = tokens.headers("r-member", "researcher", org=INSTITUTION)
        self.rev1 = tokens.headers("rev-1", "reviewer", org="VAST")
        self.rev2 = tokens.headers("rev-2", "reviewer", org="NAFOSTED")
        self.office = tokens.headers("off-1", "institution", org=INSTITUTION)
        self.tokens = tokens

    def reviewer(self, assignment: dict) -> dict:
        return self.tokens.headers(assignment["reviewer_id"], "reviewer",
                                   org=assignment["reviewer_org"])

    def ok(self, method: str, path: str, headers: dict, status: int = 200,
           **kwargs: Any) -> dict:
        r = self.c.request(method, path, headers=headers, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def open_call(self, budget=6_000_000_000, max_award=1_000_000_001, **terms: Any) -> dict:
        call = self.ok("POST", "/v1/calls", self.pm, 201, json={
            "title": "Smart agriculture 2027", "description": "Lump-sum, risk-tolerant",
            "budget_vnd": budget, "max_award_vnd": max_award,
            "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z",
            "min_reviews": 2, **terms})
        self.ok("POST", f"/v1/calls/{call['id']}/open", self.pm)
        return call

    def reviewed(self, call_id: str, requested=1_000_000_001) -> dict:
        app = self.drafted(call_id, requested)
        self.ok("POST", f"/v1/applications/{app['id']}/submit", self.lead)
        for reviewer in (self.rev1, self.rev2):
            self.ok("POST", f"/v1/applications/{app['id']}/reviews", reviewer, 201, json={
                "scores": {"novelty": 5, "feasibility": 4}, "recommendation": "fund",
                "comment": "solid", "conflict_of_interest": False})
        return app

    def drafted(self, call_id: str, requested=1_000_000_001) -> dict:
        return self.ok("POST", "/v1/applications", self.lead, 201, json={
            "call_id": call_id, "title": "Rice yield forecasting", "abstract": "ML",
            "institution_id": INSTITUTION, "requested_vnd": requested, "risk_level": "high",
            "team": [
                {"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                 "contribution_bp": 7000},
                {"researcher_id": "r-member", "name": "Member", "role": "member",
                 "contribution_bp": 3000},
            ],
            "milestones": [
                {"title": f"M{i}", "deliverable": f"D{i}", "verification": "demo",
                 "due_date": f"2027-0{i + 1}-15", "tranche_bp": bp}
                for i, bp in enumerate([3333, 3333, 3334])
            ]})

    def grant(self, call_id: str, awarded=1_000_000_001) -> dict:
        app = self.reviewed(call_id)
        decided = self.ok("POST", f"/v1/applications/{app['id']}/decision", self.pm,
                          json={"decision": "approve", "awarded_vnd": awarded})
        return self.ok("GET", f"/v1/grants/{decided['grant_id']}", self.pm)

    def milestone(self, grant: dict, seq: int, action: str, headers: dict | None = None,
                  **kwargs: Any) -> dict:
        m = grant["milestones"][seq - 1]
        return self.ok("POST", f"/v1/grants/{grant['id']}/milestones/{m['id']}/{action}",
                       headers or self.pm, **kwargs)

    def report(self, grant: dict, seq: int) -> dict:
        return self.milestone(grant, seq, "report", self.lead, json={
            "summary": "delivered", "evidence": [{"kind": "dataset", "ref": "doi:10.1/x"}]})

    def accept(self, grant: dict, seq: int) -> dict:
        return self.milestone(grant, seq, "accept")

    def close(self, grant: dict, **body: Any) -> dict:
        return self.ok("POST", f"/v1/grants/{grant['id']}/close", self.pm, json=body)


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


def run_the_whole_lifecycle(w: World) -> dict[str, str]:
    """Every command that emits an event, at least once each; returns the ids used."""
    call = w.open_call()

    # Grant 1: accept, reject and report again, reschedule, register a result.
    g1 = w.grant(call["id"])
    w.report(g1, 1)
    w.accept(g1, 1)
    w.report(g1, 2)
    w.milestone(g1, 2, "reject", json={"reason": "the dataset link is dead"})
    w.report(g1, 2)
    w.milestone(g1, 3, "reschedule", json={"due_date": "2027-06-30",
                                           "reason": "harvest failed"})
    w.ok("POST", f"/v1/grants/{g1['id']}/results", w.member, 201, json={
        "kind": "patent", "title": "Yield model",
        "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
                    {"researcher_id": "r-member", "name": "Member", "contribution_bp": 3000}]})

    # Grant 2: a breach, then terminated for breach with a refund.
    g2 = w.grant(call["id"])
    w.report(g2, 1)
    w.accept(g2, 1)
    w.ok("POST", f"/v1/grants/{g2['id']}/breaches", w.pm, 201,
         json={"kind": "misuse", "description": "bought a car"})
    closed = w.close(g2, outcome="terminated_for_breach", justification="funds misused",
                     breach="grant money spent on a private car", refund_vnd=200_000_000)
    assert (closed["refund_due_vnd"], closed["liability"]) == (200_000_000, "not_exempt")

    # Grant 3: partially completed, half of a reported milestone released at close.
    g3 = w.grant(call["id"])
    w.report(g3, 1)
    w.accept(g3, 1)
    w.report(g3, 2)
    m2 = g3["milestones"][1]
    closed = w.close(g3, outcome="partially_completed", justification="half of M2",
                     partial=[{"milestone_id": m2["id"], "completion_bp": 5000}])
    assert closed["disbursed_vnd"] == 333_300_000 + 166_650_000

    # Grant 4: failed in good faith. A 2-đồng award: its first tranche is 0 đồng, and
    # accepting that milestone still releases it (amount_vnd 0 is valid).
    g4 = w.grant(call["id"], awarded=2)
    assert [m["tranche_vnd"] for m in g4["milestones"]] == [0, 0, 2]
    w.report(g4, 1)
    w.accept(g4, 1)
    closed = w.close(g4, outcome="failed_in_good_faith",
                     justification="the approach did not work", procedures_followed=True)
    assert (closed["refund_due_vnd"], closed["liability"]) == (0, "exempt")

    # Grant 5: completed, every milestone accepted.
    g5 = w.grant(call["id"])
    for seq in (1, 2, 3):
        w.report(g5, seq)
        w.accept(g5, seq)
    closed = w.close(g5, outcome="completed", justification="all delivered")
    assert closed["liability"] == "n/a" and closed["disbursed_vnd"] == 1_000_000_001

    # A rejected application, then the call closes.
    rejected = w.reviewed(call["id"])
    w.ok("POST", f"/v1/applications/{rejected['id']}/decision", w.pm,
         json={"decision": "reject", "reason": "out of scope"})
    w.ok("POST", f"/v1/calls/{call['id']}/close", w.pm)

    # A call reviewed by assignment: two reviewers declare no conflict and review, one
    # declares a conflict, one declines; the fifth, still open, is released by the decision.
    assigned_call = w.open_call(review_mode="assigned")
    reviewed_by_assignees = w.drafted(assigned_call["id"])
    w.ok("POST", f"/v1/applications/{reviewed_by_assignees['id']}/submit", w.lead)
    assignments = [
        w.ok("POST", f"/v1/applications/{reviewed_by_assignees['id']}/assignments", w.pm, 201,
             json={"reviewer_id": sub, "reviewer_org": org, "name": sub,
                   "due_on": "2026-12-15"})
        for sub, org in (("rev-1", "VAST"), ("rev-2", "NAFOSTED"), ("rev-4", "IMECH"),
                         ("rev-5", "IOIT"), ("rev-6", "IMH"))]
    for a, conflict in zip(assignments[:3], (False, False, True), strict=True):
        w.ok("POST", f"/v1/assignments/{a['id']}/declaration", w.reviewer(a), json={
            "conflict_of_interest": conflict, "statement": "I declare it"})
    for reviewer in (w.rev1, w.rev2):
        w.ok("POST", f"/v1/applications/{reviewed_by_assignees['id']}/reviews", reviewer,
             201, json={"scores": {"novelty": 4}, "recommendation": "revise", "comment": ""})
    w.ok("POST", f"/v1/assignments/{assignments[3]['id']}/decline", w.reviewer(assignments[3]),
         json={"reason": "on leave until March"})
    w.ok("POST", f"/v1/applications/{reviewed_by_assignees['id']}/decision", w.pm,
         json={"decision": "reject", "reason": "needs revision"})

    # A call requiring endorsement: endorsed, submitted, withdrawn; then cancelled.
    endorsed_call = w.open_call(requires_endorsement=True)
    draft = w.drafted(endorsed_call["id"])
    w.ok("POST", f"/v1/applications/{draft['id']}/endorse", w.office)
    w.ok("POST", f"/v1/applications/{draft['id']}/submit", w.lead)
    w.ok("POST", f"/v1/applications/{draft['id']}/withdraw", w.lead,
         json={"reason": "the PI moved abroad"})
    w.ok("POST", f"/v1/calls/{endorsed_call['id']}/cancel", w.pm,
         json={"reason": "the programme was merged"})
    return {"call": call["id"], "g1": g1["id"], "g2": g2["id"], "g3": g3["id"],
            "g4": g4["id"], "g5": g5["id"], "rejected": rejected["id"]}


def test_every_event_of_the_lifecycle_matches_its_asyncapi_message(w, grants_db, messages):
    ids = run_the_whole_lifecycle(w)
    rows = outbox_rows(grants_db)
    assert rows, "the lifecycle emitted nothing"

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
    assert not emitted - GRANTS_TYPES, f"not in NAMES: {emitted - GRANTS_TYPES}"
    assert not GRANTS_TYPES - emitted, f"never emitted: {GRANTS_TYPES - emitted}"

    # The lifecycle covered the variants the schemas distinguish.
    def data_of(name: str) -> list[dict[str, Any]]:
        return [e["data"] for e in events if e["type"] == event_type("grants", name)]

    assert {d["decision"] for d in data_of("application.decided")} == {"approve", "reject"}
    assert {d["outcome"] for d in data_of("grant.closed")} == {
        "completed", "partially_completed", "failed_in_good_faith", "terminated_for_breach"}
    assert {d["completion_bp"] for d in data_of("tranche.released")} == {5000, 10000}
    assert 0 in {d["amount_vnd"] for d in data_of("tranche.released")}
    by_grant = {d["grant_id"]: d for d in data_of("grant.closed")}
    assert by_grant[ids["g2"]]["receivables"] == [
        {"payer_id": INSTITUTION, "payer_kind": "institution", "amount_vnd": 200_000_000}]
    assert all(by_grant[ids[g]]["receivables"] == [] for g in ("g3", "g4", "g5"))
    # Five awards, two rejections and four closures: MOST's register numbers 1..11.
    numbered = data_of("application.decided") + data_of("grant.closed")
    assert sorted(int(d["decision_no"].removesuffix("/QĐ-MOST")) for d in numbered) == list(
        range(1, 12))
    assert {(d["from_status"], d["status"]) for d in data_of("assignment.released")} == {
        ("assigned", "conflict"), ("assigned", "declined"), ("assigned", "released")}
    assert [d["decision_no"] for d in data_of("grant.awarded")] == [
        d["decision_no"] for d in data_of("application.decided") if d["decision"] == "approve"]
    assert [d["call_id"] for d in data_of("call.closed")] == [ids["call"]]
    assert data_of("call.closed")[0]["awarded_vnd"] == 4 * 1_000_000_001 + 2
    # Grant events are keyed by the grant, so finance sees award → releases → close.
    g3_types = [e["type"] for e in events if e["subject"] == ids["g3"]]
    assert g3_types == [event_type("grants", n) for n in (
        "grant.awarded", "tranche.released", "tranche.released", "grant.closed")]


Tamper = Callable[[dict[str, Any]], None]

# (event name, what is changed, the change): each must make the event invalid.
TAMPERINGS: list[tuple[str, str, Tamper]] = [
    ("tranche.released", "an extra data field",
     lambda e: e["data"].update(iban="VN00 0000")),
    ("tranche.released", "amount_vnd as a string",
     lambda e: e["data"].update(amount_vnd=str(e["data"]["amount_vnd"]))),
    ("tranche.released", "amount_vnd as a float",
     lambda e: e["data"].update(amount_vnd=e["data"]["amount_vnd"] + 0.5)),
    ("tranche.released", "a negative amount_vnd",
     lambda e: e["data"].update(amount_vnd=-1)),
    ("tranche.released", "a missing reference", lambda e: e["data"].pop("reference")),
    ("tranche.released", "completion_bp 0", lambda e: e["data"].update(completion_bp=0)),
    ("tranche.released", "completion_bp over 10000",
     lambda e: e["data"].update(completion_bp=10_001)),
    ("tranche.released", "an extra field on a payment line",
     lambda e: e["data"]["lines"][0].update(bank="x")),
    ("tranche.released", "a researcher payee", lambda e: e["data"].update(
        payee_kind="researcher")),
    ("tranche.released", "released_at not RFC 3339",
     lambda e: e["data"].update(released_at="23/11/2026 09:00")),
    ("grant.awarded", "a negative tranche", lambda e: e["data"]["tranches"][0].update(
        tranche_vnd=-5)),
    ("grant.awarded", "an extra field on a tranche",
     lambda e: e["data"]["tranches"][0].update(note="x")),
    ("grant.awarded", "a due_date with a time",
     lambda e: e["data"]["tranches"][0].update(due_date="2027-01-15T00:00:00Z")),
    ("grant.awarded", "an extra field on a team member",
     lambda e: e["data"]["team"][0].update(email="a@b.c")),
    ("application.decided", "an approval with a rejection reason",
     lambda e: e["data"].update(reason="no")),
    ("application.decided", "an unknown decision", lambda e: e["data"].update(
        decision="defer")),
    ("application.decided", "a decision_no without its register",
     lambda e: e["data"].update(decision_no="17")),
    ("application.decided", "a decision_no numbered from 0",
     lambda e: e["data"].update(decision_no="0/QĐ-MOST")),
    ("grant.awarded", "no decision_year", lambda e: e["data"].pop("decision_year")),
    ("grant.closed", "a decision_year as a string",
     lambda e: e["data"].update(decision_year="2026")),
    ("breach.recorded", "an unknown breach kind", lambda e: e["data"].update(kind="theft")),
    ("breach.recorded", "an empty description", lambda e: e["data"].update(description="")),
    ("grant.closed", "a breach termination exempt from liability",
     lambda e: e["data"].update(liability="exempt")),
    ("grant.closed", "a refund without its receivable",
     lambda e: e["data"].update(receivables=[])),
    ("grant.closed", "a refund as a string",
     lambda e: e["data"].update(refund_due_vnd="200000000")),
    ("grant.closed", "an extra field on a milestone",
     lambda e: e["data"]["milestones"][0].update(completion_bp=None)),
    ("grant.closed", "an open milestone status",
     lambda e: e["data"]["milestones"][0].update(status="pending")),
    ("grant.closed", "an extra field on a receivable",
     lambda e: e["data"]["receivables"][0].update(due_on="2027-01-01")),
    ("grant.closed", "a null data", lambda e: e.update(data=None)),
    ("application.withdrawn", "withdrawn after the decision",
     lambda e: e["data"].update(from_status="approved")),
    ("application.withdrawn", "without a reason", lambda e: e["data"].update(reason="")),
    ("application.endorsed", "an extra field", lambda e: e["data"].update(note="ok")),
    ("assignment.created", "a due_on with a time",
     lambda e: e["data"].update(due_on="2026-12-15T00:00:00Z")),
    ("assignment.created", "no reviewer_org", lambda e: e["data"].pop("reviewer_org")),
    ("assignment.released", "released after the review",
     lambda e: e["data"].update(from_status="reviewed")),
    ("assignment.released", "a conflict declared after accepting",
     lambda e: e["data"].update(status="conflict", from_status="accepted")),
    ("call.cancelled", "cancelled as a draft (never published)",
     lambda e: e["data"].update(from_status="draft")),
    ("call.opened", "budget_vnd as a string",
     lambda e: e["data"].update(budget_vnd=str(e["data"]["budget_vnd"]))),
    ("call.opened", "the wrong source", lambda e: e.update(source="/sandbox")),
    ("call.opened", "a missing envelope id", lambda e: e.pop("id")),
]


def test_events_that_drift_from_the_document_are_refused(w, grants_db, messages):
    call = w.open_call()
    grant = w.grant(call["id"])
    cancelled = w.open_call(requires_endorsement=True)
    withdrawn = w.drafted(cancelled["id"])
    w.ok("POST", f"/v1/applications/{withdrawn['id']}/endorse", w.office)
    w.ok("POST", f"/v1/applications/{withdrawn['id']}/withdraw", w.lead,
         json={"reason": "merged with another project"})
    w.ok("POST", f"/v1/calls/{cancelled['id']}/cancel", w.pm, json={"reason": "merged"})
    assigned_call = w.open_call(review_mode="assigned")
    assigned_app = w.drafted(assigned_call["id"])
    w.ok("POST", f"/v1/applications/{assigned_app['id']}/submit", w.lead)
    assignment = w.ok("POST", f"/v1/applications/{assigned_app['id']}/assignments", w.pm, 201,
                      json={"reviewer_id": "rev-1", "reviewer_org": "VAST", "name": "R1",
                            "due_on": "2026-12-15"})
    w.ok("POST", f"/v1/assignments/{assignment['id']}/decline", w.reviewer(assignment),
         json={"reason": "travelling"})
    w.report(grant, 1)
    w.accept(grant, 1)
    w.ok("POST", f"/v1/grants/{grant['id']}/breaches", w.pm, 201,
         json={"kind": "fraud", "description": "fabricated data"})
    w.close(grant, outcome="terminated_for_breach", justification="fraud",
            breach="fabricated data", refund_vnd=100_000_000)
    events: dict[str, dict[str, Any]] = {}
    for row in outbox_rows(grants_db):
        event = json.loads(row["value"])
        if event["subject"] in (call["id"], grant["id"], grant["application_id"],
                                cancelled["id"], withdrawn["id"], assignment["id"]):
            events.setdefault(event["type"], event)

    for name, what, tamper in TAMPERINGS:
        original = events[event_type("grants", name)]
        validate(messages, original)  # the untouched event is valid
        tampered = copy.deepcopy(original)
        tamper(tampered)
        with pytest.raises(ValidationError):
            validate(messages, tampered)
            pytest.fail(f"{name} with {what} passed validation")

    unknown = copy.deepcopy(events[event_type("grants", "call.opened")])
    unknown["type"] = event_type("grants", "call.reopened")
    with pytest.raises(KeyError):
        messages.validate(unknown)

