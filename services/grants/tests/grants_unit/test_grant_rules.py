"""Application, review, decision and grant rules as plain objects (domain.md §1–2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grants.domain.applications import (
    Application,
    ApplicationStatus,
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
    Author,
    BreachKind,
    Grant,
    GrantClosed,
    Liability,
    MilestoneStatus,
    Outcome,
    PartialCompletion,
    ResultKind,
    TrancheReleased,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


class Register:
    """An agency's register in memory: each call takes the next number."""

    def __init__(self, register: str = "QĐ-MOST", year: int = 2026) -> None:
        self.register, self.year, self.taken = register, year, 0

    def __call__(self) -> DecisionNo:
        self.taken += 1
        return DecisionNo(f"{self.taken}/{self.register}", self.year)


def open_call(**kw) -> Call:
    fields = dict(id="call-1", agency_id="MOST", title="t", description="",
                  budget_vnd=3_000_000_000, max_award_vnd=1_000_000_001,
                  opens_at=NOW - timedelta(days=1), closes_at=NOW + timedelta(days=60),
                  min_reviews=2)
    fields.update(kw)
    call = Call.draft(**fields)
    call.open(NOW)
    return call


def team(*shares: int) -> list[TeamMember]:
    return [TeamMember(f"r-{i}", f"R{i}", "member", s) for i, s in enumerate(shares)]


def plans(*bps: int) -> list[MilestonePlan]:
    return [MilestonePlan(f"M{i}", "d", "v", TODAY + timedelta(days=30 * (i + 1)), bp)
            for i, bp in enumerate(bps)]


def application(call: Call, **kw) -> Application:
    fields = dict(id="app-1", call=call, applicant_id="r-0", institution_id="HUST",
                  title="t", abstract="a", requested_vnd=1_000_000_001,
                  risk_level=RiskLevel.HIGH, team=team(7000, 3000),
                  milestones=plans(3333, 3333, 3334), today=TODAY)
    fields.update(kw)
    return Application.draft(**fields)


def review(reviewer: str, org: str = "VAST") -> Review:
    return Review(reviewer, org, {"novelty": 4, "feasibility": 5}, Recommendation.FUND, "ok",
                  NOW)


def reviewed(call: Call) -> Application:
    app = application(call)
    app.submit(call, NOW)
    app.add_review(review("rev-1"), declared_conflict=False)
    app.add_review(review("rev-2"), declared_conflict=False)
    return app


def awarded_grant(amount: int = 1_000_000_001) -> Grant:
    call = open_call()
    app = reviewed(call)
    app.approve(call, amount, NOW, grant_id="g-1",
                    take_number=Register())
    return Grant.award(app, grant_id="g-1", milestone_ids=["m1", "m2", "m3"], now=NOW)


# --- applications --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"team": team(7000, 2999)}, "contribution_bp"),
        ({"team": team(10000, 0)}, "contribution_bp"),
        ({"team": [TeamMember("r-1", "a", "m", 5000), TeamMember("r-1", "b", "m", 5000)]},
         "team"),
        ({"milestones": plans(5000, 5001)}, "tranche_bp"),
        ({"milestones": [MilestonePlan("M", "d", "v", TODAY, 10000)]}, "due_date"),
        ({"requested_vnd": 1_000_000_002}, "requested_vnd"),
        ({"requested_vnd": 0}, "requested_vnd"),
        ({"team": []}, "team"),
        ({"milestones": []}, "milestones"),
    ],
)
def test_an_invalid_application_names_the_field(kw, field):
    with pytest.raises(InvalidInput) as err:
        application(open_call(), **kw)
    assert err.value.field == field


def test_submission_happens_only_while_the_call_is_open():
    call = open_call()
    app = application(call)
    with pytest.raises(IllegalTransition):
        app.submit(call, NOW + timedelta(days=61))
    app.submit(call, NOW)
    assert app.status == ApplicationStatus.SUBMITTED
    with pytest.raises(IllegalTransition):
        app.submit(call, NOW)


@pytest.mark.parametrize(("reviewer", "org"), [("rev-x", "HUST"), ("r-1", "VAST")])
def test_conflicted_reviewers_are_refused(reviewer, org):
    call = open_call()
    app = application(call)
    app.submit(call, NOW)
    with pytest.raises(ConflictOfInterest):
        app.add_review(review(reviewer, org), declared_conflict=False)
    assert app.reviews == []


def test_a_reviewer_reviews_once_and_a_draft_is_not_reviewed():
    call = open_call()
    app = application(call)
    with pytest.raises(IllegalTransition):
        app.add_review(review("rev-1"), declared_conflict=False)
    app.submit(call, NOW)
    app.add_review(review("rev-1"), declared_conflict=False)
    assert app.status == ApplicationStatus.UNDER_REVIEW
    with pytest.raises(IllegalTransition):
        app.add_review(review("rev-1"), declared_conflict=False)


