"""The portfolio's metrics (domain.md §2): the state judges the portfolio, not each project.

A grant failed in good faith is accepted risk, never counted as a loss; the success rate
is the share of closed grants completed or partially completed; what is committed is
what was awarded less what was cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from grants.domain.grants import Outcome, ResultKind


@dataclass(frozen=True)
class Totals:
    """What a set of grants adds up to."""

    grants: int
    closed: int
    by_outcome: Mapping[str, int]
    awarded_vnd: int
    disbursed_vnd: int
    cancelled_vnd: int
    refund_due_vnd: int
    risk_awarded_vnd: int  # of the grants failed in good faith
    risk_disbursed_vnd: int


@dataclass(frozen=True)
class Commercialisation:
    """The income ipshare distributed on the grants' results (reversals netted out)."""

    gross_vnd: int = 0
    researchers_vnd: int = 0
    distributions: int = 0


@dataclass(frozen=True)
class AcceptedRisk:
    count: int
    awarded_vnd: int
    disbursed_vnd: int


@dataclass(frozen=True)
class Metrics:
    grants: int
    active: int
    closed: int
    by_outcome: dict[str, int]
    success_rate: float | None
    success_rate_bp: int | None
    accepted_risk: AcceptedRisk
    awarded_vnd: int
    committed_vnd: int
    disbursed_vnd: int
    cancelled_vnd: int
    refund_due_vnd: int
    results_by_kind: dict[str, int]
    commercialisation: Commercialisation


def metrics(totals: Totals, results_by_kind: Mapping[str, int],
            income: Commercialisation) -> Metrics:
    by_outcome = {o.value: totals.by_outcome.get(o.value, 0) for o in Outcome}
    closed = totals.closed
    successes = by_outcome[Outcome.COMPLETED] + by_outcome[Outcome.PARTIALLY_COMPLETED]
    return Metrics(
        grants=totals.grants, active=totals.grants - closed, closed=closed,
        by_outcome=by_outcome,
        success_rate=round(successes / closed, 4) if closed else None,
        success_rate_bp=successes * 10_000 // closed if closed else None,
        accepted_risk=AcceptedRisk(count=by_outcome[Outcome.FAILED_IN_GOOD_FAITH],
                                   awarded_vnd=totals.risk_awarded_vnd,
                                   disbursed_vnd=totals.risk_disbursed_vnd),
        awarded_vnd=totals.awarded_vnd,
        committed_vnd=totals.awarded_vnd - totals.cancelled_vnd,
        disbursed_vnd=totals.disbursed_vnd, cancelled_vnd=totals.cancelled_vnd,
        refund_due_vnd=totals.refund_due_vnd,
        results_by_kind={k.value: results_by_kind.get(k.value, 0) for k in ResultKind},
        commercialisation=income,
    )
