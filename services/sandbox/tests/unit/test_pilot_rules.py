"""Pilots: created at approval with the approved terms, started on their start date,
moving only along the lifecycle's transitions."""

from __future__ import annotations

from datetime import date

import pytest

from sandbox.domain.errors import IllegalTransition
from sandbox.domain.pilots import TRANSITIONS, Pilot, PilotStarted, PilotStatus

from .test_application_rules import FINTECH, NOW, TERMS, TODAY, assessed, numbers


def approved_pilot() -> Pilot:
    app = assessed("r1", "r2")
    app.approve("r3", "MOST", TERMS, FINTECH, TODAY, NOW, pilot_id="p-1", number=numbers())
    return Pilot.approved(app, FINTECH)


def test_approval_creates_an_approved_pilot_with_the_terms_and_number() -> None:
    pilot = approved_pilot()
    assert pilot.status == PilotStatus.APPROVED
    assert pilot.limits == TERMS.limits and pilot.requested.max_participants == 5000
    assert (pilot.starts_on, pilot.ends_on) == (TERMS.starts_on, TERMS.ends_on)
    assert (pilot.decision_no, pilot.decision_year) == ("1/QĐ-TNKS-SBV", 2026)
    assert pilot.supervising_agency == "SBV"
    assert pilot.next_report_due_on is None


def test_a_pilot_starts_on_its_start_date_with_its_first_report_due() -> None:
    pilot = approved_pilot()
    with pytest.raises(IllegalTransition):
        pilot.start(date(2026, 12, 31), NOW)
    pilot.start(date(2027, 1, 1), NOW)
    assert pilot.status == PilotStatus.ACTIVE
    assert pilot.next_report_due_on == date(2027, 4, 15)  # 2027-Q1 plus 15 days
    assert isinstance(pilot.events[-1], PilotStarted)


def test_ended_pilots_go_nowhere() -> None:
    assert TRANSITIONS[PilotStatus.TERMINATED] == frozenset()
    assert TRANSITIONS[PilotStatus.EXITED] == frozenset()
    pilot = approved_pilot()
    pilot.move_to(PilotStatus.TERMINATED)
    with pytest.raises(IllegalTransition):
        pilot.move_to(PilotStatus.ACTIVE)


def test_an_expired_pilot_can_still_exit() -> None:
    assert PilotStatus.EXITED in TRANSITIONS[PilotStatus.EXPIRED]
