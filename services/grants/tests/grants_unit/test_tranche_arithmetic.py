"""Tranche arithmetic: exact to the đồng for any award and any split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grants.domain.money import FULL_BP, partial_release, tranche_schedule


def bp_splits(max_parts: int = 12):
    """Lists of positive basis points summing to exactly 10000."""
    return st.lists(st.integers(1, FULL_BP - 1), min_size=0, max_size=max_parts - 1,
                    unique=True).map(
        lambda cuts: [b - a for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), FULL_BP],
                                            strict=True)]
    )


def test_the_contract_example_puts_the_remainder_on_the_last_tranche():
    assert tranche_schedule(1_000_000_001, [3333, 3333, 3334]) == [
        333_300_000, 333_300_000, 333_400_001]


@given(award=st.integers(0, 10**15), bps=bp_splits())
def test_tranches_always_sum_to_the_award(award, bps):
    assert sum(tranche_schedule(award, bps)) == award


@given(award=st.integers(0, 10**15), bps=bp_splits())
def test_every_tranche_but_the_last_is_the_floor_of_its_share(award, bps):
    amounts = tranche_schedule(award, bps)
    for amount, bp in zip(amounts[:-1], bps[:-1], strict=True):
        assert amount == award * bp // FULL_BP
    # The last one carries the remainder: at most one đồng per other tranche over its share.
    assert 0 <= amounts[-1] - award * bps[-1] // FULL_BP < len(bps)


@given(tranche=st.integers(0, 10**15), completion=st.integers(0, FULL_BP))
def test_a_partial_release_never_exceeds_the_tranche(tranche, completion):
    released = partial_release(tranche, completion)
    assert 0 <= released <= tranche
    assert released == tranche * completion // FULL_BP


@pytest.mark.parametrize("bps", [[], [5000, 4999], [10001, -1], [0, 10000]])
def test_splits_that_do_not_sum_to_10000_are_refused(bps):
    with pytest.raises(ValueError):
        tranche_schedule(100, bps)
