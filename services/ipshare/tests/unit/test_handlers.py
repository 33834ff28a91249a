"""The command handlers on an in-memory unit of work and repository: what each command
stores, audits and emits, and that a refused command leaves nothing behind."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest

from devkit.fakes import FakeUnitOfWork
from ipshare import handlers
from ipshare.domain.assets import (
    Agreement,
    AgreementKind,
    AgreementStatus,
    Asset,
    AssetKind,
    Author,
    Policy,
)
from ipshare.domain.distributions import Distribution, Posting
from ipshare.domain.errors import DuplicateReference, IllegalTransition, InvalidInput
from ipshare.domain.split import Basis
from ipshare.repository import IncomeInputs
from servicekit.auth import Principal
from servicekit.problems import Forbidden, NotFound

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
OFFICE = Principal(sub="off-1", name="Office", org="HUST", roles=frozenset({"institution"}))
OTHER_OFFICE = Principal(sub="off-9", name="Other", org="VNU", roles=frozenset({"institution"}))
FINANCE = Principal(sub="fin-1", name="Finance", org="MOF", roles=frozenset({"finance"}))
AUTHOR = Principal(sub="r-a", name="A", org="HUST", roles=frozenset({"researcher"}))
AUTHORS = [Author("r-a", "A", 7000), Author("r-b", "B", 3000)]
ASSET = Asset("as-1", "HUST", AssetKind.PATENT, "Sensor", AUTHORS, "g-1", None, "off-1", NOW)
LICENCE = Agreement("ag-1", "as-1", "HUST", AgreementKind.LICENCE, "g-1",
                    counterparty="FPT", signed_on=date(2026, 11, 1), created_at=NOW)



class FakeRepository:
    """Keeps copies, so that only what a handler saves is kept (like a rollback)."""

    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {}
        self.agreements: dict[str, Agreement] = {}
        self.policies: dict[str, list[tuple[Policy, datetime]]] = {}
        self.distributions: dict[str, Distribution] = {}

    def asset(self, asset_id: str) -> Asset | None:
        return copy.deepcopy(self.assets.get(asset_id))

    def is_author(self, asset_id: str, researcher_id: str) -> bool:
        return asset_id in self.assets and self.assets[asset_id].is_author(researcher_id)

    def add_asset(self, asset: Asset) -> None:
        assert asset.id not in self.assets
        self.assets[asset.id] = copy.deepcopy(asset)

    def agreement(self, agreement_id: str, *, for_update: bool = False) -> Agreement | None:
        return copy.deepcopy(self.agreements.get(agreement_id))

    def add_agreement(self, agreement: Agreement) -> None:
        assert agreement.id not in self.agreements
        self.agreements[agreement.id] = copy.deepcopy(agreement)

    def save_agreement(self, agreement: Agreement, now: datetime) -> None:
        assert agreement.id in self.agreements
        self.agreements[agreement.id] = copy.deepcopy(agreement)

    def policy(self, institution_id: str) -> tuple[Policy, datetime | None]:
        versions = self.policies.get(institution_id)
        return versions[-1] if versions else (Policy(institution_id), None)

    def add_policy(self, policy: Policy, changed_by: str, now: datetime) -> None:
        self.policies.setdefault(policy.institution_id, []).append((policy, now))

    def distribution(self, distribution_id: str, *, for_update: bool = False
                     ) -> Distribution | None:
        return copy.deepcopy(self.distributions.get(distribution_id))

    def save_reversal(self, distribution: Distribution, reversal: Posting) -> None:
        assert distribution.id in self.distributions
        assert distribution.postings[-1] == reversal
        self.distributions[distribution.id] = copy.deepcopy(distribution)

def unit_of_work(user: Principal | None) -> FakeUnitOfWork:
    return FakeUnitOfWork("ipshare", user, NOW)


def inputs(agreement: Agreement = LICENCE, standing_id: str | None = None) -> IncomeInputs:
    return IncomeInputs(agreement, Policy("HUST", 3000, Basis.GROSS, 1), AUTHORS, standing_id)


def post(uow: FakeUnitOfWork, found: IncomeInputs | None, user: Principal = OFFICE):
    return handlers.post_income(uow, found, user, "ag-1", reference="INV-1",
                                period="2026-Q4", gross_vnd=1_000_000_007, costs_vnd=0)


@pytest.fixture
def repo() -> FakeRepository:
    repo = FakeRepository()
    repo.add_asset(ASSET)
    repo.add_agreement(LICENCE)
    return repo


def test_posting_income_writes_the_distribution_its_lines_and_balanced_entries():
    uow = unit_of_work(OFFICE)

    d = post(uow, inputs())

    assert [r["id"] for r in uow.rows["distributions"]] == [d.id]
    assert [(r["payee_id"], r["amount_vnd"]) for r in uow.rows["distribution_lines"]] == [
        ("r-a", 210_000_002), ("r-b", 90_000_001), ("HUST", 700_000_004)]
    ledger = uow.rows["ledger_entries"]
    assert sum(e["amount_vnd"] for e in ledger) == 0 and {e["kind"] for e in ledger} == {
        "distribution"}
    [record] = uow.audit
    assert (record["action"], record["actor"], record["role"], record["to_status"]) == (
        "post", "off-1", "institution", "posted")
    [event] = uow.events
    assert event.get_type() == "vn.gov.most.ipshare.distribution.posted.v1"
    assert event.get_subject() == d.id
    assert event.get_data()["lines"][2] == {"payee_id": "HUST", "payee_kind": "institution",
                                            "amount_vnd": 700_000_004}


@pytest.mark.parametrize("found, user, refusal", [
    (None, OFFICE, NotFound),  # no such agreement
    (inputs(), OTHER_OFFICE, NotFound),  # another institution's: private
    (inputs(), AUTHOR, NotFound),  # a researcher never posts
    (inputs(standing_id="d-0"), OFFICE, DuplicateReference),
    (inputs(Agreement("ag-1", "as-1", "HUST", AgreementKind.LICENCE,
                      status=AgreementStatus.TERMINATED)), FINANCE, IllegalTransition),
])
def test_refused_income_writes_nothing(found, user, refusal):
    uow = unit_of_work(user)

    with pytest.raises(refusal):
        post(uow, found, user)

    assert uow.rows == {}


def test_reversing_saves_the_reversal_and_emits_the_negated_distribution(repo):
    posted = post(unit_of_work(OFFICE), inputs())
    repo.distributions[posted.id] = posted
    uow = unit_of_work(FINANCE)

    handlers.reverse_distribution(uow, repo, FINANCE, posted.id, "issued twice")

    stored = repo.distributions[posted.id]
    assert stored.status == "reversed" and stored.postings[1].kind == "reversal"
    [record] = uow.audit
    assert (record["action"], record["from_status"], record["to_status"], record["reason"]) == (
        "reverse", "posted", "reversed", "issued twice")
    [event] = uow.events
    assert event.get_type() == "vn.gov.most.ipshare.distribution.reversed.v1"
    assert event.get_data()["gross_vnd"] == -1_000_000_007
    assert event.get_data()["reversal_id"] == stored.postings[1].id


def test_a_payee_reads_a_distribution_but_cannot_reverse_it(repo):
    posted = post(unit_of_work(OFFICE), inputs())
    repo.distributions[posted.id] = posted
    uow = unit_of_work(AUTHOR)

    assert handlers.visible_distribution(repo, AUTHOR, posted.id).id == posted.id
    with pytest.raises(Forbidden):
        handlers.reverse_distribution(uow, repo, AUTHOR, posted.id, "mine")
    assert repo.distributions[posted.id].status == "posted" and uow.rows == {}


def test_a_result_from_a_grant_registers_the_same_asset_as_an_officer_would(repo):
    uow = unit_of_work(Principal(sub="system:ipshare.assets-from-results", name="c", org="",
                                 roles=frozenset({"system"})))

    asset = handlers.register_asset(
        uow, repo, institution_id="HUST", kind=AssetKind.SOFTWARE, title="Yield model",
        authors=AUTHORS, source_grant_id="g-2", source_result_id="res-1",
        cause={"from_event": "e-1", "grant_id": "g-2"})

    assert repo.assets[asset.id].source_result_id == "res-1"
    [record] = uow.audit
    assert (record["actor"], record["role"], record["data"]) == (
        "system:ipshare.assets-from-results", "system", {"from_event": "e-1", "grant_id": "g-2"})
    [event] = uow.events
    assert event.get_type() == "vn.gov.most.ipshare.asset.registered.v1"
    assert event.get_data()["authors"][0] == {"researcher_id": "r-a", "name": "A",
                                              "contribution_bp": 7000}


def test_an_asset_whose_shares_do_not_add_up_is_refused_and_not_stored(repo):
    uow = unit_of_work(OFFICE)

    with pytest.raises(InvalidInput, match="10000"):
        handlers.register_asset(uow, repo, institution_id="HUST", kind=AssetKind.PATENT,
                                title="x", authors=[Author("r-a", "A", 9000)])

    assert list(repo.assets) == ["as-1"] and uow.rows == {}


def test_signing_an_agreement_carries_the_assets_grant_in_its_event(repo):
    uow = unit_of_work(OFFICE)

    agreement = handlers.sign_agreement(uow, repo, OFFICE, "as-1",
                                        kind=AgreementKind.SPIN_OFF, counterparty="Spin Co",
                                        signed_on=date(2026, 11, 2), terms="")

    assert repo.agreements[agreement.id].in_kind
    [event] = uow.events
    assert event.get_data()["source_grant_id"] == "g-1"
    assert event.get_data()["signed_on"] == "2026-11-02"


def test_only_the_owning_institution_terminates_and_only_once(repo):
    with pytest.raises(NotFound):  # another institution does not see it
        handlers.terminate_agreement(unit_of_work(OTHER_OFFICE), repo, OTHER_OFFICE, "ag-1",
                                     "no")
    uow = unit_of_work(OFFICE)

    handlers.terminate_agreement(uow, repo, OFFICE, "ag-1", "ended early")

    stored = repo.agreements["ag-1"]
    assert (stored.status, stored.termination_reason) == ("terminated", "ended early")
    assert [e.get_type() for e in uow.events] == [
        "vn.gov.most.ipshare.agreement.terminated.v1"]
    with pytest.raises(IllegalTransition):
        handlers.terminate_agreement(unit_of_work(OFFICE), repo, OFFICE, "ag-1", "again")


def test_a_policy_put_again_makes_no_new_version(repo):
    first = unit_of_work(OFFICE)
    handlers.change_policy(first, repo, OFFICE, "HUST", 4000, Basis.GROSS)
    again = unit_of_work(OFFICE)

    policy = handlers.change_policy(again, repo, OFFICE, "HUST", 4000, Basis.GROSS)

    assert policy.version == 1 and len(repo.policies["HUST"]) == 1
    assert [e.get_data() for e in first.events] == [
        {"institution_id": "HUST", "researcher_share_bp": 4000, "basis": "gross",
         "version": 1}]
    assert again.rows == {}


def test_a_policy_below_the_legal_floor_is_refused(repo):
    uow = unit_of_work(OFFICE)

    with pytest.raises(InvalidInput, match="legal floor"):
        handlers.change_policy(uow, repo, OFFICE, "HUST", 2999, Basis.NET)

    assert "HUST" not in repo.policies and uow.rows == {}