def test_a_decision_needs_the_calls_minimum_reviews():
    call = open_call()
    app = application(call)
    app.submit(call, NOW)
    app.add_review(review("rev-1"), declared_conflict=False)
    with pytest.raises(IllegalTransition, match="at least 2 reviews"):
        app.approve(call, 100, NOW, grant_id="g-1",
                    take_number=Register())


def test_approval_is_bounded_by_request_max_award_and_remaining_budget():
    call = open_call(budget_vnd=1_500_000_000)
    app = reviewed(call)
    with pytest.raises(InvalidInput):
        app.approve(call, 1_000_000_002, NOW, grant_id="g-1",
                    take_number=Register())
    call.awarded_vnd = 1_000_000_000
    with pytest.raises(IllegalTransition, match="remaining budget"):
        app.approve(call, 500_000_001, NOW, grant_id="g-1",
                    take_number=Register())
    app.approve(call, 500_000_000, NOW, grant_id="g-1",
                    take_number=Register())
    assert call.remaining_budget_vnd == 0


def test_an_award_and_a_rejection_carry_the_next_number_of_the_agency_register():
    call = open_call()
    register = Register()
    approved, rejected = reviewed(call), reviewed(call)
    approved.approve(call, 100, NOW, grant_id="g-1", take_number=register)
    rejected.reject(call, "out of scope", NOW, take_number=register)
    assert approved.decision == DecisionNo("1/QĐ-MOST", 2026)
    assert rejected.decision == DecisionNo("2/QĐ-MOST", 2026)
    assert (rejected.events[-1].decision_no, rejected.events[-1].decision_year) == (
        "2/QĐ-MOST", 2026)
    grant = Grant.award(approved, grant_id="g-1", milestone_ids=["m1", "m2", "m3"], now=NOW)
    assert grant.award_decision == DecisionNo("1/QĐ-MOST", 2026)
    assert grant.events[-1].decision_no == "1/QĐ-MOST"


def test_a_refused_decision_takes_no_number():
    call = open_call(budget_vnd=1_000_000_001)
    register = Register()
    app = application(call)
    app.submit(call, NOW)
    with pytest.raises(IllegalTransition, match="reviews"):
        app.approve(call, 100, NOW, grant_id="g-1", take_number=register)
    app = reviewed(call)
    call.awarded_vnd = 1_000_000_000
    with pytest.raises(IllegalTransition, match="remaining budget"):
        app.approve(call, 2, NOW, grant_id="g-1", take_number=register)
    with pytest.raises(InvalidInput, match="reason"):
        app.reject(call, " ", NOW, take_number=register)
    grant = awarded_grant()
    with pytest.raises(IllegalTransition, match="every milestone"):
        grant.close(outcome=Outcome.COMPLETED, justification="", now=NOW,
                    take_number=register)
    assert register.taken == 0


def test_a_closure_carries_its_own_number():
    grant = awarded_grant()
    register = Register()
    register.taken = 16
    grant.close(outcome=Outcome.FAILED_IN_GOOD_FAITH, justification="it did not work",
                procedures_followed=True, now=NOW, take_number=register)
    assert grant.decision == DecisionNo("17/QĐ-MOST", 2026)
    closed = grant.events[-1]
    assert (closed.decision_no, closed.decision_year) == ("17/QĐ-MOST", 2026)


# --- grants ----------------------------------------------------------------------------

def test_an_award_schedules_exact_tranches():
    grant = awarded_grant()
    assert [m.tranche_vnd for m in grant.milestones] == [333_300_000, 333_300_000,
                                                         333_400_001]


def test_accepting_a_reported_milestone_releases_its_tranche_to_the_institution():
    grant = awarded_grant()
    with pytest.raises(IllegalTransition):
        grant.accept_milestone("m1", NOW)
    grant.report_milestone("m1", {"summary": "done"})
    grant.accept_milestone("m1", NOW)
    event = grant.events[-1]
    assert isinstance(event, TrancheReleased)
    assert (event.payee_id, event.amount_vnd, event.completion_bp) == ("HUST", 333_300_000,
                                                                       10000)
    assert grant.disbursed_vnd == 333_300_000


def test_a_rejected_report_can_be_reported_again():
    grant = awarded_grant()
    grant.report_milestone("m1", {"summary": "draft"})
    grant.reject_milestone("m1", "dataset missing")
    grant.report_milestone("m1", {"summary": "with dataset"})
    assert grant.milestone("m1").status == MilestoneStatus.REPORTED


def test_an_overdue_milestone_is_flagged_until_reported_and_can_be_rescheduled():
    grant = awarded_grant()
    m = grant.milestone("m1")
    late = m.due_date + timedelta(days=1)
    assert m.overdue(late)
    grant.reschedule_milestone("m1", late + timedelta(days=30), "field season", today=late)
    assert not grant.milestone("m1").overdue(late)
    grant.report_milestone("m1", {})
    assert not grant.milestone("m1").overdue(late + timedelta(days=365))


