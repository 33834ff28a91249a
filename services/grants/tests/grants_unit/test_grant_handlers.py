"""The grant commands on an in-memory unit of work and repository: what each command
stores, audits and emits, and that a refused command leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devkit.fakes import FakeUnitOfWork
from grants.domain.applications import (
    Application,
    ConflictOfInterest,
    MilestonePlan,
    Recommendation,
    Review,
    RiskLevel,
    TeamMember,
)
from grants.domain.calls import Call
from grants.domain.decisions import DecisionNo
from grants.domain.errors import IllegalTransition, InvalidInput
from grants.domain.grants import (
    BreachKind,
    Grant,
    GrantStatus,
    MilestoneStatus,
    Outcome,
)
from grants.handlers import grants as handlers
from servicekit.auth import Principal
from servicekit.problems import Forbidden, NotFound

from .fakes import FakeRepository

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PM = Principal(sub="pm-1", name="PM", org="MOST", roles=frozenset({"program_manager"}))
OTHER_AGENCY_PM = Principal(sub="pm-2", name="PM", org="DOST-HN",
                            roles=frozenset({"program_manager"}))
LEAD = Principal(sub="r-0", name="Lead", org="HUST", roles=frozenset({"researcher"}))
OUTSIDER = Principal(sub="r-9", name="Out", org="VNU", roles=frozenset({"researcher"}))


def awarded_grant() -> Grant:
    """Grant g-1 of agency MOST to HUST: team r-0 (lead, who drafted it) and r-1, three
    milestones m1..m3, decided with number 1/QĐ-MOST."""
    call = Call.draft(id="call-1", agency_id="MOST", title="t", description="",
                      budget_vnd=3_000_000_000, max_award_vnd=1_000_000_001,
                      opens_at=NOW - timedelta(days=1), closes_at=NOW + timedelta(days=60),
                      min_reviews=2)
    call.open(NOW)
    app = Application.draft(
        id="app-1", call=call, applicant_id="r-0", institution_id="HUST", title="t",
        abstract="a", requested_vnd=1_000_000_001, risk_level=RiskLevel.HIGH,
        team=[TeamMember("r-0", "R0", "lead", 7000), TeamMember("r-1", "R1", "member", 3000)],
        milestones=[MilestonePlan(f"M{i}", "d", "v", NOW.date() + timedelta(days=30 * i), bp)
                    for i, bp in enumerate((3333, 3333, 3334), start=1)],
        today=NOW.date())
    app.submit(call, NOW)
    for reviewer in ("rev-1", "rev-2"):
        app.add_review(Review(reviewer, "VAST", {"novelty": 4}, Recommendation.FUND, "ok",
                              NOW), declared_conflict=False)
    app.approve(call, 1_000_000_001, NOW, grant_id="g-1",
                take_number=lambda: DecisionNo("1/QĐ-MOST", 2026))
    return Grant.award(app, grant_id="g-1", milestone_ids=["m1", "m2", "m3"], now=NOW)


def unit_of_work(user: Principal) -> FakeUnitOfWork:
    return FakeUnitOfWork("grants", user, NOW)


def reported(repo: FakeRepository, milestone_id: str = "m1") -> None:
    handlers.report_milestone(unit_of_work(LEAD), repo, LEAD, "g-1", milestone_id,
                              {"evidence": "https://example.org/report.pdf", "summary": "done"})


@pytest.fixture
def repo() -> FakeRepository:
    return FakeRepository(awarded_grant())


def test_accepting_a_reported_milestone_saves_it_audits_it_and_releases_its_tranche(repo):
    reported(repo)
    uow = unit_of_work(PM)

    handlers.accept_milestone(uow, repo, PM, "g-1", "m1")

    m1 = repo.grants["g-1"].milestone("m1")
    assert m1.status == MilestoneStatus.ACCEPTED and m1.released_vnd == m1.tranche_vnd
    [record] = uow.audit
    assert (record["action"], record["actor"], record["role"]) == (
        "accept_milestone", "pm-1", "program_manager")
    assert record["data"] == {"milestone_id": "m1", "released_vnd": m1.tranche_vnd}
    [event] = uow.events
    assert event.get_type() == "vn.gov.most.grants.tranche.released.v1"
    assert event.get_data()["amount_vnd"] == m1.tranche_vnd


def test_closing_takes_the_next_number_of_the_agencys_register_and_emits_grant_closed(repo):
    uow = unit_of_work(PM)

    grant = handlers.close_grant(uow, repo, PM, "g-1", outcome=Outcome.FAILED_IN_GOOD_FAITH,
                                 justification="the method did not work",
                                 procedures_followed=True, breach=None, refund_vnd=None,
                                 partial=[])

    assert repo.grants["g-1"].status == GrantStatus.CLOSED
    assert (grant.decision.decision_no, grant.decision.year) == ("1/QĐ-MOST", 2026)
    [record] = uow.audit
    assert (record["action"], record["from_status"], record["to_status"]) == (
        "close", "active", "closed")
    assert record["data"]["attested_conditions"] and record["data"]["liability"] == "exempt"
    assert [e.get_type() for e in uow.events] == ["vn.gov.most.grants.grant.closed.v1"]


@pytest.mark.parametrize("user, refusal", [
    (OTHER_AGENCY_PM, Forbidden),  # another agency's programme manager
    (Principal(sub="r-1", name="PM on the team", org="MOST",
               roles=frozenset({"program_manager"})), ConflictOfInterest),
])
def test_a_refused_closure_changes_nothing_and_takes_no_number(repo, user, refusal):
    uow = unit_of_work(user)

    with pytest.raises(refusal):
        handlers.close_grant(uow, repo, user, "g-1", outcome=Outcome.COMPLETED,
                             justification="", procedures_followed=None, breach=None,
                             refund_vnd=None, partial=[])

    assert repo.grants["g-1"].status == GrantStatus.ACTIVE
    assert uow.rows == {} and uow.registers == {}


def test_the_programme_manager_who_drafted_the_application_cannot_accept_its_milestones():
    repo = FakeRepository(awarded_grant(), applicant_id="pm-1")
    reported(repo)

    with pytest.raises(ConflictOfInterest):
        handlers.accept_milestone(unit_of_work(PM), repo, PM, "g-1", "m1")

    assert repo.grants["g-1"].milestone("m1").status == MilestoneStatus.REPORTED


def test_only_the_team_reports_and_an_outsider_does_not_see_the_grant(repo):
    with pytest.raises(NotFound):
        handlers.report_milestone(unit_of_work(OUTSIDER), repo, OUTSIDER, "g-1", "m1",
                                  {"evidence": "x"})
    with pytest.raises(NotFound):
        handlers.report_milestone(unit_of_work(LEAD), repo, LEAD, "g-1", "m-none",
                                  {"evidence": "x"})
    assert repo.grants["g-1"].milestone("m1").status == MilestoneStatus.PENDING


def test_a_rejection_needs_a_reason_and_a_reported_milestone(repo):
    with pytest.raises(IllegalTransition):
        handlers.reject_milestone(unit_of_work(PM), repo, PM, "g-1", "m1", "not yet")
    reported(repo)
    with pytest.raises(InvalidInput):
        handlers.reject_milestone(unit_of_work(PM), repo, PM, "g-1", "m1", "  ")
    uow = unit_of_work(PM)

    handlers.reject_milestone(uow, repo, PM, "g-1", "m1", "evidence unreadable")

    assert repo.grants["g-1"].milestone("m1").reject_reason == "evidence unreadable"
    assert uow.audit[0]["reason"] == "evidence unreadable" and uow.events == []


def test_a_breach_is_stored_audited_and_emitted(repo):
    uow = unit_of_work(PM)

    breach = handlers.record_breach(uow, repo, PM, "g-1", kind=BreachKind.MISUSE,
                                    description="funds spent on a car")

    assert repo.breaches == [("g-1", breach)] and breach.recorded_by == "pm-1"
    assert uow.audit[0]["data"] == {"breach_id": breach.id, "kind": "misuse"}
    assert [e.get_type() for e in uow.events] == ["vn.gov.most.grants.breach.recorded.v1"]
