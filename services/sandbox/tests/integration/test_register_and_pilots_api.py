"""Pilots as their firm and the ministry read them, and the public register, which shows
every pilot ever approved and never a confidential part (PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pytest

from .world import SECRET, World, approval

pytestmark = pytest.mark.postgres

TODAY = date(2026, 11, 23)

# What the register may show, and nothing else: the contract's public fields.
PUBLIC_FIELDS = {"pilot_id", "firm_name", "enterprise_code", "sector", "supervising_agency",
                 "technology", "scope", "conditions", "approved_on", "starts_on", "ends_on",
                 "status", "decision_no", "decision_year", "decisions", "certificate_no"}
CONFIDENTIAL = {"risk_assessment", "safeguards", "exit_plan", "description", "owner_id",
                "organisation_id", "reports", "incidents", "assessments", "criteria",
                "summary", "note", "reviewer_id", "requested_scope", "exemptions"}


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


@pytest.fixture
def pilot(w: World) -> dict:
    decided = w.approved(TODAY)
    return w.call("GET", f"/v1/pilots/{decided['pilot_id']}", w.owner, 200)


# --- pilots -------------------------------------------------------------------------------------

def test_a_pilot_is_read_by_its_firm_and_the_ministry_only(w: World, pilot) -> None:
    for who in (w.owner, w.r1, w.pm, w.auditor):
        assert w.call("GET", f"/v1/pilots/{pilot['id']}", who, 200)["id"] == pilot["id"]
    w.call("GET", f"/v1/pilots/{pilot['id']}", w.other_firm, 404)
    w.call("GET", f"/v1/pilots/{pilot['id']}", w.researcher, 403)
    w.call("GET", f"/v1/pilots/{pilot['id']}", None, 401)
    w.call("GET", "/v1/pilots/no-such-pilot", w.pm, 404)


def test_the_pilot_shows_its_terms_and_supervision_fields(pilot) -> None:
    assert pilot["conditions"] == ["monthly escrow audit"]
    assert pilot["limits"]["regions"] == ["HN"]
    assert pilot["report_frequency"] == "quarterly"
    assert pilot["next_report_due_on"] is None and pilot["report_overdue"] is False
    assert pilot["original_ends_on"] == pilot["ends_on"] and pilot["extensions_used"] == 0


def test_a_firm_lists_its_own_pilots_and_the_ministry_filters_all(w: World, client,
                                                                  tokens, pilot) -> None:
    other = World(client, tokens)
    theirs = other.approved(TODAY, starts_on=TODAY.isoformat())  # active at once
    own = client.get("/v1/pilots", headers=w.owner).json()["items"]
    assert [p["id"] for p in own] == [pilot["id"]]
    assert "next_report_due_on" in own[0] and "report_overdue" in own[0]
    active = client.get("/v1/pilots", headers=w.pm,
                        params={"status": "active", "sector": "fintech"}).json()["items"]
    assert theirs["pilot_id"] in {p["id"] for p in active}
    assert pilot["id"] not in {p["id"] for p in active}
    assert client.get("/v1/pilots", headers=w.pm, params={"status": "dormant"}
                      ).status_code == 422
    problem = client.get("/v1/pilots", headers=w.pm, params={"sector": "mining"}).json()
    assert problem["status"] == 422 and "telecom" in problem["detail"]
    assert client.get("/v1/pilots", headers=w.researcher).status_code == 403


# --- the public register -------------------------------------------------------------------------

def test_the_register_needs_no_token_and_lists_every_approved_pilot(w: World, client,
                                                                    pilot) -> None:
    rejected = w.assessed()
    w.call("POST", f"/v1/applications/{rejected['id']}/decision", w.r3, 200,
           {"decision": "reject", "reasons": ["no"]})
    page = client.get("/v1/register", params={"limit": 200})
    assert page.status_code == 200
    entries = {e["pilot_id"]: e for e in page.json()["items"]}
    entry = entries[pilot["id"]]
    assert entry["decision_no"] == pilot["decision_no"]
    assert entry["scope"] == pilot["limits"] and entry["supervising_agency"] == "SBV"
    assert entry["decisions"][0]["kind"] == "approval"
    assert all(e["firm_name"] for e in entries.values())


def test_the_register_never_shows_a_confidential_part(w: World, client, pilot) -> None:
    listing = client.get("/v1/register", params={"limit": 200})
    one = client.get(f"/v1/register/{pilot['id']}")
    for response in (listing, one):
        assert SECRET not in response.text
        assert w.firm_org not in response.text  # the firm's token org, the owner's sub
        assert pilot["owner_id"] not in response.text
    entries = [*listing.json()["items"], one.json()]
    for entry in entries:
        assert set(entry) == PUBLIC_FIELDS
        assert not set(entry) & CONFIDENTIAL
    openapi = client.get("/openapi.json").json()["components"]["schemas"]["RegisterEntry"]
    assert set(openapi["properties"]) == PUBLIC_FIELDS


def test_the_register_filters_by_sector_and_status(w: World, client, tokens, pilot) -> None:
    other = World(client, tokens)
    active = other.approved(TODAY, starts_on=TODAY.isoformat())
    found = client.get("/v1/register", params={"status": "active", "sector": "fintech",
                                               "limit": 200}).json()["items"]
    assert active["pilot_id"] in {e["pilot_id"] for e in found}
    assert all(e["status"] == "active" and e["sector"] == "fintech" for e in found)
    assert client.get("/v1/register", params={"sector": "ai"}).json()["items"] == []
    unknown = client.get("/v1/register", params={"sector": "crypto"})
    assert unknown.status_code == 422 and "fintech" in unknown.json()["detail"]


def test_the_register_pages_with_a_cursor(w: World, client) -> None:
    made = {w.approved(TODAY)["pilot_id"] for _ in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/register", params=params).json()
        seen += [e["pilot_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))
    assert client.get("/v1/register", params={"cursor": "not-a-cursor"}).status_code == 422


def test_a_register_page_is_cacheable_and_revalidated_by_its_etag(w: World, client,
                                                                 pilot) -> None:
    first = client.get(f"/v1/register/{pilot['id']}")
    assert first.headers["cache-control"] == "public, max-age=60"
    etag = first.headers["etag"]
    again = client.get(f"/v1/register/{pilot['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    page = client.get("/v1/register")
    assert client.get("/v1/register", headers={"If-None-Match": page.headers["etag"]}
                      ).status_code == 304
    w.approved(TODAY)  # the first page changes, and so does its ETag
    changed = client.get("/v1/register", headers={"If-None-Match": page.headers["etag"]})
    assert changed.status_code == 200 and changed.headers["etag"] != page.headers["etag"]


def test_a_pilot_not_in_the_register_is_a_404(client) -> None:
    response = client.get("/v1/register/no-such-pilot")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_an_approved_pilot_is_in_the_register_before_it_starts(w: World, client) -> None:
    decided = w.approved(TODAY, conditions=["c1", "c2"])
    entry = client.get(f"/v1/register/{decided['pilot_id']}").json()
    assert entry["status"] == "approved" and entry["conditions"] == ["c1", "c2"]
    assert entry["scope"] == approval(TODAY)["limits"]
    assert entry["starts_on"] == decided["starts_on"] and entry["approved_on"] == "2026-11-23"
