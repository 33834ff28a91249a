"""The portfolio's rules: good-faith failure is accepted risk, not a loss; the success
rate counts closed grants only; what is committed is awarded less cancelled."""

from __future__ import annotations

from grants.domain.portfolio import Commercialisation, Totals, metrics


def totals(**by_outcome: int) -> Totals:
    closed = sum(by_outcome.values())
    return Totals(grants=closed + 2, closed=closed, by_outcome=by_outcome,
                  awarded_vnd=1_000, disbursed_vnd=600, cancelled_vnd=150, refund_due_vnd=40,
                  risk_awarded_vnd=300, risk_disbursed_vnd=200)


def test_good_faith_failure_is_accepted_risk_and_not_a_success_or_a_loss():
    m = metrics(totals(completed=2, partially_completed=1, failed_in_good_faith=1), {},
                Commercialisation())

    assert (m.closed, m.active) == (4, 2)
    assert (m.success_rate, m.success_rate_bp) == (0.75, 7_500)
    assert (m.accepted_risk.count, m.accepted_risk.awarded_vnd,
            m.accepted_risk.disbursed_vnd) == (1, 300, 200)
    assert m.by_outcome["terminated_for_breach"] == 0


def test_no_closed_grant_has_no_success_rate():
    m = metrics(totals(), {"patent": 3}, Commercialisation(10, 3, 1))

    assert (m.success_rate, m.success_rate_bp) == (None, None)
    assert m.results_by_kind["patent"] == 3 and m.results_by_kind["software"] == 0
    assert (m.committed_vnd, m.commercialisation.gross_vnd) == (850, 10)


def test_the_success_rate_in_basis_points_rounds_down():
    m = metrics(totals(completed=2, terminated_for_breach=1), {}, Commercialisation())

    assert (m.success_rate, m.success_rate_bp) == (0.6667, 6_666)
