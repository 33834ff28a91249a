"""Funding call rules as plain objects: no database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grants.domain.calls import (
    Call,
    CallCancelled,
    CallClosed,
    CallOpened,
    CallStatus,
    ReviewMode,
    ReviewTier,
)
from grants.domain.errors import IllegalTransition, InvalidInput

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def a_call(**overrides) -> Call:
    fields = dict(id="c-1", agency_id="MOST", title="t", description="", budget_vnd=1_000,
                  max_award_vnd=100, opens_at=T0, closes_at=T0 + timedelta(days=90),
                  min_reviews=2)
    fields.update(overrides)
    return Call.draft(**fields)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"budget_vnd": 0}, "budget_vnd"),
        ({"max_award_vnd": -1}, "max_award_vnd"),
        ({"max_award_vnd": 1_001}, "max_award_vnd"),
        ({"closes_at": T0}, "closes_at"),
        ({"min_reviews": 0}, "min_reviews"),
        ({"agency_id": ""}, "agency_id"),
    ],
)
def test_an_invalid_draft_names_the_field(overrides, field):
    with pytest.raises(InvalidInput) as err:
        a_call(**overrides)
    assert err.value.field == field


def test_opening_records_call_opened_and_accepts_submissions_in_the_window():
    call = a_call()
    call.open(now=T0 + timedelta(days=1))
    assert call.status == CallStatus.OPEN
    assert isinstance(call.events[-1], CallOpened)
    assert call.accepting_submissions(T0 + timedelta(days=1))
    assert not call.accepting_submissions(T0 - timedelta(seconds=1))
    assert not call.accepting_submissions(T0 + timedelta(days=90))


def test_a_call_cannot_open_after_its_window_closed():
    with pytest.raises(IllegalTransition):
        a_call().open(now=T0 + timedelta(days=91))


def test_only_a_draft_opens_and_only_an_open_call_closes():
    call = a_call()
    with pytest.raises(IllegalTransition):
        call.close()
    call.open(now=T0)
    with pytest.raises(IllegalTransition):
        call.open(now=T0)
    call.close()
    assert call.status == CallStatus.CLOSED
    assert isinstance(call.events[-1], CallClosed)
    assert not call.accepting_submissions(T0 + timedelta(days=1))


def test_remaining_budget_is_budget_minus_awarded():
    call = a_call()
    call.awarded_vnd = 300
    assert call.remaining_budget_vnd == 700


# --- review tiers, edits and cancellation -------------------------------------------------

def tiers(*pairs: tuple[int, int]) -> list[ReviewTier]:
    return [ReviewTier(up_to, reviews) for up_to, reviews in pairs]


def test_the_reviews_needed_are_the_first_covering_tiers_and_the_last_above_them_all():
    call = a_call(min_reviews=2, review_tiers=tiers((100, 2), (500, 3), (900, 5)))
    assert [call.reviews_needed(v) for v in (1, 100, 101, 500, 501, 900, 901, 10**12)] == [
        2, 2, 3, 3, 5, 5, 5, 5]


def test_without_tiers_every_amount_needs_the_calls_min_reviews():
    call = a_call(min_reviews=3)
    assert call.review_tiers == () and call.review_mode == ReviewMode.OPEN
    assert {call.reviews_needed(v) for v in (1, 10**12)} == {3}


@pytest.mark.parametrize(("pairs", "rule"), [
    (((500, 3), (100, 4)), "ascend without overlap"),
    (((100, 3), (100, 4)), "ascend without overlap"),
    (((100, 4), (500, 3)), "must not decrease"),
    (((100, 1), (500, 3)), "below the call's min_reviews"),
    (((0, 2),), "must be positive"),
])
def test_tiers_out_of_order_overlapping_or_below_the_minimum_are_refused(pairs, rule):
    with pytest.raises(InvalidInput, match=rule) as err:
        a_call(min_reviews=2, review_tiers=tiers(*pairs))
    assert err.value.field == "review_tiers"


def test_equal_min_reviews_in_successive_tiers_are_allowed():
    call = a_call(min_reviews=2, review_tiers=tiers((100, 2), (500, 2), (900, 2)))
    assert call.reviews_needed(700) == 2


def test_a_draft_call_is_revised_and_reports_what_changed():
    call = a_call()
    revised = a_call(budget_vnd=2_000, review_mode=ReviewMode.ASSIGNED,
                     review_tiers=tiers((50, 2)), requires_endorsement=True)
    changes = call.revise(revised)
    assert set(changes) == {"budget_vnd", "review_mode", "review_tiers",
                            "requires_endorsement"}
    assert changes["budget_vnd"] == {"from": 1_000, "to": 2_000}
    assert call.assigned_review and call.requires_endorsement
    call.open(now=T0)
    with pytest.raises(IllegalTransition, match="only a draft"):
        call.revise(a_call())


def test_a_call_is_cancelled_only_without_a_decision_and_once():
    call = a_call()
    call.open(now=T0)
    with pytest.raises(IllegalTransition, match="decided"):
        call.cancel("merged", decided=1, now=T0)
    with pytest.raises(InvalidInput):
        call.cancel("  ", decided=0, now=T0)
    assert call.status == CallStatus.OPEN
    call.cancel("merged", decided=0, now=T0)
    assert (call.status, call.cancelled_from, call.published) == (
        CallStatus.CANCELLED, CallStatus.OPEN, True)
    assert isinstance(call.events[-1], CallCancelled)
    with pytest.raises(IllegalTransition, match="already cancelled"):
        call.cancel("again", decided=0, now=T0)


def test_a_draft_cancelled_before_opening_stays_unpublished_and_announces_nothing():
    call = a_call()
    call.cancel("dropped", decided=0, now=T0)
    assert not call.published and call.events == []
