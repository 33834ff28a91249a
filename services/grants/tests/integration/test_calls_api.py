"""The calls resource over HTTP on PostgreSQL: roles, transitions, audit, idempotency."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select
from sqlmodel import Session

from servicekit import audit
from servicekit.outbox import OUTBOX

pytestmark = pytest.mark.postgres

CALL = {
    "title": "AI for rice yields",
    "description": "Models that forecast yields in the Mekong delta",
    "budget_vnd": 10_000_000_000,
    "max_award_vnd": 2_000_000_000,
    "opens_at": "2026-11-01T00:00:00Z",
    "closes_at": "2027-03-01T00:00:00Z",
    "min_reviews": 2,
}


def pm(tokens, agency: str = "MOST", **extra):
    return tokens.headers(f"pm-{agency}", "program_manager", org=agency, **extra)


def draft(client, tokens, agency: str = "MOST", **overrides) -> dict:
    r = client.post("/v1/calls", json={**CALL, **overrides}, headers=pm(tokens, agency))
    assert r.status_code == 201, r.text
    return r.json()


def count(url: str, table) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return n


def test_programme_manager_drafts_a_call_for_their_agency(client, tokens):
    call = draft(client, tokens, agency="DOST-HCM")
    assert call["agency_id"] == "DOST-HCM"
    assert call["status"] == "draft"
    assert call["remaining_budget_vnd"] == 10_000_000_000
    uuid.UUID(call["id"])


def test_opening_a_call_publishes_it_with_remaining_budget(client, tokens):
    call = draft(client, tokens)
    r = client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    assert r.status_code == 200
    assert r.json()["status"] == "open"
    assert r.json()["accepting_submissions"] is True
    public = client.get(f"/v1/calls/{call['id']}")  # anonymous
    assert public.status_code == 200
    assert public.json()["remaining_budget_vnd"] == CALL["budget_vnd"]
    listed = client.get("/v1/calls", params={"status": "open", "limit": 200}).json()["items"]
    assert call["id"] in [c["id"] for c in listed]


def test_drafts_are_private_to_their_agency(client, tokens):
    call = draft(client, tokens, agency="MOST")
    assert client.get(f"/v1/calls/{call['id']}").status_code == 404
    other = client.get(f"/v1/calls/{call['id']}", headers=pm(tokens, "DOST-HN"))
    assert other.status_code == 404
    assert client.get(f"/v1/calls/{call['id']}", headers=pm(tokens)).status_code == 200
    auditor = tokens.headers("aud-1", "auditor", org="SAV")
    assert client.get(f"/v1/calls/{call['id']}", headers=auditor).status_code == 200
    anonymous = client.get("/v1/calls", params={"limit": 200}).json()["items"]
    assert call["id"] not in [c["id"] for c in anonymous]


def test_another_agencys_programme_manager_cannot_open_its_call(client, tokens):
    call = draft(client, tokens, agency="MOST")
    client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    r = client.post(f"/v1/calls/{call['id']}/close", headers=pm(tokens, "DOST-HN"))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"


def test_opening_twice_is_a_409_and_changes_nothing(client, tokens, grants_db):
    call = draft(client, tokens)
    client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    events_before = count(grants_db, OUTBOX)
    r = client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    assert r.status_code == 409
    body = r.json()
    assert body["status"] == 409 and "only a draft call can be opened" in body["detail"]
    assert count(grants_db, OUTBOX) == events_before


def test_a_call_whose_window_ended_cannot_be_opened(client, tokens, clock):
    call = draft(client, tokens)
    clock.advance(timedelta(days=365))
    r = client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    assert r.status_code == 409
    assert "window has already ended" in r.json()["detail"]


def test_the_history_names_who_did_what_and_when(client, tokens, clock):
    call = draft(client, tokens)
    clock.advance(timedelta(hours=1))
    client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    clock.advance(timedelta(days=30))
    client.post(f"/v1/calls/{call['id']}/close", headers=pm(tokens))
    r = client.get(f"/v1/calls/{call['id']}/history", headers=pm(tokens))
    assert r.status_code == 200
    trail = [(e["action"], e["from_status"], e["to_status"], e["actor"], e["role"],
              e["time"]) for e in r.json()["items"]]
    assert trail == [
        ("draft", None, "draft", "pm-MOST", "program_manager", "2026-11-23T09:00:00Z"),
        ("open", "draft", "open", "pm-MOST", "program_manager", "2026-11-23T10:00:00Z"),
        ("close", "open", "closed", "pm-MOST", "program_manager", "2026-12-23T10:00:00Z"),
    ]


def test_history_is_for_ministry_roles_only(client, tokens):
    call = draft(client, tokens)
    r = client.get(f"/v1/calls/{call['id']}/history",
                   headers=tokens.headers("r-1", "researcher", org="HUST"))
    assert r.status_code == 403


def test_every_write_leaves_a_verifiable_audit_chain(client, tokens, grants_db):
    call = draft(client, tokens)
    client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    engine = create_engine(grants_db)
    with Session(engine) as session:
        report = audit.verify(session)
    engine.dispose()
    assert report.ok, report.first_break


def test_opening_stages_call_opened_in_the_same_transaction(client, tokens, grants_db):
    call = draft(client, tokens)
    client.post(f"/v1/calls/{call['id']}/open", headers=pm(tokens))
    engine = create_engine(grants_db)
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.event_type, OUTBOX.c.key).where(
            OUTBOX.c.key == call["id"])).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("vn.gov.most.grants.call.opened.v1", call["id"])]


# --- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"budget_vnd": 0}, "budget_vnd"),
        ({"budget_vnd": -5}, "budget_vnd"),
        ({"budget_vnd": 1.5}, "budget_vnd"),
        ({"budget_vnd": "1000"}, "budget_vnd"),
        ({"max_award_vnd": 20_000_000_000}, "max_award_vnd"),
        ({"closes_at": "2026-10-01T00:00:00Z"}, "closes_at"),
        ({"opens_at": "2026-11-01T00:00:00"}, "opens_at"),
        ({"min_reviews": 0}, "min_reviews"),
        ({"title": ""}, "title"),
    ],
)
def test_bad_calls_are_422_naming_the_field_and_write_nothing(client, tokens, grants_db,
                                                              overrides, field):
    before = count(grants_db, audit.AUDIT)
    r = client.post("/v1/calls", json={**CALL, **overrides}, headers=pm(tokens))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert {"type", "title", "status", "detail", "instance"} <= body.keys()
    assert any(field in [str(p) for p in e["loc"]] for e in body["errors"]), body
    assert count(grants_db, audit.AUDIT) == before


def test_unknown_call_is_404_problem(client, tokens):
    r = client.post(f"/v1/calls/{uuid.uuid4()}/open", headers=pm(tokens))
    assert r.status_code == 404
    assert r.json()["instance"].endswith("/open")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/v1/nowhere", 404), ("delete", "/v1/calls", 405), ("put", "/v1/calls", 405)],
)
def test_unknown_routes_and_methods_are_problems(client, method, path, status):
    r = getattr(client, method)(path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status and r.json()["instance"] == path


def test_a_malformed_json_body_is_a_422_problem(client, tokens):
    r = client.post("/v1/calls", content=b"{not json",
                    headers={**pm(tokens), "content-type": "application/json"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


# --- idempotency -----------------------------------------------------------------------

def test_a_repeated_idempotency_key_replays_the_first_response(client, tokens, grants_db):
    headers = pm(tokens, **{"Idempotency-Key": "draft-ai-1"})
    first = client.post("/v1/calls", json=CALL, headers=headers)
    calls_before = count(grants_db, audit.AUDIT)
    again = client.post("/v1/calls", json=CALL, headers=headers)
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(grants_db, audit.AUDIT) == calls_before


def test_the_same_idempotency_key_with_another_body_is_422(client, tokens):
    headers = pm(tokens, **{"Idempotency-Key": "draft-ai-2"})
    client.post("/v1/calls", json=CALL, headers=headers)
    r = client.post("/v1/calls", json={**CALL, "title": "Something else"}, headers=headers)
    assert r.status_code == 422
    assert "different request body" in r.json()["detail"]


def test_idempotency_keys_are_scoped_to_the_caller(client, tokens):
    key = {"Idempotency-Key": "shared-key"}
    a = client.post("/v1/calls", json=CALL, headers=pm(tokens, "MOST", **key))
    b = client.post("/v1/calls", json=CALL, headers=pm(tokens, "DOST-HN", **key))
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_a_failed_command_leaves_no_key_behind(client, tokens):
    call = draft(client, tokens)
    headers = pm(tokens, **{"Idempotency-Key": "open-too-late"})
    client.post(f"/v1/calls/{call['id']}/close", headers=headers)  # 409: not open
    r = client.post(f"/v1/calls/{call['id']}/close", headers=headers)
    assert r.status_code == 409
    assert "idempotent-replayed" not in r.headers


def test_text_is_trimmed_and_nul_or_blank_text_is_refused(client, tokens, grants_db):
    call = draft(client, tokens, title="  AI for rice yields \n")
    assert call["title"] == "AI for rice yields"
    before = count(grants_db, OUTBOX)
    for title in ("   ", "AI\u0000yields"):
        r = client.post("/v1/calls", json={**CALL, "title": title}, headers=pm(tokens))
        assert r.status_code == 422, (title, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # An id no row can have: the database refuses it, a 422 rather than a 500.
    r = client.get("/v1/calls/a%00b", headers=pm(tokens))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert count(grants_db, OUTBOX) == before
