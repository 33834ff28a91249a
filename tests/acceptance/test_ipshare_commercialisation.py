"""A grant's result becomes an asset of the grant's institution; its licence income is
split between the institution and the result's authors exactly to the đồng; a reversal
posts compensating entries, never an edit; a terminated agreement takes no more income.
Written from the contract's ipshare section, through the gateway's public paths."""

from __future__ import annotations

import time

import pytest

from . import grants_world as gw
from .desk import System, assert_created, assert_history, key, ok, problem, undocumented_events

INCOME = {"period": "2027-Q1", "gross_vnd": 100_000_001, "costs_vnd": 10_000_000,
          "reference": "INV-2027-001"}


@pytest.fixture(scope="module")
def cast(system: System) -> gw.Cast:
    return gw.Cast(system)


def grant_with_a_result(system: System, cast: gw.Cast) -> tuple[str, dict]:
    """An awarded grant whose team registered a patent (lead 70 %, member 30 %), and the
    ipshare asset its ``grants.result.registered`` event created."""
    app = gw.submitted(cast, gw.open_call(cast))
    for n in (1, 2):
        ok(cast.rev[n].post(f"/grants/v1/applications/{app['id']}/reviews", gw.REVIEW), 201)
    decided = ok(cast.pm.post(f"/grants/v1/applications/{app['id']}/decision",
                              {"decision": "approve", "awarded_vnd": 1_000_000_000}))
    grant_id = decided["grant_id"]
    ok(cast.lead.post(f"/grants/v1/grants/{grant_id}/results", {
        "kind": "patent", "title": "Salinity sensor",
        "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
                    {"researcher_id": "r-member", "name": "Member",
                     "contribution_bp": 3000}]}), 201)
    deadline = time.monotonic() + 10
    while not (assets := ok(cast.office.get("/ipshare/v1/assets",
                                            source_grant_id=grant_id))["items"]):
        assert time.monotonic() < deadline, "no asset from the registered result"
        time.sleep(0.05)
    return grant_id, assets[0]


