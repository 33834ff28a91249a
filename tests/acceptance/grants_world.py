"""The grants' cast and bodies, in the contract's field names."""

from __future__ import annotations

from typing import Any

from .desk import System, key, ok

AGENCY, INSTITUTION = "MOST", "HUST"


def call_body(**change: Any) -> dict[str, Any]:
    return {"title": "AI for the Mekong delta", "description": "risky, high-value research",
            "budget_vnd": 50_000_000_000, "max_award_vnd": 5_000_000_000,
            "opens_at": "2026-01-01T00:00:00Z", "closes_at": "2099-01-01T00:00:00Z",
            **change}


def application_body(call_id: str, **change: Any) -> dict[str, Any]:
    return {"call_id": call_id, "title": "Salinity forecasting", "abstract": "SECRET-ABSTRACT",
            "institution_id": INSTITUTION, "requested_vnd": 1_500_000_000,
            "risk_level": "high",
            "team": [{"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                      "contribution_bp": 7000},
                     {"researcher_id": "r-member", "name": "Member", "role": "member",
                      "contribution_bp": 3000}],
            "milestones": [{"title": "M1", "deliverable": "sensor network",
                            "verification": "demo", "due_date": "2027-06-30",
                            "tranche_bp": 4000},
                           {"title": "M2", "deliverable": "forecast model",
                            "verification": "dataset DOI", "due_date": "2028-06-30",
                            "tranche_bp": 6000}], **change}


REVIEW = {"scores": {"novelty": 5, "feasibility": 4}, "recommendation": "fund",
          "comment": "SECRET-COMMENT solid", "conflict_of_interest": False}


def assignment_body(sub: str, org: str, due_on: str, name: str = "") -> dict[str, Any]:
    return {"reviewer_id": sub, "reviewer_org": org, "name": name or sub.title(),
            "due_on": due_on}


class Cast:
    def __init__(self, system: System) -> None:
        self.pm = system.caller("pm-1", "program_manager", AGENCY)
        self.other_pm = system.caller("pm-hn", "program_manager", "DOST-HN")
        self.lead = system.caller("r-lead", "researcher", INSTITUTION)
        self.member = system.caller("r-member", "researcher", INSTITUTION)
        self.office = system.caller("off-1", "institution", INSTITUTION)
        self.other_office = system.caller("off-vnu", "institution", "VNU")
        self.rev = {n: system.caller(f"rev-{n}", "reviewer", org) for n, org in
                    ((1, "VAST"), (2, "NAFOSTED"), (3, "SBV"), (4, "VNU"), (5, "IOIT"))}
        self.rev_hust = system.caller("rev-hust", "reviewer", INSTITUTION)
        self.finance = system.caller("fin-1", "finance", "MOF")
        self.auditor = system.caller("aud-1", "auditor", "SAV")
        self.firm = system.caller("firm-1", "sandbox_applicant", "fintech-1")


def open_call(cast: Cast, **change: Any) -> dict[str, Any]:
    call = ok(cast.pm.post("/grants/v1/calls", call_body(**change), key=key()), 201)
    return ok(cast.pm.post(f"/grants/v1/calls/{call['id']}/open"))


def submitted(cast: Cast, call: dict[str, Any], **change: Any) -> dict[str, Any]:
    draft = ok(cast.lead.post("/grants/v1/applications",
                              application_body(call["id"], **change)), 201)
    if call["requires_endorsement"]:
        ok(cast.office.post(f"/grants/v1/applications/{draft['id']}/endorse"))
    return ok(cast.lead.post(f"/grants/v1/applications/{draft['id']}/submit"))
