"""Funding call rules as plain objects: no database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grants.domain.calls import Call, CallClosed, CallOpened, CallStatus
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
