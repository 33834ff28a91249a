"""Assets, policies, agreements, income, reversal and the ledger over HTTP on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from ipshare.models import DistributionRow, LedgerEntryRow
from servicekit.housekeeping import Retention, purge

pytestmark = pytest.mark.postgres

INST = "HUST"
AUTHORS = [{"researcher_id": "r-a", "name": "A", "contribution_bp": 7000},
           {"researcher_id": "r-b", "name": "B", "contribution_bp": 3000}]


class World:
    def __init__(self, client, tokens):
        self.c = client
        self.office = tokens.headers("off-1", "institution", org=INST)
        self.other_office = tokens.headers("off-2", "institution", org="VNU")
        self.finance = tokens.headers("fin-1", "finance", org="MOF")
        self.auditor = tokens.headers("aud-1", "auditor", org="SAV")
        self.a = tokens.headers("r-a", "researcher", org=INST)
        self.b = tokens.headers("r-b", "researcher", org=INST)
        self.outsider = tokens.headers("r-x", "researcher", org="VNU")

    def asset(self, authors=None) -> dict:
        r = self.c.post("/v1/assets", headers=self.office, json={
            "kind": "patent", "title": "Salinity sensor", "authors": authors or AUTHORS,
            "source_grant_id": None})
        assert r.status_code == 201, r.text
        return r.json()

    def agreement(self, kind="licence", asset=None) -> dict:
        asset = asset or self.asset()
        r = self.c.post(f"/v1/assets/{asset['id']}/agreements", headers=self.office, json={
            "kind": kind, "counterparty": "Viettel", "signed_on": "2026-11-01",
            "terms": "5% royalty"})
        assert r.status_code == 201, r.text
        return r.json()

    def income(self, agreement_id, gross=1_000_000_007, costs=0, reference=None,
               who=None):
        return self.c.post(f"/v1/agreements/{agreement_id}/income", headers=who or self.office,
                           json={"period": "2026-Q4", "gross_vnd": gross, "costs_vnd": costs,
                                 "reference": reference or f"INV-{uuid.uuid4().hex[:8]}"})

    def gross_policy(self, share=3000):
        r = self.c.put(f"/v1/institutions/{INST}/policy", headers=self.office,
                       json={"researcher_share_bp": share, "basis": "gross"})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


def trial_balance(w) -> dict:
    r = w.c.get("/v1/ledger/trial-balance", headers=w.finance)
    assert r.status_code == 200
    return r.json()


def ledger_rows(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(LedgerEntryRow.__table__)
                         ).scalar_one()
    engine.dispose()
    return n


def test_the_contract_example_on_a_gross_policy(w):
    w.gross_policy(3000)
    agreement = w.agreement()
    r = w.income(agreement["id"], gross=1_000_000_007)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["researcher_pool_vnd"] == 300_000_003 and d["institution_vnd"] == 700_000_004
    assert [(ln["payee_id"], ln["amount_vnd"]) for ln in d["lines"]] == [
        ("r-a", 210_000_002), ("r-b", 90_000_001), (INST, 700_000_004)]
    assert sum(ln["amount_vnd"] for ln in d["lines"]) == d["gross_vnd"]
    assert d["policy"]["basis"] == "gross" and d["policy"]["version"] >= 1
    assert d["status"] == "posted" and d["in_kind"] is False
    assert trial_balance(w)["total_vnd"] == 0


def test_the_default_policy_is_30_percent_of_net(w, tokens):
    other = tokens.headers("off-9", "institution", org="NEU")
    asset = w.c.post("/v1/assets", headers=other, json={
        "kind": "software", "title": "x", "authors": AUTHORS}).json()
    agreement = w.c.post(f"/v1/assets/{asset['id']}/agreements", headers=other, json={
        "kind": "licence", "counterparty": "FPT", "signed_on": "2026-11-01"}).json()
    d = w.income(agreement["id"], gross=1_000, costs=400, who=other).json()
    assert (d["basis_vnd"], d["researcher_pool_vnd"], d["institution_vnd"]) == (600, 180, 820)
    assert d["policy"] == {"researcher_share_bp": 3000, "basis": "net", "version": 0}


def test_a_policy_below_30_percent_is_refused_and_changes_are_versioned(w):
    r = w.c.put(f"/v1/institutions/{INST}/policy", headers=w.office,
                json={"researcher_share_bp": 2999, "basis": "net"})
    assert r.status_code == 422
    first = w.gross_policy(3500)
    second = w.gross_policy(4000)
    assert second["version"] == first["version"] + 1
    assert w.c.put(f"/v1/institutions/{INST}/policy", headers=w.other_office,
                   json={"researcher_share_bp": 5000}).status_code == 403

    # The changes' trail: who, when, from which version to which; the refused ones left
    # nothing. Seen by the institution, its researchers and the books; not by others.
    path = f"/v1/institutions/{INST}/policy/history"
    trail = w.c.get(path, headers=w.office).json()["items"][-2:]
    assert [(e["actor"], e["from_status"], e["to_status"], e["data"]["researcher_share_bp"])
            for e in trail] == [
        ("off-1", f"v{first['version'] - 1}", f"v{first['version']}", 3500),
        ("off-1", f"v{first['version']}", f"v{second['version']}", 4000)]
    assert all(e["time"] for e in trail)
    for reader in (w.a, w.auditor, w.finance):
        assert w.c.get(path, headers=reader).status_code == 200
    for outsider in (w.other_office, w.outsider):
        assert w.c.get(path, headers=outsider).status_code == 404


def test_spin_off_income_is_in_kind_on_the_contributed_value(w):
    agreement = w.agreement(kind="spin_off")
    d = w.income(agreement["id"], gross=2_000_000_000).json()
    assert d["in_kind"] is True and d["basis_vnd"] == 2_000_000_000
    assert w.income(agreement["id"], gross=1_000, costs=1).status_code == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"gross_vnd": 0}, 422), ({"gross_vnd": -1}, 422), ({"gross_vnd": 1.5}, 422),
        ({"gross_vnd": "100"}, 422), ({"gross_vnd": 100, "costs_vnd": 101}, 422),
        ({"gross_vnd": 100, "costs_vnd": -1}, 422),
    ],
)
def test_bad_income_is_refused_and_the_ledger_is_unchanged(w, ipshare_db, body, status):
    agreement = w.agreement()
    before = ledger_rows(ipshare_db)
    r = w.c.post(f"/v1/agreements/{agreement['id']}/income", headers=w.office,
                 json={"period": "p", "reference": "R", **body})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert ledger_rows(ipshare_db) == before
    assert trial_balance(w)["total_vnd"] == 0


def test_an_amount_written_with_a_zero_fraction_is_that_many_dong(w):
    """JSON has one number type: 1000000007.0 is the integer its schema admits."""
    agreement = w.agreement()
    as_int = w.income(agreement["id"], gross=1_000_000_007, costs=7).json()
    r = w.income(agreement["id"], gross=1_000_000_007.0, costs=7.0)
    assert r.status_code == 201, r.text
    as_float = r.json()
    fields = ("gross_vnd", "costs_vnd", "basis_vnd", "researcher_pool_vnd", "institution_vnd")
    assert [as_float[f] for f in fields] == [as_int[f] for f in fields]
    assert [line["amount_vnd"] for line in as_float["lines"]] == [
        line["amount_vnd"] for line in as_int["lines"]]
    assert trial_balance(w)["total_vnd"] == 0


def test_income_on_an_unknown_or_terminated_agreement_is_refused(w):
    assert w.income(str(uuid.uuid4())).status_code == 404
    agreement = w.agreement()
    r = w.c.post(f"/v1/agreements/{agreement['id']}/terminate", headers=w.office,
                 json={"reason": "licensee bankrupt"})
    assert r.json()["status"] == "terminated"
    refused = w.income(agreement["id"])
    assert refused.status_code == 409 and "terminated" in refused.json()["detail"]


def test_authors_shares_must_sum_to_10000(w):
    r = w.c.post("/v1/assets", headers=w.office, json={
        "kind": "patent", "title": "x",
        "authors": [{"researcher_id": "r-a", "name": "A", "contribution_bp": 6000}]})
    assert r.status_code == 422


def test_a_reference_posts_once_until_reversed(w):
    agreement = w.agreement()
    first = w.income(agreement["id"], reference="INV-1").json()
    again = w.income(agreement["id"], reference="INV-1")
    assert again.status_code == 409 and "INV-1" in again.json()["detail"]
    reversed_ = w.c.post(f"/v1/distributions/{first['id']}/reverse", headers=w.finance,
                         json={"reason": "wrong amount"})
    assert reversed_.status_code == 200 and reversed_.json()["status"] == "reversed"
    twice = w.c.post(f"/v1/distributions/{first['id']}/reverse", headers=w.finance,
                     json={"reason": "again"})
    assert twice.status_code == 409
    corrected = w.income(agreement["id"], reference="INV-1", gross=900_000_000)
    assert corrected.status_code == 201
    assert trial_balance(w)["total_vnd"] == 0


def test_concurrent_posts_of_one_reference_post_once(w, tokens, ipshare_db):
    agreement = w.agreement()
    start = threading.Barrier(6)

    def post(i: int) -> int:
        start.wait()
        return w.income(agreement["id"], reference="RACE-1").status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(post, range(6)))
    assert statuses == [201] + [409] * 5
    engine = create_engine(ipshare_db)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(DistributionRow.__table__).where(
            DistributionRow.reference == "RACE-1")).scalar_one()
    engine.dispose()
    assert n == 1


def test_concurrent_retries_with_one_key_replay_the_winner(w):
    # The key is looked up after the agreement's lock: a retry that waited on the lock
    # finds the winner's key and replays its answer instead of a duplicate-reference 409.
    agreement = w.agreement()
    headers = {**w.office, "Idempotency-Key": "income-race"}
    body = {"period": "Q4", "gross_vnd": 5_000, "costs_vnd": 0, "reference": "RACE-KEY"}
    start = threading.Barrier(6)

    def post(i: int):
        start.wait()
        return w.c.post(f"/v1/agreements/{agreement['id']}/income", headers=headers,
                        json=body)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    assert [a.status_code for a in answers] == [201] * 6
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5
    listed = w.c.get(f"/v1/agreements/{agreement['id']}/distributions", headers=w.office)
    assert len(listed.json()["items"]) == 1


def test_an_idempotent_retry_replays_instead_of_conflicting(w):
    agreement = w.agreement()
    headers = {**w.office, "Idempotency-Key": "income-once"}
    body = {"period": "Q4", "gross_vnd": 5_000, "costs_vnd": 0, "reference": "IDEM-1"}
    first = w.c.post(f"/v1/agreements/{agreement['id']}/income", headers=headers, json=body)
    again = w.c.post(f"/v1/agreements/{agreement['id']}/income", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]


def test_a_retry_after_its_key_expired_is_refused_not_posted_twice(w, clock, ipshare_db):
    # Idempotency-Key records are purged after IDEMPOTENCY_RETENTION_DAYS; a late retry
    # is then handled afresh, and the standing reference refuses it: nothing doubles.
    agreement = w.agreement()
    headers = {**w.office, "Idempotency-Key": "income-late"}
    body = {"period": "Q4", "gross_vnd": 5_000, "costs_vnd": 0, "reference": "LATE-1"}
    path = f"/v1/agreements/{agreement['id']}/income"
    assert w.c.post(path, headers=headers, json=body).status_code == 201
    rows = ledger_rows(ipshare_db)

    clock.advance(timedelta(days=8))
    kit = w.c.app.state.kit
    deleted = purge(kit.engine, clock.now(),
                    replace(Retention.of(kit.settings), idempotency_days=7))

    assert deleted["idempotency_keys"] >= 1
    late = w.c.post(path, headers=headers, json=body)
    assert late.status_code == 409, late.text
    assert "Idempotent-Replayed" not in late.headers
    assert ledger_rows(ipshare_db) == rows
    assert trial_balance(w)["total_vnd"] == 0
    listed = w.c.get(f"/v1/agreements/{agreement['id']}/distributions", headers=w.office)
    assert len(listed.json()["items"]) == 1


def test_a_payee_sees_the_totals_and_only_their_own_line(w):
    agreement = w.agreement()
    d = w.income(agreement["id"]).json()
    mine = w.c.get(f"/v1/distributions/{d['id']}", headers=w.b).json()
    assert [ln["payee_id"] for ln in mine["lines"]] == ["r-b"]
    assert mine["gross_vnd"] == d["gross_vnd"]
    assert w.c.get(f"/v1/distributions/{d['id']}", headers=w.outsider).status_code == 404
    assert len(w.c.get(f"/v1/distributions/{d['id']}", headers=w.auditor).json()["lines"]) \
        == 3


def test_statements_carry_the_running_balance_and_are_private(w):
    agreement = w.agreement()
    d1 = w.income(agreement["id"], gross=1_000).json()
    d2 = w.income(agreement["id"], gross=2_000).json()

    def line_of_a(d):
        return next(ln["amount_vnd"] for ln in d["lines"] if ln["payee_id"] == "r-a")
    w.c.post(f"/v1/distributions/{d1['id']}/reverse", headers=w.office, json={"reason": "x"})
    pages, cursor = [], None
    while True:
        page = w.c.get("/v1/payees/r-a/statement", headers=w.a,
                       params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for before, after in zip(pages, pages[1:], strict=False):
        assert after["opening_balance_vnd"] == before["closing_balance_vnd"]
    amounts = [i["amount_vnd"] for p in pages for i in p["items"]]
    assert amounts[-3:] == [line_of_a(d1), line_of_a(d2), -line_of_a(d1)]
    assert pages[-1]["closing_balance_vnd"] == sum(amounts)
    balances = [i["balance_vnd"] for p in pages for i in p["items"]]
    assert balances[-1] == sum(amounts)
    assert w.c.get("/v1/payees/r-a/statement", headers=w.b).status_code == 404
    assert w.c.get("/v1/payees/r-a/statement", headers=w.finance).status_code == 200


def test_a_statement_window_takes_dates_or_times(w, clock):
    authors = [{"researcher_id": "r-window", "name": "W", "contribution_bp": 10000}]
    agreement = w.agreement(asset=w.asset(authors))
    amounts = []
    for gross in (1_000, 2_000, 4_000):  # on 23, 24 and 25 November
        d = w.income(agreement["id"], gross=gross).json()
        amounts.append(d["lines"][0]["amount_vnd"])
        clock.advance(timedelta(days=1))

    def statement(**window):
        r = w.c.get("/v1/payees/r-window/statement", headers=w.finance, params=window)
        return r.status_code, r.json()

    by_date = statement(**{"from": "2026-11-24", "to": "2026-11-24"})
    by_time = statement(**{"from": "2026-11-24T07:00:00+07:00", "to": "2026-11-25T00:00:00Z"})
    for status, body in (by_date, by_time):
        assert status == 200, body
        assert [i["amount_vnd"] for i in body["items"]] == [amounts[1]]
        assert body["opening_balance_vnd"] == amounts[0]
        assert body["closing_balance_vnd"] == amounts[0] + amounts[1]
    status, everything = statement(**{"from": "2026-11-23", "to": "9999-12-31"})
    assert status == 200 and [i["amount_vnd"] for i in everything["items"]] == amounts
    for naive in ("2026-11-24T10:00:00", "2026-11-24T00:00:00"):  # a time needs its offset
        assert statement(**{"from": naive})[0] == 422
    for seconds in ("1700000000", "1699920000"):  # RFC 3339, not a count of seconds
        assert statement(**{"from": seconds})[0] == 422
    assert statement(**{"from": "2026-11-25", "to": "2026-11-24"})[0] == 422


def test_the_ledger_refuses_edits(w, ipshare_db):
    agreement = w.agreement()
    w.income(agreement["id"])
    engine = create_engine(ipshare_db)
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET amount_vnd = 0"))
    engine.dispose()


def test_roles_and_ownership(w):
    asset = w.asset()
    assert w.c.get(f"/v1/assets/{asset['id']}", headers=w.a).status_code == 200
    assert w.c.get(f"/v1/assets/{asset['id']}", headers=w.outsider).status_code == 404
    assert w.c.get(f"/v1/assets/{asset['id']}", headers=w.other_office).status_code == 404
    r = w.c.post(f"/v1/assets/{asset['id']}/agreements", headers=w.other_office, json={
        "kind": "licence", "counterparty": "x", "signed_on": "2026-11-01"})
    assert r.status_code == 404
    agreement = w.agreement(asset=asset)
    assert w.income(agreement["id"], who=w.a).status_code == 403
    assert w.income(agreement["id"], who=w.finance).status_code == 201
    assert w.c.get("/v1/ledger/trial-balance", headers=w.a).status_code == 403
    listed = w.c.get("/v1/assets", headers=w.a).json()["items"]
    assert asset["id"] in [a["id"] for a in listed]
    assert w.c.get("/v1/assets", headers=w.outsider).json()["items"] == []
    # The asset's authors see its agreements, listed and one by one; outsiders do not.
    path = f"/v1/agreements/{agreement['id']}"
    listed = w.c.get(f"/v1/assets/{asset['id']}/agreements", headers=w.a).json()["items"]
    assert [a["id"] for a in listed] == [agreement["id"]]
    assert w.c.get(path, headers=w.a).json() == agreement
    assert w.c.get(f"{path}/history", headers=w.a).status_code == 200
    for outsider in (w.outsider, w.other_office):
        assert w.c.get(path, headers=outsider).status_code == 404
        assert w.c.get(f"{path}/history", headers=outsider).status_code == 404
    assert w.c.post(f"{path}/terminate", headers=w.a, json={"reason": "x"}).status_code \
        == 403


def test_the_documented_examples_work_as_documented(w):
    # What a developer copies from /docs: the policy, asset, agreement and income
    # examples, posted as they are, give domain.md's worked split.
    schemas = w.c.get("/openapi.json").json()["components"]["schemas"]

    def example(name: str) -> dict:
        return schemas[name]["examples"][0]

    assert w.c.put(f"/v1/institutions/{INST}/policy", headers=w.office,
                   json=example("PolicyUpdate")).status_code == 200
    asset = w.c.post("/v1/assets", headers=w.office, json=example("AssetCreate")).json()
    agreement = w.c.post(f"/v1/assets/{asset['id']}/agreements", headers=w.office,
                         json=example("AgreementCreate")).json()
    posted = w.c.post(f"/v1/agreements/{agreement['id']}/income", headers=w.office,
                      json=example("IncomeCreate"))
    assert posted.status_code == 201, posted.text
    assert [ln["amount_vnd"] for ln in posted.json()["lines"]] == [
        210_000_002, 90_000_001, 700_000_004]
    reversed_ = w.c.post(f"/v1/distributions/{posted.json()['id']}/reverse",
                         headers=w.office, json=example("Reason"))
    assert reversed_.status_code == 200
    assert trial_balance(w)["total_vnd"] == 0


def test_references_are_opaque_and_text_postgresql_cannot_store_is_refused(w, ipshare_db):
    agreement = w.agreement()
    before = ledger_rows(ipshare_db)
    # A reference is a key, compared as sent: padded or blank is refused, never trimmed
    # (trimming would make "INV-1 " stored earlier and "INV-1 " sent again different).
    for reference in ("  INV-PAD", "INV-PAD ", "   ", "INV\u0000-1"):
        r = w.income(agreement["id"], reference=reference)
        assert r.status_code == 422, (reference, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    lone_surrogate = b'{"period": "p", "gross_vnd": 10, "reference": "INV-\\ud800"}'
    r = w.c.post(f"/v1/agreements/{agreement['id']}/income", content=lone_surrogate,
                 headers={**w.office, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    # An id no row can have (NUL in the path): refused by the database, a 422, not a 500.
    r = w.c.post("/v1/agreements/a%00b/income", headers=w.office,
                 json={"period": "p", "gross_vnd": 10, "reference": "R"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert w.c.get("/v1/assets", headers=w.office,
                   params={"institution_id": "a\u0000"}).status_code == 422
    assert ledger_rows(ipshare_db) == before
    # Free text is trimmed: the period is a label, not a key.
    posted = w.income(agreement["id"], reference="INV-TRIM")
    assert posted.status_code == 201
    assert w.c.post(f"/v1/agreements/{agreement['id']}/income", headers=w.office, json={
        "period": "  2026-Q4 ", "gross_vnd": 10, "reference": "INV-TRIM-2"}).json()[
        "period"] == "2026-Q4"
    assert trial_balance(w)["total_vnd"] == 0


def test_a_direct_asset_cannot_name_a_grant(w):
    # Grants attributes income to a grant by source_grant_id: only the grant's own
    # result event may set it, or any institution could credit another's grant.
    r = w.c.post("/v1/assets", headers=w.office, json={
        "kind": "patent", "title": "x", "authors": AUTHORS, "source_grant_id": "g-1"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "source_grant_id"]
    listed = w.c.get("/v1/assets", headers=w.office, params={"source_grant_id": "g-1"})
    assert listed.json()["items"] == []


def test_statement_and_history_cursors_and_bounds_are_checked(w):
    agreement = w.agreement()
    w.income(agreement["id"])
    statement = "/v1/payees/r-a/statement"
    history = f"/v1/agreements/{agreement['id']}/history"
    for cursor in ("²", "garbage", "-5", "1e3", "9223372036854775808", "9" * 30):
        for path in (statement, history):
            r = w.c.get(path, headers=w.finance, params={"cursor": cursor})
            assert r.status_code == 422, (path, cursor, r.text)
            assert r.json()["errors"][0]["loc"] == ["query", "cursor"]
    for window in ({"from": "0001-01-01T00:00:00+01:00"}, {"to": "9999-12-31T23:59:59-01:00"},
                   {"to": "0001-01-01T00:30:00+01:00"}):
        r = w.c.get(statement, headers=w.finance, params=window)
        assert r.status_code == 422, (window, r.text)
    assert w.c.get(statement, headers=w.finance, params={"to": "9999-12-31"}).status_code \
        == 200


def test_another_institution_reading_a_payee_it_never_paid_gets_404(w):
    agreement = w.agreement()
    w.income(agreement["id"])
    for payee in ("r-a", INST):
        assert w.c.get(f"/v1/payees/{payee}/statement",
                       headers=w.other_office).status_code == 404
        assert w.c.get(f"/v1/payees/{payee}/statement", headers=w.office).status_code == 200


def test_a_policy_put_again_is_no_new_version_and_racing_changes_are_no_500(w):
    first = w.gross_policy(3600)
    assert w.gross_policy(3600) == first  # the same policy: no new version, no trail entry
    trail = w.c.get(f"/v1/institutions/{INST}/policy/history", headers=w.office).json()
    assert [e["to_status"] for e in trail["items"]].count(f"v{first['version']}") == 1

    start = threading.Barrier(6)

    def put(share: int) -> int:
        start.wait()
        return w.c.put(f"/v1/institutions/{INST}/policy", headers=w.office,
                       json={"researcher_share_bp": share, "basis": "net"}).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(put, range(4000, 4006)))
    assert set(statuses) <= {200, 409} and 200 in statuses, statuses
    current = w.c.get(f"/v1/institutions/{INST}/policy", headers=w.office).json()
    assert current["version"] == first["version"] + statuses.count(200)


def test_racing_retries_of_a_reversal_with_one_key_all_get_its_answer(w):
    agreement = w.agreement()
    d = w.income(agreement["id"]).json()
    headers = {**w.office, "Idempotency-Key": "reverse-race"}
    start = threading.Barrier(6)

    def reverse(i: int):
        start.wait()
        return w.c.post(f"/v1/distributions/{d['id']}/reverse", headers=headers,
                        json={"reason": "posted twice"})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(reverse, range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert len({a.json()["reversed_at"] for a in answers}) == 1
    assert trial_balance(w)["total_vnd"] == 0


def test_a_researcher_whose_id_is_an_organisations_never_reads_its_lines(w, tokens):
    org = f"INST-{uuid.uuid4().hex[:6]}"
    office = tokens.headers("off-9", "institution", org=org)
    asset = w.c.post("/v1/assets", headers=office, json={
        "kind": "patent", "title": "x", "authors": AUTHORS}).json()
    agreement = w.c.post(f"/v1/assets/{asset['id']}/agreements", headers=office, json={
        "kind": "licence", "counterparty": "FPT", "signed_on": "2026-11-01"}).json()
    d = w.income(agreement["id"], who=office).json()
    namesake = tokens.headers(org, "researcher", org="VNU")  # sub == the institution's id
    statement = w.c.get(f"/v1/payees/{org}/statement", headers=namesake)
    assert statement.status_code == 200 and statement.json()["items"] == []
    assert w.c.get(f"/v1/distributions/{d['id']}", headers=namesake).status_code == 404
    own = w.c.get(f"/v1/payees/{org}/statement", headers=office).json()
    assert [i["amount_vnd"] for i in own["items"]] == [d["institution_vnd"]]


def test_a_misspelt_field_is_refused_not_ignored(w, ipshare_db):
    agreement = w.agreement()
    before = ledger_rows(ipshare_db)
    r = w.c.post(f"/v1/agreements/{agreement['id']}/income", headers=w.office, json={
        "period": "Q4", "gross_vnd": 1_000_000, "cost_vnd": 400_000, "reference": "TYPO-1"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "cost_vnd"]
    assert ledger_rows(ipshare_db) == before


@pytest.mark.parametrize("body", [b'{"period": "\xff\xfe", "gross_vnd": 1}',
                                  b"[" * 100_000 + b"]" * 100_000,
                                  b'{"period": "p", "gross_vnd": '])
def test_an_unreadable_body_is_a_422_problem(w, body):
    agreement = w.agreement()
    r = w.c.post(f"/v1/agreements/{agreement['id']}/income", content=body,
                 headers={**w.office, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_a_policy_is_read_by_its_institution_its_researchers_and_the_books(w, tokens):
    path = f"/v1/institutions/{INST}/policy"
    for reader in (w.office, w.a, w.finance, w.auditor):
        assert w.c.get(path, headers=reader).status_code == 200
    firm = tokens.headers("firm-1", "sandbox_applicant", org="ACME")
    for outsider in (w.other_office, w.outsider, firm):
        r = w.c.get(path, headers=outsider)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_a_validation_error_names_the_callers_field_only(w):
    r = w.c.get("/v1/payees/r-a/statement", headers=w.finance, params={"from": "\xff"})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["errors"]} == {("query", "from")}
    assert r.json()["detail"].startswith("query.from: ")
