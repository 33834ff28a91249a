"""The cast of the sandbox's workflows and their HTTP calls, shared by the API tests."""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient

from devkit.testing import Tokens

FIRM_ORG = "firm-fintech-1"
# The risk assessment and every other confidential text carries a planted secret the
# public register must never show.
SECRET = "SECRET-7f3a"

PROPOSAL: dict[str, Any] = {
    "firm_name": "Công ty Cổ phần Tài chính Số",
    "enterprise_code": "0101234567",
    "sector": "fintech",
    "technology": "P2P lending platform",
    "description": "Peer-to-peer loans to small businesses",
    "exemptions": [{"provision": "p2p_lending",
                    "justification": "no licence category exists yet"}],
    "scope": {"regions": ["HN", "HCM"], "max_participants": 5000,
              "max_transaction_vnd": 50_000_000},
    "requested_months": 18,
    "safeguards": "escrow accounts",
    "risk_assessment": f"credit and fraud risks {SECRET}",
    "exit_plan": "wind down over three months",
}

CRITERIA = ("in_scope", "genuine_innovation", "consumer_benefit", "need_for_sandbox",
            "readiness", "risk_controls")


def assessment(failed: tuple[str, ...] = (), note: str = "ok") -> dict[str, Any]:
    return {"criteria": {c: {"pass": c not in failed, "note": f"{note} {SECRET}"}
                         for c in CRITERIA},
            "summary": f"summary {SECRET}"}


def approval(today: date, **change: Any) -> dict[str, Any]:
    body = {"decision": "approve", "conditions": ["monthly escrow audit"],
            "limits": {"regions": ["HN"], "max_participants": 1000,
                       "max_transaction_vnd": 10_000_000},
            "starts_on": (today + timedelta(days=30)).isoformat(),
            "ends_on": (today + timedelta(days=30 + 365)).isoformat()}
    body.update(change)
    return body


class World:
    """Tokens for every role and the calls of a sandbox workflow."""

    def __init__(self, client: TestClient, tokens: Tokens, firm: str | None = None) -> None:
        self.c = client
        suffix = uuid.uuid4().hex[:6]
        self.firm_org = firm or f"{FIRM_ORG}-{suffix}"
        self.owner = tokens.headers(f"owner-{suffix}", "sandbox_applicant", org=self.firm_org)
        self.other_firm = tokens.headers(f"other-{suffix}", "sandbox_applicant",
                                         org=f"other-firm-{suffix}")
        self.r1 = tokens.headers(f"rev-1-{suffix}", "reviewer", org="MOST")
        self.r2 = tokens.headers(f"rev-2-{suffix}", "reviewer", org="SBV")
        self.r3 = tokens.headers(f"rev-3-{suffix}", "reviewer", org="MOST")
        self.conflicted = tokens.headers(f"rev-c-{suffix}", "reviewer", org=self.firm_org)
        self.pm = tokens.headers(f"pm-{suffix}", "program_manager", org="MOST")
        self.auditor = tokens.headers(f"aud-{suffix}", "auditor", org="SAV")
        self.researcher = tokens.headers(f"res-{suffix}", "researcher", org="HUST")

    def call(self, method: str, path: str, headers: dict | None, status: int,
             json: Any = None) -> dict[str, Any]:
        response = self.c.request(method, path, headers=headers, json=json)
        assert response.status_code == status, response.text
        if status == 304 or not response.content:
            return {}
        return response.json()

    def draft(self, **change: Any) -> dict[str, Any]:
        body = copy.deepcopy(PROPOSAL)
        body.update(change)
        return self.call("POST", "/v1/applications", self.owner, 201, body)

    def submitted(self, **change: Any) -> dict[str, Any]:
        app = self.draft(**change)
        return self.call("POST", f"/v1/applications/{app['id']}/submit", self.owner, 200)

    def assessed(self, **change: Any) -> dict[str, Any]:
        app = self.submitted(**change)
        for reviewer in (self.r1, self.r2):
            self.call("POST", f"/v1/applications/{app['id']}/assessments", reviewer, 201,
                      assessment())
        return self.call("GET", f"/v1/applications/{app['id']}", self.owner, 200)

    def approved(self, today: date, **change: Any) -> dict[str, Any]:
        app = self.assessed()
        return self.call("POST", f"/v1/applications/{app['id']}/decision", self.r3, 200,
                         approval(today, **change))
