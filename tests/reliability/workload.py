"""What the reliability tests send, and how big: the sizes, the cast, the calls.

Sizes come from ``RELIABILITY_<NAME>`` environment variables (``README.md`` lists them);
the defaults keep the suite within a few minutes on a 2-core machine.

:class:`Platform` makes the users' calls on any client with ``request`` (a service's
``TestClient``, or an ``httpx.Client`` on the gateway, where each service's paths sit
under its name), and sets up what the loads act on: grants with reported milestones,
a result become an ipshare asset, agreements, pilots.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

from devkit.testing import Tokens, wait_for

INSTITUTION = "HUST"
AUTHORS = [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
           {"researcher_id": "r-two", "name": "Two", "contribution_bp": 3000}]
GROSS_VND = 1_000_000_007  # domain.md's example: 210,000,002 / 90,000,001 / 700,000,004
FINANCE_CONSUMER = (Path(__file__).resolve().parents[2] / "examples" / "finance_consumer"
                    / "finance_consumer.py")


def size(name: str, default: int | float) -> int | float:
    """``RELIABILITY_<NAME>`` from the environment, else ``default`` (of its type)."""
    value = os.environ.get(f"RELIABILITY_{name}", "").strip()
    return type(default)(value) if value else default


class Platform:
    """The cast's calls (see the module's docstring)."""

    def __init__(self, clients: Mapping[str, Any], tokens: Tokens,
                 prefixes: Mapping[str, str] | None = None) -> None:
        self.clients, self.tokens = clients, tokens
        self.prefixes = prefixes or {}
        self.pm = tokens.headers("pm-1", "program_manager", org="MOST")
        self.lead = tokens.headers("r-lead", "researcher", org=INSTITUTION)
        self.reviewers = [tokens.headers("rev-1", "reviewer", org="VAST"),
                          tokens.headers("rev-2", "reviewer", org="NAFOSTED")]
        self.office = tokens.headers("tto-1", "institution", org=INSTITUTION)
        self.finance = tokens.headers("fin-1", "finance", org="MOF")

    def path(self, service: str, path: str) -> str:
        return self.prefixes.get(service, "") + path

    def call(self, service: str, method: str, path: str, who: Mapping[str, str],
             body: Any = None, expect: int = 200, **headers: str) -> Any:
        response = self.clients[service].request(
            method, self.path(service, path), json=body, headers={**who, **headers})
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        return response.json()

    # --- grants --------------------------------------------------------------------------

    def awarded_grant(self, milestones: int) -> dict[str, Any]:
        """A grant of 1,000,000,000 VND with ``milestones`` milestones, each reported."""
        call = self.call("grants", "POST", "/v1/calls", self.pm, {
            "title": "Mekong salinity", "budget_vnd": 5_000_000_000,
            "max_award_vnd": 1_000_000_000, "opens_at": "2026-01-01T00:00:00Z",
            "closes_at": "2030-01-01T00:00:00Z"}, expect=201)
        self.call("grants", "POST", f"/v1/calls/{call['id']}/open", self.pm)
        share = 10_000 // milestones
        plan = [{"title": f"Milestone {n + 1}", "deliverable": "D", "verification": "V",
                 "due_date": "2029-01-01",
                 "tranche_bp": share + (10_000 - share * milestones if n == 0 else 0)}
                for n in range(milestones)]
        application = self.call("grants", "POST", "/v1/applications", self.lead, {
            "call_id": call["id"], "title": "Salinity sensors", "abstract": "",
            "institution_id": INSTITUTION, "requested_vnd": 1_000_000_000,
            "risk_level": "high",
            "team": [{"researcher_id": a["researcher_id"], "name": a["name"], "role": "PI",
                      "contribution_bp": a["contribution_bp"]} for a in AUTHORS],
            "milestones": plan}, expect=201)
        self.call("grants", "POST", f"/v1/applications/{application['id']}/submit",
                  self.lead)
        for reviewer in self.reviewers:
            self.call("grants", "POST", f"/v1/applications/{application['id']}/reviews",
                      reviewer, {"scores": {"merit": 5}, "recommendation": "fund",
                                 "comment": "", "conflict_of_interest": False}, expect=201)
        decided = self.call("grants", "POST", f"/v1/applications/{application['id']}/decision",
                            self.pm, {"decision": "approve", "awarded_vnd": 1_000_000_000})
        grant = self.call("grants", "GET", f"/v1/grants/{decided['grant_id']}", self.pm)
        for milestone in grant["milestones"]:
            self.call("grants", "POST",
                      f"/v1/grants/{grant['id']}/milestones/{milestone['id']}/report",
                      self.lead, {"summary": "delivered",
                                  "evidence": [{"kind": "dataset", "ref": "doi:10.1/x"}]})
        return grant

    def asset_from_a_result(self, grant: dict[str, Any], timeout: float = 60.0
                            ) -> dict[str, Any]:
        """A result registered on ``grant``, once ipshare has made it an asset."""
        self.call("grants", "POST", f"/v1/grants/{grant['id']}/results", self.lead, {
            "kind": "patent", "title": "Low-cost salinity sensor", "authors": AUTHORS},
            expect=201)

        def asset() -> dict[str, Any] | None:
            items = self.call("ipshare", "GET", f"/v1/assets?source_grant_id={grant['id']}",
                              self.office)["items"]
            return items[0] if items else None

        found = wait_for(asset, timeout, pause=0.5)
        assert found, "grants.result.registered did not become an ipshare asset"
        return found

    def agreement(self, asset_id: str) -> dict[str, Any]:
        return self.call("ipshare", "POST", f"/v1/assets/{asset_id}/agreements", self.office,
                         {"kind": "licence", "counterparty": "Mekong Sensors JSC",
                          "signed_on": "2026-11-01", "terms": "5 years"}, expect=201)

    def trial_balance(self) -> dict[str, Any]:
        return self.call("ipshare", "GET", "/v1/ledger/trial-balance", self.finance)


def income_body(reference: str) -> dict[str, Any]:
    return {"period": "2026-Q4", "gross_vnd": GROSS_VND, "costs_vnd": 0,
            "reference": reference}


def finance_consumer() -> ModuleType:
    """The reference finance consumer, imported by path (an example, not a package)."""
    name = "finance_consumer"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FINANCE_CONSUMER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def pay(bootstrap: str, out: Path) -> Counter[tuple[str, str, str, int]]:
    """Run the reference finance consumer once, in a group of its own, over the whole
    ipshare topic; the lines of every batch it wrote: ``(distribution_id, payee_id,
    event_id, amount_vnd)`` → how many times paid."""
    status = finance_consumer().main([
        "--bootstrap", bootstrap, "--out", str(out), "--group",
        f"finance-{uuid.uuid4().hex[:8]}", "--once", "--idle-seconds", "2"])
    assert status == 0
    paid: Counter[tuple[str, str, str, int]] = Counter()
    for batch in sorted(out.glob("batch-*.csv")):
        with open(batch, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                paid[(row["distribution_id"], row["payee_id"], row["event_id"],
                      int(row["amount_vnd"]))] += 1
    return paid


# --- sandbox -------------------------------------------------------------------------------

CRITERIA = ("in_scope", "genuine_innovation", "consumer_benefit", "need_for_sandbox",
            "readiness", "risk_controls")


def approved_pilot(client: Any, tokens: Tokens, starts_on: date, ends_on: date,
                   firm: str) -> str:
    """A telecom pilot (quarterly reports) approved to run from ``starts_on``, on a
    sandbox app whose clock reads ``starts_on`` (its decision cannot start in the past);
    the pilot's id."""
    owner = tokens.headers(f"owner-{firm}", "sandbox_applicant", org=firm)
    reviewers = [tokens.headers(f"rev-{n}", "reviewer", org=org)
                 for n, org in ((1, "MOST"), (2, "MIC"), (3, "MOST"))]

    def call(method: str, path: str, who: dict[str, str], body: Any = None,
             expect: int = 200) -> Any:
        response = client.request(method, path, json=body, headers=who)
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        return response.json()

    application = call("POST", "/v1/applications", owner, {
        "firm_name": f"Firm {firm}", "enterprise_code": "0101234567", "sector": "telecom",
        "technology": "Low-orbit satellite broadband", "description": "",
        "exemptions": [{"provision": "spectrum_licensing",
                        "justification": "no licence category exists yet"}],
        "scope": {"regions": ["HN", "HCM"], "max_participants": 5000,
                  "max_transaction_vnd": 50_000_000},
        "requested_months": 60, "safeguards": "capped subscriptions",
        "risk_assessment": "interference", "exit_plan": "refund subscribers"}, expect=201)
    call("POST", f"/v1/applications/{application['id']}/submit", owner)
    for reviewer in reviewers[:2]:
        call("POST", f"/v1/applications/{application['id']}/assessments", reviewer, {
            "criteria": {c: {"pass": True, "note": "ok"} for c in CRITERIA},
            "summary": "fit for a pilot"}, expect=201)
    decided = call("POST", f"/v1/applications/{application['id']}/decision", reviewers[2], {
        "decision": "approve", "conditions": ["monthly interference report"],
        "limits": {"regions": ["HN"], "max_participants": 1000,
                   "max_transaction_vnd": 10_000_000},
        "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat()})
    return decided["pilot_id"]


def quarters_over(starts_on: date, today: date) -> list[str]:
    """Every quarter from the one ``starts_on`` falls in to the last one over by
    ``today`` (``2023-Q1``, ...)."""
    year, quarter = starts_on.year, (starts_on.month - 1) // 3 + 1
    over = []
    while date(year + (quarter == 4), quarter * 3 % 12 + 1, 1) <= today:
        over.append(f"{year}-Q{quarter}")
        year, quarter = (year + 1, 1) if quarter == 4 else (year, quarter + 1)
    return over


def report_body(period: str) -> dict[str, Any]:
    """A pilot report within the approved limits (no breach)."""
    return {"period": period, "participants": 120, "transactions_vnd": 5_000_000,
            "largest_transaction_vnd": 250_000, "regions": ["HN"],
            "kpis": {"uptime_pct": 99.5}, "complaints": 1}
