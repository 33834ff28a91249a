"""Application rules: the firm's proposal, the decision clock, assessment, four eyes and
the approved terms."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from sandbox.domain.applications import (
    CRITERIA,
    Application,
    ApplicationDecided,
    ApplicationStatus,
    ApplicationSubmitted,
    ApprovalTerms,
    Assessment,
    Criterion,
    Exemption,
    Proposal,
    Scope,
)
from sandbox.domain.errors import ConflictOfInterest, IllegalTransition, InvalidInput
from sandbox.domain.sectors import load_profiles

PROFILES = load_profiles()
FINTECH = PROFILES.get("fintech")
TELECOM = PROFILES.get("telecom")
TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
FIRM = "firm-org"

PROPOSAL = Proposal(
    firm_name="Công ty Tài chính Số", enterprise_code="0101234567", sector="fintech",
    technology="P2P lending platform", description="Peer-to-peer loans for SMEs",
    exemptions=(Exemption("p2p_lending", "no licence category exists yet"),),
    scope=Scope(("HN", "HCM"), 5000, 50_000_000), requested_months=18,
    safeguards="escrow accounts", risk_assessment="SECRET-RISK", exit_plan="wind down")


def numbers():
    n = iter(range(1, 1000))
    return lambda: (f"{next(n)}/QĐ-TNKS-SBV", 2026)


def draft(proposal: Proposal = PROPOSAL) -> Application:
    return Application.draft(id="app-1", owner_id="owner", organisation_id=FIRM,
                             proposal=proposal, profile=PROFILES.get(proposal.sector))


def assessment(reviewer: str, org: str = "MOST", failed: tuple[str, ...] = ()) -> Assessment:
    return Assessment(id=f"as-{reviewer}", reviewer_id=reviewer, reviewer_org=org,
                      submission=0,
                      criteria={c: Criterion(c not in failed, "note") for c in CRITERIA},
                      summary="ok", assessed_at=NOW)


def submitted(today: date = TODAY) -> Application:
    app = draft()
    app.submit(FINTECH, today, NOW)
    return app


def assessed(*reviewers: str) -> Application:
    app = submitted()
    for r in reviewers:
        app.assess(assessment(r))
    return app


TERMS = ApprovalTerms(conditions=("monthly audit of escrow",),
                      limits=Scope(("HN",), 1000, 10_000_000),
                      starts_on=date(2027, 1, 1), ends_on=date(2028, 6, 30))


# --- the proposal --------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    ({"enterprise_code": "12345"}, "enterprise_code"),
    ({"enterprise_code": "01012345ab"}, "enterprise_code"),
    ({"requested_months": 25}, "requested_months"),
    ({"requested_months": 0}, "requested_months"),
    ({"exemptions": ()}, "exemptions"),
    ({"exemptions": (Exemption("mining", "x"),)}, "exemptions"),
    ({"scope": Scope((), 10)}, "scope"),
])
def test_a_proposal_breaking_a_rule_is_refused_naming_the_field(change, field) -> None:
    with pytest.raises(InvalidInput) as refused:
        draft(replace(PROPOSAL, **change))
    assert refused.value.field == field


def test_requested_months_are_bounded_by_the_sectors_initial_maximum() -> None:
    telecom = replace(PROPOSAL, sector="telecom", requested_months=60, exemptions=(
        Exemption("spectrum licensing", "x"),))
    assert draft(telecom).supervising_agency == "MIC"
    with pytest.raises(InvalidInput, match="1 to 24"):
        draft(replace(PROPOSAL, requested_months=60))


# --- the decision clock --------------------------------------------------------------------

def test_submission_starts_the_clock_at_the_sectors_deadline() -> None:
    app = submitted()
    assert app.status == ApplicationStatus.SUBMITTED
    assert app.decision_due_on == TODAY + timedelta(days=90)
    assert not app.overdue(TODAY + timedelta(days=90))
    assert app.overdue(TODAY + timedelta(days=91))
    event = app.events[-1]
    assert isinstance(event, ApplicationSubmitted)
    assert event.decision_due_on == app.decision_due_on and event.submission == 1


def test_the_clock_stops_while_changes_are_requested_and_runs_on_at_resubmission() -> None:
    app = submitted()
    app.request_changes("MOST", ["explain the escrow"], TODAY + timedelta(days=30), NOW)
    assert app.status == ApplicationStatus.CHANGES_REQUESTED
    assert app.decision_due_on is None and not app.overdue(TODAY + timedelta(days=500))
    back = TODAY + timedelta(days=100)
    app.edit(replace(PROPOSAL, safeguards="escrow and insurance"), FINTECH)
    app.submit(FINTECH, back, NOW)
    assert app.decision_due_on == back + timedelta(days=60)  # 30 of 90 days were used
    assert app.submission == 2


def test_a_decided_or_withdrawn_application_is_not_overdue() -> None:
    app = submitted()
    app.withdraw("changed our plans", TODAY, NOW)
    assert app.status == ApplicationStatus.WITHDRAWN
    assert not app.overdue(TODAY + timedelta(days=365))


# --- the owner's steps ---------------------------------------------------------------------

def test_only_a_draft_or_an_application_with_changes_requested_is_edited() -> None:
    app = submitted()
    with pytest.raises(IllegalTransition):
        app.edit(PROPOSAL, FINTECH)
    with pytest.raises(IllegalTransition):
        app.submit(FINTECH, TODAY, NOW)


def test_withdrawal_needs_a_reason_and_comes_before_the_decision() -> None:
    with pytest.raises(InvalidInput):
        submitted().withdraw("  ", TODAY, NOW)
    app = assessed("r1", "r2")
    app.reject("r3", "MOST", ["not innovative"], TODAY, NOW, number=numbers())
    with pytest.raises(IllegalTransition):
        app.withdraw("too late", TODAY, NOW)


# --- assessment ----------------------------------------------------------------------------

def test_an_assessment_moves_the_application_under_assessment() -> None:
    app = assessed("r1")
    assert app.status == ApplicationStatus.UNDER_ASSESSMENT
    assert [a.submission for a in app.assessments] == [1]


def test_a_reviewer_of_the_applicants_organisation_may_not_assess() -> None:
    with pytest.raises(ConflictOfInterest):
        submitted().assess(assessment("r1", org=FIRM))


def test_one_assessment_per_reviewer_and_submission() -> None:
    app = assessed("r1")
    with pytest.raises(IllegalTransition, match="already assessed"):
        app.assess(assessment("r1"))


def test_an_assessment_judges_all_six_criteria() -> None:
    partial = replace(assessment("r1"), criteria={"in_scope": Criterion(True, "")})
    with pytest.raises(InvalidInput) as refused:
        submitted().assess(partial)
    assert refused.value.field == "criteria"


def test_a_draft_is_not_assessed() -> None:
    with pytest.raises(IllegalTransition):
        draft().assess(assessment("r1"))


# --- four eyes and approval ----------------------------------------------------------------

def test_approval_with_two_passing_assessments_by_others_is_numbered() -> None:
    app = assessed("r1", "r2")
    app.approve("r3", "MOST", TERMS, FINTECH, TODAY, NOW, pilot_id="p-1", number=numbers())
    assert app.status == ApplicationStatus.APPROVED
    assert (app.decision_no, app.decision_year, app.pilot_id) == ("1/QĐ-TNKS-SBV", 2026, "p-1")
    assert app.decision_due_on is None
    decided = app.events[-1]
    assert isinstance(decided, ApplicationDecided) and decided.limits["regions"] == ["HN"]


def test_approval_needs_two_different_reviewers() -> None:
    with pytest.raises(IllegalTransition, match="four eyes"):
        assessed("r1").approve("r3", "MOST", TERMS, FINTECH, TODAY, NOW, pilot_id="p",
                               number=numbers())


def test_the_decider_may_not_approve_on_their_own_assessment() -> None:
    with pytest.raises(ConflictOfInterest, match="four eyes"):
        assessed("r1", "r2").approve("r2", "MOST", TERMS, FINTECH, TODAY, NOW, pilot_id="p",
                                     number=numbers())


def test_a_decider_of_the_applicants_organisation_may_not_decide() -> None:
    with pytest.raises(ConflictOfInterest):
        assessed("r1", "r2").approve("r3", FIRM, TERMS, FINTECH, TODAY, NOW, pilot_id="p",
                                     number=numbers())


def test_a_failed_criterion_bars_approval_but_not_rejection() -> None:
    app = submitted()
    app.assess(assessment("r1"))
    app.assess(assessment("r2", failed=("readiness",)))
    with pytest.raises(IllegalTransition, match="readiness"):
        app.approve("r3", "MOST", TERMS, FINTECH, TODAY, NOW, pilot_id="p", number=numbers())
    app.reject("r3", "MOST", ["not ready"], TODAY, NOW, number=numbers())
    assert app.status == ApplicationStatus.REJECTED and app.reasons == ("not ready",)


def test_assessments_of_an_earlier_submission_do_not_count() -> None:
    app = assessed("r1", "r2")
    app.request_changes("MOST", ["fix"], TODAY, NOW)
    app.submit(FINTECH, TODAY, NOW)
    app.assess(assessment("r1"))  # the same reviewer assesses the new submission
    with pytest.raises(IllegalTransition, match="four eyes"):
        app.approve("r3", "MOST", TERMS, FINTECH, TODAY, NOW, pilot_id="p", number=numbers())


@pytest.mark.parametrize("terms, field", [
    (replace(TERMS, conditions=()), "conditions"),
    (replace(TERMS, limits=Scope(("HN", "DN"), 10, 1)), "limits"),
    (replace(TERMS, limits=Scope(("HN",), 5001, 1)), "limits"),
    (replace(TERMS, limits=Scope(("HN",), 10, 50_000_001)), "limits"),
    (replace(TERMS, limits=Scope(("HN",), 10, None)), "limits"),
    (replace(TERMS, starts_on=TODAY - timedelta(days=1)), "starts_on"),
    (replace(TERMS, starts_on=TODAY + timedelta(days=91)), "starts_on"),
    (replace(TERMS, ends_on=TERMS.starts_on), "ends_on"),
    (replace(TERMS, ends_on=date(2028, 7, 1)), "ends_on"),  # 18 months requested
])
def test_approved_terms_breaking_a_rule_are_refused_and_take_no_number(terms, field) -> None:
    app = assessed("r1", "r2")
    taken = []
    with pytest.raises(InvalidInput) as refused:
        app.approve("r3", "MOST", terms, FINTECH, TODAY, NOW, pilot_id="p",
                    number=lambda: taken.append(1) or ("1/X", 2026))
    assert refused.value.field == field
    assert taken == [] and app.status == ApplicationStatus.UNDER_ASSESSMENT


def test_a_telecom_pilot_ends_before_2031() -> None:
    proposal = replace(PROPOSAL, sector="telecom", requested_months=60,
                       exemptions=(Exemption("spectrum", "x"),))
    app = draft(proposal)
    app.submit(TELECOM, TODAY, NOW)
    app.assess(assessment("r1"))
    app.assess(assessment("r2"))
    late = replace(TERMS, starts_on=date(2027, 1, 1), ends_on=date(2031, 1, 1))
    with pytest.raises(InvalidInput, match="before 2031-01-01"):
        app.approve("r3", "MOST", late, TELECOM, TODAY, NOW, pilot_id="p", number=numbers())
    app.approve("r3", "MOST", replace(late, ends_on=date(2030, 12, 31)), TELECOM, TODAY,
                NOW, pilot_id="p", number=numbers())
    assert app.terms.ends_on == date(2030, 12, 31)


def test_rejection_states_reasons() -> None:
    with pytest.raises(InvalidInput) as refused:
        assessed("r1").reject("r3", "MOST", [], TODAY, NOW, number=numbers())
    assert refused.value.field == "reasons"
