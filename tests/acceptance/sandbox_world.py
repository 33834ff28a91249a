"""The sandbox's cast and bodies, in the contract's field names."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from .desk import Caller, System, key, ok

CRITERIA = ("in_scope", "genuine_innovation", "consumer_benefit", "need_for_sandbox",
            "readiness", "risk_controls")


def proposal(**change: Any) -> dict[str, Any]:
    return {
        "firm_name": "Công ty Cổ phần Tài chính Số", "enterprise_code": "0101234567",
        "sector": "fintech", "technology": "P2P lending platform",
        "description": "Peer-to-peer loans to small businesses",
        "exemptions": [{"provision": "p2p_lending",
                        "justification": "no licence category exists yet"}],
        "scope": {"regions": ["HN", "HCM"], "max_participants": 5000,
                  "max_transaction_vnd": 50_000_000},
        "requested_months": 18, "safeguards": "escrow accounts",
        "risk_assessment": "SECRET-RISK credit and fraud risks",
        "exit_plan": "wind down over three months", **change}


def assessment(failed: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"criteria": {c: {"pass": c not in failed, "note": f"note on {c}"}
                         for c in CRITERIA},
            "summary": "SECRET-NOTE fit for a pilot"}


def approval(starts_on: date, ends_on: date, **limits: Any) -> dict[str, Any]:
    return {"decision": "approve", "conditions": ["monthly escrow audit"],
            "limits": {"regions": ["HN"], "max_participants": 1000,
                       "max_transaction_vnd": 10_000_000, **limits},
            "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat()}


class Cast:
    """The firm, three reviewers of other organisations, one of the firm's own, an
    auditor, and someone of the wrong role for every desk."""

    def __init__(self, system: System, firm_org: str = "fintech-1") -> None:
        self.firm = system.caller(f"firm-{firm_org}", "sandbox_applicant", firm_org)
        self.rev_1 = system.caller("rev-1", "reviewer", "SBV")
        self.rev_2 = system.caller("rev-2", "reviewer", "MOST")
        self.rev_3 = system.caller("rev-3", "reviewer", "MOF")
        self.rev_firm = system.caller(f"rev-of-{firm_org}", "reviewer", firm_org)
        self.auditor = system.caller("aud-1", "auditor", "SAV")
        self.researcher = system.caller("r-1", "researcher", "HUST")
        self.pm = system.caller("pm-1", "program_manager", "MOST")


def submitted(cast: Cast, **change: Any) -> dict[str, Any]:
    draft = ok(cast.firm.post("/sandbox/v1/applications", proposal(**change), key=key()),
               201)
    return ok(cast.firm.post(f"/sandbox/v1/applications/{draft['id']}/submit"))


def assessed(cast: Cast, **change: Any) -> dict[str, Any]:
    """Submitted and assessed (all criteria pass) by rev-1 and rev-2."""
    app = submitted(cast, **change)
    for reviewer in (cast.rev_1, cast.rev_2):
        ok(reviewer.post(f"/sandbox/v1/applications/{app['id']}/assessments",
                         assessment()), 201)
    return app


def active_pilot(system: System, cast: Cast, caller: Caller | None = None
                 ) -> dict[str, Any]:
    """Approved by rev-3 from today for a year, started by the scheduler today."""
    app = assessed(cast)
    today = system.today
    decided = ok((caller or cast.rev_3).post(
        f"/sandbox/v1/applications/{app['id']}/decision",
        approval(today, date(today.year + 1, today.month, 1))))
    system.supervise()
    system.clock.advance(timedelta(minutes=1))  # later decisions come later
    pilot = ok(cast.firm.get(f"/sandbox/v1/pilots/{decided['pilot_id']}"))
    assert pilot["status"] == "active", pilot
    return pilot
