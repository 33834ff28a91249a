"""The Distribution aggregate: posting splits the income and records it, one standing
posting per reference, and a reversal negates everything without editing anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ipshare.domain.assets import Agreement, AgreementKind, AgreementStatus, Author, Policy
from ipshare.domain.distributions import (
    Distribution,
    DistributionPosted,
    DistributionReversed,
    DistributionStatus,
    Line,
)
from ipshare.domain.errors import DuplicateReference, IllegalTransition
from ipshare.domain.split import Basis

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
LICENCE = Agreement("ag-1", "as-1", "HUST", AgreementKind.LICENCE, "g-1")
AUTHORS = [Author("r-a", "A", 7000), Author("r-b", "B", 3000)]
GROSS_30 = Policy("HUST", 3000, Basis.GROSS, 1)


def post(agreement: Agreement = LICENCE, *, standing_id: str | None = None,
         gross_vnd: int = 1_000_000_007, costs_vnd: int = 0) -> Distribution:
    return Distribution.post(id="d-1", agreement=agreement, source_grant_id="g-1",
                             policy=GROSS_30, authors=AUTHORS, reference="INV-1",
                             period="2026-Q4", gross_vnd=gross_vnd, costs_vnd=costs_vnd,
                             standing_id=standing_id, by="off-1", now=NOW)


def test_posting_splits_to_the_dong_and_records_distribution_posted():
    d = post()

    assert d.lines == [Line("r-a", "researcher", 210_000_002),
                       Line("r-b", "researcher", 90_000_001),
                       Line("HUST", "institution", 700_000_004)]
    assert d.status == DistributionStatus.POSTED
    [posted] = d.events
    assert isinstance(posted, DistributionPosted)
    assert (posted.distribution_id, posted.gross_vnd, posted.posted_at) == (
        "d-1", 1_000_000_007, NOW)
    assert posted.lines[0] == {"payee_id": "r-a", "payee_kind": "researcher",
                               "amount_vnd": 210_000_002}
    assert sum(e.amount_vnd for e in d.postings[0].entries) == 0


def test_a_reference_that_stands_on_the_agreement_is_refused():
    with pytest.raises(DuplicateReference) as refused:
        post(standing_id="d-0")

    assert refused.value.status == 409 and "reverse it first" in refused.value.message


def test_income_on_a_terminated_agreement_is_refused_before_the_reference_is_looked_at():
    ended = Agreement("ag-2", "as-1", "HUST", AgreementKind.LICENCE,
                      status=AgreementStatus.TERMINATED)

    with pytest.raises(IllegalTransition, match="income is refused"):
        post(ended, standing_id="d-0")


def test_a_reversal_negates_every_amount_and_line_and_posts_the_entries_negated():
    d = post(costs_vnd=7)
    d.events.clear()
    later = NOW + timedelta(hours=1)

    reversal = d.reverse(reversal_id="rv-1", reason="issued twice", now=later)

    assert (d.status, d.reversed_at, d.reversal_reason) == (
        DistributionStatus.REVERSED, later, "issued twice")
    assert [e.amount_vnd for e in reversal.entries] == [
        -e.amount_vnd for e in d.postings[0].entries]
    [reversed_] = d.events
    assert isinstance(reversed_, DistributionReversed)
    assert (reversed_.gross_vnd, reversed_.costs_vnd, reversed_.basis_vnd,
            reversed_.researcher_pool_vnd, reversed_.institution_vnd) == (
        -d.gross_vnd, -d.costs_vnd, -d.basis_vnd, -d.researcher_pool_vnd, -d.institution_vnd)
    assert [ln["amount_vnd"] for ln in reversed_.lines] == [-ln.amount_vnd for ln in d.lines]
    assert (reversed_.reversal_id, reversed_.reversed_at, reversed_.posted_at) == (
        "rv-1", later, NOW)
    assert d.lines[0].amount_vnd > 0  # the distribution itself is not edited


def test_a_distribution_is_reversed_once():
    d = post()
    d.reverse(reversal_id="rv-1", reason="twice", now=NOW)

    with pytest.raises(IllegalTransition, match="already reversed"):
        d.reverse(reversal_id="rv-2", reason="again", now=NOW)
    assert len(d.postings) == 2
