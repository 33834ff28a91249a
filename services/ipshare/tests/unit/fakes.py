"""An in-memory repository for handler tests (the unit of work: devkit.fakes)."""

from __future__ import annotations

import copy
from datetime import datetime

from ipshare.domain.assets import Agreement, Asset, Policy
from ipshare.domain.distributions import Distribution, Posting


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
