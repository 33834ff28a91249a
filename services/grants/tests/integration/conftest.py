"""The cast and the HTTP calls of the review workflow's API tests (drafts, endorsement,
withdrawal, assignments, declarations, tiers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from servicekit import audit
from servicekit.outbox import OUTBOX

AGENCY = "MOST"
INSTITUTION = "HUST"


class Desk:
    """Tokens for every role of the workflow and the calls the tests make."""

    def __init__(self, client, tokens, database_url: str) -> None:
        self.c = client
        self.tokens = tokens
        self.url = database_url
        self.pm = tokens.headers("pm-1", "program_manager", org=AGENCY)
        self.pm_other = tokens.headers("pm-2", "program_manager", org="DOST-HN")
        self.lead = tokens.headers("r-lead", "researcher", org=INSTITUTION)
        self.member = tokens.headers("r-member", "researcher", org=INSTITUTION)
        self.outsider = tokens.headers("r-out", "researcher", org="VNU")
        self.office = tokens.headers("off-1", "institution", org=INSTITUTION)
        self.other_office = tokens.headers("off-2", "institution", org="VNU")
        self.finance = tokens.headers("fin-1", "finance", org="MOF")
        self.auditor = tokens.headers("aud-1", "auditor", org="SAV")
        self.admin = tokens.headers("adm-1", "admin", org="MOST")

    def reviewer(self, sub: str, org: str = "VAST") -> dict[str, str]:
        return self.tokens.headers(sub, "reviewer", org=org)

    # --- HTTP ---------------------------------------------------------------------------
    def ok(self, method: str, path: str, headers: dict, status: int = 200,
           **kwargs: Any) -> dict:
        r = self.c.request(method, path, headers=headers, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def refused(self, method: str, path: str, headers: dict, status: int,
                **kwargs: Any) -> dict:
        """The problem+json of a refusal; asserts that nothing was written."""
        with self.unchanged():
            r = self.c.request(method, path, headers=headers, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        assert r.headers["content-type"] == "application/problem+json"
        return r.json()

    @contextmanager
    def unchanged(self) -> Iterator[None]:
        """Nothing audited and no event staged inside the block."""
        before = self._counts()
        yield
        assert self._counts() == before, "a refused request wrote something"

    def _counts(self) -> tuple[int, int]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return (conn.execute(select(func.count()).select_from(audit.AUDIT)).scalar_one(),
                        conn.execute(select(func.count()).select_from(OUTBOX)).scalar_one())
        finally:
            engine.dispose()

    def events(self, key: str) -> list[dict[str, Any]]:
        """The events staged for aggregate ``key``: [{type (short), data}]."""
        import json

        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(OUTBOX.c.event_type, OUTBOX.c.value)
                                    .where(OUTBOX.c.key == key)
                                    .order_by(OUTBOX.c.id)).all()
        finally:
            engine.dispose()
        return [{"type": t.removeprefix("vn.gov.most.grants.").removesuffix(".v1"),
                 "data": json.loads(v)["data"]} for t, v in rows]

    # --- the workflow -------------------------------------------------------------------
    def call(self, *, open_: bool = True, headers: dict | None = None, **terms: Any) -> dict:
        body = {"title": "Call", "budget_vnd": 10_000_000_000, "max_award_vnd": 5_000_000_000,
                "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z",
                "min_reviews": 2, **terms}
        call = self.ok("POST", "/v1/calls", headers or self.pm, 201, json=body)
        if open_:
            call = self.ok("POST", f"/v1/calls/{call['id']}/open", headers or self.pm)
        return call

    def body(self, call_id: str, **overrides: Any) -> dict:
        body = {
            "call_id": call_id, "title": "Rice yield forecasting", "abstract": "ML",
            "institution_id": INSTITUTION, "requested_vnd": 1_000_000_000,
            "risk_level": "high",
            "team": [
                {"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                 "contribution_bp": 7000},
                {"researcher_id": "r-member", "name": "Member", "role": "member",
                 "contribution_bp": 3000},
            ],
            "milestones": [
                {"title": "M1", "deliverable": "D1", "verification": "demo",
                 "due_date": "2027-03-15", "tranche_bp": 5000},
                {"title": "M2", "deliverable": "D2", "verification": "dataset",
                 "due_date": "2027-09-15", "tranche_bp": 5000},
            ],
        }
        body.update(overrides)
        return body

    def draft(self, call_id: str, **overrides: Any) -> dict:
        return self.ok("POST", "/v1/applications", self.lead, 201,
                       json=self.body(call_id, **overrides))

    def submitted(self, call_id: str, **overrides: Any) -> dict:
        app = self.draft(call_id, **overrides)
        return self.ok("POST", f"/v1/applications/{app['id']}/submit", self.lead)

    def review(self, app_id: str, who: dict, status: int = 201) -> dict:
        return self.ok("POST", f"/v1/applications/{app_id}/reviews", who, status, json={
            "scores": {"novelty": 5, "feasibility": 4}, "recommendation": "fund",
            "comment": "solid", "conflict_of_interest": False})

    def history(self, path: str, headers: dict | None = None) -> list[dict]:
        return self.ok("GET", f"{path}/history", headers or self.auditor)["items"]


@pytest.fixture
def desk(client, tokens, grants_db) -> Desk:
    return Desk(client, tokens, grants_db)
