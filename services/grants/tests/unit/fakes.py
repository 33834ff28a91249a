"""An in-memory repository for the grant handlers' tests (the unit of work:
devkit.fakes)."""

from __future__ import annotations

import copy
from datetime import datetime

from grants.domain.grants import Breach, Grant, Result


class FakeRepository:
    """Keeps copies, so that only what a handler saves is kept (like a rollback)."""

    def __init__(self, *grants: Grant, applicant_id: str | None = None) -> None:
        self.grants = {g.id: copy.deepcopy(g) for g in grants}
        for stored in self.grants.values():
            stored.events.clear()  # what it emitted went out with it
        self.applicant_id = applicant_id
        self.results: list[tuple[str, Result]] = []
        self.breaches: list[tuple[str, Breach]] = []

    def grant(self, grant_id: str, *, for_update: bool = False) -> Grant | None:
        found = self.grants.get(grant_id)
        return copy.deepcopy(found) if found else None

    def applicant_of(self, grant: Grant) -> str | None:
        return self.applicant_id

    def save_grant(self, grant: Grant, now: datetime) -> None:
        assert grant.id in self.grants
        self.grants[grant.id] = copy.deepcopy(grant)

    def add_result(self, grant: Grant, result: Result) -> None:
        self.results.append((grant.id, result))

    def add_breach(self, grant: Grant, breach: Breach, now: datetime) -> None:
        self.breaches.append((grant.id, breach))