def test_failed_in_good_faith_owes_no_refund_and_is_exempt():
    grant = awarded_grant()
    grant.report_milestone("m1", {})
    grant.accept_milestone("m1", NOW)
    grant.close(outcome=Outcome.FAILED_IN_GOOD_FAITH, justification="the hypothesis failed",
                procedures_followed=True, now=NOW, take_number=Register())
    assert grant.refund_due_vnd == 0
    assert grant.liability == Liability.EXEMPT
    assert grant.cancelled_vnd == 333_300_000 + 333_400_001
    assert isinstance(grant.events[-1], GrantClosed)


def test_failed_in_good_faith_needs_the_attestation_and_no_recorded_breach():
    grant = awarded_grant()
    with pytest.raises(InvalidInput):
        grant.close(outcome=Outcome.FAILED_IN_GOOD_FAITH, justification="x",
                    procedures_followed=False, now=NOW, take_number=Register())
    grant.record_breach(breach_id="b1", kind=BreachKind.MISUSE, description="laptops",
                        recorded_by="pm", now=NOW)
    with pytest.raises(IllegalTransition, match="breach"):
        grant.close(outcome=Outcome.FAILED_IN_GOOD_FAITH, justification="x",
                    procedures_followed=True, now=NOW, take_number=Register())


def test_terminated_for_breach_refunds_at_most_what_was_disbursed():
    grant = awarded_grant()
    grant.report_milestone("m1", {})
    grant.accept_milestone("m1", NOW)
    with pytest.raises(InvalidInput):
        grant.close(outcome=Outcome.TERMINATED_FOR_BREACH, justification="j", breach="fraud",
                    refund_vnd=333_300_001, now=NOW, take_number=Register())
    grant.close(outcome=Outcome.TERMINATED_FOR_BREACH, justification="j",
                breach="fabricated data", refund_vnd=333_300_000, now=NOW,
                take_number=Register())
    assert grant.refund_due_vnd == 333_300_000
    assert grant.liability == Liability.NOT_EXEMPT


def test_terminated_for_breach_takes_the_breach_recorded_on_the_grant():
    grant = awarded_grant()
    with pytest.raises(InvalidInput, match="breach"):
        grant.close(outcome=Outcome.TERMINATED_FOR_BREACH, justification="j", now=NOW,
                    take_number=Register())
    grant.record_breach(breach_id="b1", kind=BreachKind.ABANDONMENT,
                        description="the team left", recorded_by="pm-1", now=NOW)
    grant.close(outcome=Outcome.TERMINATED_FOR_BREACH, justification="j", now=NOW,
                take_number=Register())
    assert grant.breach_stated == "abandonment: the team left"
    assert grant.liability == Liability.NOT_EXEMPT


def test_partially_completed_releases_the_floor_of_the_completed_share():
    grant = awarded_grant()
    grant.report_milestone("m2", {})
    grant.close(outcome=Outcome.PARTIALLY_COMPLETED, justification="half way",
                partial=[PartialCompletion("m2", 3333)], now=NOW, take_number=Register())
    m2 = grant.milestone("m2")
    assert m2.released_vnd == 333_300_000 * 3333 // 10000
    assert m2.released_vnd + m2.cancelled_vnd == m2.tranche_vnd
    assert grant.disbursed_vnd + grant.cancelled_vnd == grant.awarded_vnd
    released = [e for e in grant.events if isinstance(e, TrancheReleased)]
    assert released[-1].completion_bp == 3333


def test_completed_needs_every_milestone_accepted_and_a_grant_closes_once():
    grant = awarded_grant()
    with pytest.raises(IllegalTransition):
        grant.close(outcome=Outcome.COMPLETED, justification="", now=NOW,
                    take_number=Register())
    for mid in ("m1", "m2", "m3"):
        grant.report_milestone(mid, {})
        grant.accept_milestone(mid, NOW)
    grant.close(outcome=Outcome.COMPLETED, justification="", now=NOW,
                take_number=Register())
    assert grant.disbursed_vnd == 1_000_000_001
    with pytest.raises(IllegalTransition):
        grant.close(outcome=Outcome.COMPLETED, justification="", now=NOW,
                    take_number=Register())


def test_result_authors_shares_must_sum_to_10000():
    grant = awarded_grant()
    with pytest.raises(InvalidInput):
        grant.register_result(result_id="res", kind=ResultKind.PATENT, title="t",
                              authors=[Author("r-0", "a", 6000)], registered_by="r-0",
                              now=NOW)
    grant.register_result(result_id="res", kind=ResultKind.PATENT, title="t",
                          authors=[Author("r-0", "a", 6000), Author("r-1", "b", 4000)],
                          registered_by="r-0", now=NOW)
    assert grant.events[-1].institution_id == "HUST"


