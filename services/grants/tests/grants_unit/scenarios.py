"""The people and aggregates the command handler tests start from."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from devkit.fakes import FakeUnitOfWork
from grants.domain.applications import Application, MilestonePlan, RiskLevel, TeamMember
from grants.domain.assignments import Assignment
from grants.domain.calls import Call, ReviewMode
from grants.handlers.calls import CallTerms, drafted
from servicekit.auth import Principal

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 09:00 in Hanoi
TODAY = date(2026, 11, 23)


def person(sub: str, org: str, *roles: str) -> Principal:
    return Principal(sub=sub, name=sub, org=org, roles=frozenset(roles))


PM = person("pm-1", "MOST", "program_manager")
OTHER_AGENCY_PM = person("pm-2", "DOST-HN", "program_manager")
LEAD = person("r-0", "HUST", "researcher")  # drafted app-1, leads its team
MEMBER = person("r-1", "HUST", "researcher")  # on app-1's team
HOST = person("inst-1", "HUST", "institution")
REVIEWER = person("rev-1", "VAST", "reviewer")
OTHER_REVIEWER = person("rev-2", "IMECH", "reviewer")

TERMS = CallTerms(title="AI for rice", description="Yield models", budget_vnd=3_000_000_000,
                  max_award_vnd=1_000_000_000, opens_at=NOW - timedelta(days=1),
                  closes_at=NOW + timedelta(days=60), min_reviews=1)
TEAM = [TeamMember("r-0", "R0", "lead", 7000), TeamMember("r-1", "R1", "member", 3000)]
PLAN = [MilestonePlan("M1", "model", "benchmark", TODAY + timedelta(days=90), 4000),
        MilestonePlan("M2", "field trial", "report", TODAY + timedelta(days=300), 6000)]


def unit_of_work(user: Principal) -> FakeUnitOfWork:
    return FakeUnitOfWork("grants", user, NOW)


def drafted_call(*, review_mode: ReviewMode = ReviewMode.OPEN,
                 requires_endorsement: bool = False) -> Call:
    """call-1 of agency MOST, a draft."""
    return drafted("call-1", "MOST", replace(TERMS, review_mode=review_mode,
                                             requires_endorsement=requires_endorsement))


def open_call(*, review_mode: ReviewMode = ReviewMode.OPEN,
              requires_endorsement: bool = False) -> Call:
    """call-1, opened."""
    call = drafted_call(review_mode=review_mode, requires_endorsement=requires_endorsement)
    call.open(NOW)
    return call


def drafted_application(call: Call, *, requested_vnd: int = 800_000_000) -> Application:
    """app-1, drafted by r-0 of HUST."""
    return Application.draft(
        id="app-1", call=call, applicant_id="r-0", institution_id="HUST", title="Rice AI",
        abstract="a", requested_vnd=requested_vnd, risk_level=RiskLevel.HIGH,
        team=list(TEAM), milestones=list(PLAN), today=TODAY)


def submitted_application(call: Call) -> Application:
    app = drafted_application(call)
    app.submit(call, NOW)
    return app


def assignment(app: Application, call: Call, reviewer: Principal = REVIEWER, *,
               id: str = "as-1") -> Assignment:
    """``reviewer`` assigned to ``app`` by pm-1, due in two weeks."""
    return Assignment.assign(
        id=id, application=app, call=call, reviewer_id=reviewer.sub,
        reviewer_org=reviewer.org, name=reviewer.name, due_on=TODAY + timedelta(days=14),
        assigned_by="pm-1", earlier=[], today=TODAY, now=NOW)
