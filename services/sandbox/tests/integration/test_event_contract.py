"""Every event the sandbox emits matches its message in ``docs/asyncapi.yaml``.

The application workflows run over HTTP on PostgreSQL (submission, changes requested and
resubmission, withdrawal, rejection, approval of a pilot starting later and of one
starting at once), and a pilot's supervised life with the scheduler on a fixed clock
(start, an overdue report, a report over its limits, incidents, a critical one
suspending it, resumption, a suspension, extension, adjustment, a termination, an
overdue decision, expiry, exit); then every outbox row (what the relay publishes, byte for byte) is
validated against the AsyncAPI document, exact for these events (every field required,
``additionalProperties: false``). A second test checks that the document refuses events
that drift from it.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
from jsonschema import ValidationError
from sqlalchemy import create_engine, func, select

from devkit.testing import AsyncApiMessages, outbox_rows, repo_asyncapi
from sandbox.events import NAMES
from servicekit.cloudevent import event_type
from servicekit.outbox import OUTBOX

from .pilot_life import run_a_pilots_life
from .world import World, approval, assessment

pytestmark = pytest.mark.postgres

TODAY = date(2026, 11, 23)
TOPIC = "sandbox.events.v1"
EMITTED = {event_type("sandbox", name) for name, _ in NAMES.values()}


@pytest.fixture(scope="module")
def messages() -> AsyncApiMessages:
    return AsyncApiMessages(repo_asyncapi())


def last_outbox_id(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(OUTBOX.c.id), 0)))
                       .scalar_one())
    finally:
        engine.dispose()


def run_the_workflows(w: World) -> dict[str, Any]:
    back = w.submitted()
    w.call("POST", f"/v1/applications/{back['id']}/request-changes", w.r1, 200,
           {"reasons": ["explain the escrow", "name the bank"]})
    w.call("POST", f"/v1/applications/{back['id']}/submit", w.owner, 200)
    w.call("POST", f"/v1/applications/{back['id']}/withdraw", w.owner, 200,
           {"reason": "plans changed"})
    rejected = w.assessed(scope={"regions": ["HN"], "max_participants": 10})
    w.call("POST", f"/v1/applications/{rejected['id']}/decision", w.r3, 200,
           {"decision": "reject", "reasons": ["existing rules suffice"]})
    later = w.approved(TODAY)
    now = w.approved(TODAY, starts_on=TODAY.isoformat(),
                     limits={"regions": ["HN"], "max_participants": 10,
                             "max_transaction_vnd": 1})
    return {"back": back, "rejected": rejected, "later": later, "now": now}


def emitted_events(db: str, before: int) -> list[dict[str, Any]]:
    events = []
    for row in outbox_rows(db, after=before):
        event = json.loads(row["value"])
        assert row["event_type"] == event["type"] and row["key"] == event["subject"]
        assert row["topic"] == TOPIC
        events.append(event)
    return events


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


def test_every_event_the_sandbox_emits_matches_its_asyncapi_message(w, sandbox_db, messages,
                                                                     clock, client) -> None:
    before = last_outbox_id(sandbox_db)
    made = run_the_workflows(w)
    life = run_a_pilots_life(w, clock, client)
    events = emitted_events(sandbox_db, before)
    failures = []
    for event in events:
        try:
            messages.validate(event)
        except KeyError:
            failures.append(f"{event['type']}: no message of docs/asyncapi.yaml has it")
        except ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            failures.append(f"{event['type']} at /{path}: {exc.message}")
    assert not failures, "events that do not match docs/asyncapi.yaml:\n" + "\n".join(
        failures)
    assert {e["type"] for e in events} == EMITTED

    def data_of(name: str) -> list[dict[str, Any]]:
        return [e["data"] for e in events if e["type"] == event_type("sandbox", name)]

    submitted = [d for d in data_of("application.submitted")
                 if d["application_id"] == made["back"]["id"]]
    assert [d["submission"] for d in submitted] == [1, 2]
    decided = {d["application_id"]: d for d in data_of("application.decided")}
    assert decided[made["rejected"]["id"]]["limits"] is None
    assert decided[made["now"]["id"]]["limits"]["max_transaction_vnd"] == 1
    started = [d["pilot_id"] for d in data_of("pilot.started")]
    # One started at approval, the other by the scheduler on its start date: once each.
    assert started.count(made["now"]["pilot_id"]) == started.count(
        made["later"]["pilot_id"]) == 1
    # Decision events are keyed by the application, pilot events by the pilot.
    keyed = {(e["type"].split(".")[4], e["subject"]) for e in events}
    assert ("application", made["rejected"]["id"]) in keyed
    assert ("pilot", made["now"]["pilot_id"]) in keyed
    # Incidents belong to their pilot: keyed by it, before the suspension they caused.
    mine = [e["type"].removeprefix("vn.gov.most.sandbox.").removesuffix(".v1")
            for e in events if e["subject"] == life["pilot"]]
    assert mine == ["pilot.started", "pilot.report_overdue", "pilot.report_filed",
                    "pilot.breach_detected", "incident.reported", "incident.reported",
                    "pilot.suspended", "pilot.resumed", "pilot.suspended", "pilot.resumed",
                    "pilot.extended", "pilot.adjusted", "pilot.report_overdue",
                    "pilot.expired", "pilot.exited"]
    overdue = data_of("application.decision_overdue")
    assert [d["application_id"] for d in overdue] == [life["pending"]]


TAMPERINGS = [
    ("application.submitted", "an unknown field", lambda e: e["data"].update(secret="x")),
    ("application.submitted", "a 9-digit enterprise code",
     lambda e: e["data"].update(enterprise_code="123456789")),
    ("application.submitted", "a time as the due day",
     lambda e: e["data"].update(decision_due_on="2027-02-21T00:00:00Z")),
    ("application.submitted", "a scope without regions",
     lambda e: e["data"]["scope"].update(regions=[])),
    ("application.decided", "an unknown decision", lambda e: e["data"].update(decision="defer")),
    ("application.decided", "a number from another register",
     lambda e: e["data"].update(decision_no="5/QĐ-MOST")),
    ("application.decided", "a missing decision_year", lambda e: e["data"].pop("decision_year")),
    ("application.changes_requested", "no reasons", lambda e: e["data"].update(reasons=[])),
    ("application.withdrawn", "a missing reason", lambda e: e["data"].pop("reason")),
    ("pilot.started", "limits with a stray field",
     lambda e: e["data"]["limits"].update(budget_vnd=1)),
    ("pilot.started", "the wrong source", lambda e: e.update(source="/grants")),
    ("pilot.report_filed", "a month written as a day",
     lambda e: e["data"].update(period="2026-12-01")),
    ("pilot.report_filed", "a float amount",
     lambda e: e["data"].update(transactions_vnd=1.5)),
    ("pilot.breach_detected", "no breaches", lambda e: e["data"].update(breaches=[])),
    ("pilot.breach_detected", "an unknown limit",
     lambda e: e["data"]["breaches"][0].update(limit="budget")),
    ("incident.reported", "an unknown severity",
     lambda e: e["data"].update(severity="catastrophic")),
    ("incident.reported", "a missing reported_in_time",
     lambda e: e["data"].pop("reported_in_time")),
    ("pilot.suspended", "a grants decision number",
     lambda e: e["data"].update(decision_no="3/QĐ-MOST")),
    ("pilot.extended", "no extension counted",
     lambda e: e["data"].update(extensions_used=0)),
    ("pilot.adjusted", "limits with a stray field",
     lambda e: e["data"]["limits"].update(budget_vnd=1)),
    ("pilot.terminated", "no decision number", lambda e: e["data"].pop("decision_no")),
    ("pilot.exited", "an unknown outcome", lambda e: e["data"].update(outcome="pivot")),
    ("pilot.exited", "a certificate from another register",
     lambda e: e["data"].update(certificate_no="1/QĐ-TNKS-SBV")),
    ("pilot.report_overdue", "a due time, not a day",
     lambda e: e["data"].update(due_on="2027-01-15T00:00:00Z")),
    ("pilot.expired", "a stray field", lambda e: e["data"].update(reason="late")),
    ("application.decision_overdue", "a missing due day",
     lambda e: e["data"].pop("decision_due_on")),
]


def test_events_that_drift_from_the_document_are_refused(w, sandbox_db, messages, clock,
                                                         client) -> None:
    before = last_outbox_id(sandbox_db)
    run_the_workflows(w)
    run_a_pilots_life(w, clock, client)
    events: dict[str, dict[str, Any]] = {}
    for event in emitted_events(sandbox_db, before):
        events.setdefault(event["type"], event)
    for name, what, tamper in TAMPERINGS:
        original = events[event_type("sandbox", name)]
        messages.validate(original)
        tampered = copy.deepcopy(original)
        tamper(tampered)
        with pytest.raises(ValidationError):
            messages.validate(tampered)
            pytest.fail(f"{name} with {what} passed validation")


def test_an_assessment_emits_nothing_and_its_notes_never_reach_an_event(w, sandbox_db) -> None:
    app = w.submitted()
    before = last_outbox_id(sandbox_db)
    w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r1, 201,
           assessment(note="confidential note"))
    assert emitted_events(sandbox_db, before) == []
    w.call("POST", f"/v1/applications/{app['id']}/assessments", w.r2, 201, assessment())
    w.call("POST", f"/v1/applications/{app['id']}/decision", w.r3, 200, approval(TODAY))
    assert all("confidential note" not in json.dumps(e)
               for e in emitted_events(sandbox_db, before))