def test_a_results_licence_income_is_split_reversed_and_closed(system: System,
                                                               cast: gw.Cast) -> None:
    grant_id, asset = grant_with_a_result(system, cast)
    assert (asset["institution_id"], asset["source_grant_id"]) == (gw.INSTITUTION, grant_id)
    assert [(a["researcher_id"], a["contribution_bp"]) for a in asset["authors"]] == [
        ("r-lead", 7000), ("r-member", 3000)]
    ipshare = "/ipshare/v1"

    # The institution's policy: at least 30 % to the researchers, of the net income.
    policy = f"{ipshare}/institutions/{gw.INSTITUTION}/policy"
    problem(cast.office.put(policy, {"researcher_share_bp": 2999, "basis": "net"}), 422,
            "researcher_share_bp")
    problem(cast.other_office.put(policy, {"researcher_share_bp": 3500, "basis": "net"}), 403)
    ok(cast.office.put(policy, {"researcher_share_bp": 3500, "basis": "net"}))

    agreement = ok(cast.office.post(f"{ipshare}/assets/{asset['id']}/agreements", {
        "kind": "licence", "counterparty": "Mekong Instruments JSC",
        "signed_on": "2026-12-01", "terms": "5 % royalty"}), 201)
    assert_created(agreement, asset_id=asset["id"])
    problem(cast.lead.post(f"{ipshare}/agreements/{agreement['id']}/income", INCOME), 403)
    problem(cast.finance.post(f"{ipshare}/agreements/{agreement['id']}/income",
                              {**INCOME, "costs_vnd": 200_000_000}), 422, "costs_vnd")

    posted = ok(cast.finance.post(f"{ipshare}/agreements/{agreement['id']}/income", INCOME,
                                  key=key()), 201)
    assert_created(posted, agreement_id=agreement["id"])
    assert (posted["asset_id"], posted["source_grant_id"], posted["status"]) == (
        asset["id"], grant_id, "posted")
    assert posted["basis_vnd"] == INCOME["gross_vnd"] - INCOME["costs_vnd"]
    assert posted["policy"]["researcher_share_bp"] == 3500
    assert posted["researcher_pool_vnd"] >= posted["basis_vnd"] * 3500 // 10_000
    lines = {line["payee_id"]: line for line in posted["lines"]}
    assert lines[gw.INSTITUTION]["payee_kind"] == "institution"
    assert lines[gw.INSTITUTION]["amount_vnd"] == posted["institution_vnd"]
    researchers = [lines["r-lead"], lines["r-member"]]
    assert {r["payee_kind"] for r in researchers} == {"researcher"}
    assert sum(r["amount_vnd"] for r in researchers) == posted["researcher_pool_vnd"]
    assert abs(lines["r-lead"]["amount_vnd"] * 3 - lines["r-member"]["amount_vnd"] * 7) <= 10
    assert sum(line["amount_vnd"] for line in posted["lines"]) == INCOME["gross_vnd"]
    problem(cast.finance.post(f"{ipshare}/agreements/{agreement['id']}/income", INCOME), 409,
            "reference")

    # Who reads the distribution: the books whole, a payee the totals and their own line.
    distribution = f"{ipshare}/distributions/{posted['id']}"
    assert ok(cast.auditor.get(distribution))["lines"] == posted["lines"]
    seen_by_member = ok(cast.member.get(distribution))
    assert [line["payee_id"] for line in seen_by_member["lines"]] == ["r-member"]
    assert seen_by_member["researcher_pool_vnd"] == posted["researcher_pool_vnd"]
    problem(cast.other_office.get(distribution), 404)
    problem(cast.pm.get(distribution), 403)

    # A reversal compensates every line; the statement carries the balance forward.
    problem(cast.office.post(f"{distribution}/reverse", {}), 422, "reason")
    reversed_ = ok(cast.office.post(f"{distribution}/reverse",
                                    {"reason": "the licensee's invoice was cancelled"}))
    assert reversed_["status"] == "reversed"
    problem(cast.finance.post(f"{distribution}/reverse", {"reason": "again"}), 409)
    statement = ok(cast.lead.get(f"{ipshare}/payees/r-lead/statement"))
    amount = lines["r-lead"]["amount_vnd"]
    assert [(i["amount_vnd"], i["balance_vnd"]) for i in statement["items"]] == [
        (amount, amount), (-amount, 0)]
    problem(cast.member.get(f"{ipshare}/payees/r-lead/statement"), 404)
    balance = ok(cast.finance.get(f"{ipshare}/ledger/trial-balance"))
    assert balance["total_vnd"] == 0
    assert {a["balance_vnd"] for a in balance["accounts"]} == {0}
    assert_history(system.trail(distribution), [("post", "posted"), ("reverse", "reversed")])
    assert system.trail(distribution)[-1]["reason"] == "the licensee's invoice was cancelled"

    # A terminated agreement takes no more income.
    agreement_path = f"{ipshare}/agreements/{agreement['id']}"
    ok(cast.office.post(f"{agreement_path}/terminate", {"reason": "licensee insolvent"}))
    problem(cast.finance.post(f"{agreement_path}/income",
                              {**INCOME, "reference": "INV-2027-002"}), 409)
    assert_history(system.trail(agreement_path), [("terminate", "terminated")])

    events = system.events("ipshare", posted["id"],
                           expect=["distribution.posted", "distribution.reversed"])
    by_kind = {e["type"].split(".")[4] + "." + e["type"].split(".")[5]: e["data"]
               for e in events}
    assert by_kind["distribution.posted"]["source_grant_id"] == grant_id
    assert sorted(line["amount_vnd"] for line in by_kind["distribution.reversed"]["lines"]) \
        == sorted(-line["amount_vnd"] for line in posted["lines"])


def test_every_answer_above_is_declared_in_the_openapi_document(system: System) -> None:
    assert system.undeclared("/ipshare/") == []


def test_every_event_above_is_documented_in_asyncapi(system: System) -> None:
    assert undocumented_events(system, "ipshare") == []
