"""The 30/70 split: exact, deterministic, never short of the legal share."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipshare.domain.errors import InvalidInput
from ipshare.domain.split import Basis, Share, compute_split, split_pool

FULL = 10_000


def test_the_contract_example():
    split = compute_split(gross_vnd=1_000_000_007, costs_vnd=0, basis=Basis.GROSS,
                          researcher_share_bp=3000,
                          shares=[Share("a", 7000), Share("b", 3000)])
    assert split.researcher_pool_vnd == 300_000_003
    assert split.researcher_lines == (("a", 210_000_002), ("b", 90_000_001))
    assert split.institution_vnd == 700_000_004


def test_on_a_net_basis_the_institution_bears_the_costs():
    split = compute_split(gross_vnd=1_000, costs_vnd=400, basis=Basis.NET,
                          researcher_share_bp=3000, shares=[Share("a", 10000)])
    assert (split.basis_vnd, split.researcher_pool_vnd, split.institution_vnd) == (600, 180,
                                                                                   820)


def test_in_kind_basis_is_the_contributed_value_whatever_the_policy():
    split = compute_split(gross_vnd=1_000, costs_vnd=0, basis=Basis.NET,
                          researcher_share_bp=3000, shares=[Share("a", 10000)], in_kind=True)
    assert split.basis_vnd == 1_000 and split.researcher_pool_vnd == 300


def test_ties_on_remainders_go_to_the_smaller_author_id():
    assert split_pool(2, [Share("b", 5000), Share("a", 5000)]) == [("a", 1), ("b", 1)]
    assert split_pool(1, [Share("b", 5000), Share("a", 5000)]) == [("a", 1), ("b", 0)]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"gross_vnd": 0}, "gross_vnd"),
        ({"gross_vnd": -1}, "gross_vnd"),
        ({"costs_vnd": 1_001}, "costs_vnd"),
        ({"costs_vnd": -1}, "costs_vnd"),
        ({"researcher_share_bp": 2999}, "researcher_share_bp"),
        ({"shares": [Share("a", 6000)]}, "contribution_bp"),
        ({"shares": [Share("a", 5000), Share("a", 5000)]}, "authors"),
    ],
)
def test_bad_inputs_name_the_field(kw, field):
    args = dict(gross_vnd=1_000, costs_vnd=0, basis=Basis.NET, researcher_share_bp=3000,
                shares=[Share("a", 10000)])
    args.update(kw)
    with pytest.raises(InvalidInput) as err:
        compute_split(**args)
    assert err.value.field == field


def authors():
    """1..8 authors with positive shares summing to exactly 10000."""
    return st.lists(st.integers(1, FULL - 1), max_size=7, unique=True).map(
        lambda cuts: [Share(f"r-{i:02d}", b - a) for i, (a, b) in enumerate(
            zip([0, *sorted(cuts)], [*sorted(cuts), FULL], strict=True))])


incomes = st.fixed_dictionaries({
    "gross_vnd": st.integers(1, 10**15),
    "cost_share": st.integers(0, FULL),
    "basis": st.sampled_from(list(Basis)),
    "researcher_share_bp": st.integers(3000, FULL),
    "shares": authors(),
    "in_kind": st.booleans(),
})


def split_of(case):
    costs = 0 if case["in_kind"] else case["gross_vnd"] * case["cost_share"] // FULL
    return compute_split(gross_vnd=case["gross_vnd"], costs_vnd=costs, basis=case["basis"],
                         researcher_share_bp=case["researcher_share_bp"],
                         shares=case["shares"], in_kind=case["in_kind"])


@given(incomes)
def test_the_lines_always_sum_to_the_income(case):
    split = split_of(case)
    assert sum(a for _, a in split.researcher_lines) == split.researcher_pool_vnd
    assert split.researcher_pool_vnd + split.institution_vnd == split.gross_vnd
    assert all(a >= 0 for _, a in split.researcher_lines) and split.institution_vnd >= 0


@given(incomes)
def test_the_pool_is_never_below_the_legal_share(case):
    split = split_of(case)
    exact = Fraction(split.basis_vnd * case["researcher_share_bp"], FULL)
    assert split.researcher_pool_vnd >= exact
    assert split.researcher_pool_vnd - exact < 1
    assert split.researcher_pool_vnd >= Fraction(split.basis_vnd * 3000, FULL)


@given(incomes)
def test_every_author_is_within_one_dong_of_their_exact_share(case):
    split = split_of(case)
    bp = {s.researcher_id: s.contribution_bp for s in case["shares"]}
    for rid, amount in split.researcher_lines:
        exact = Fraction(split.researcher_pool_vnd * bp[rid], FULL)
        assert abs(amount - exact) < 1


@given(incomes)
def test_the_split_is_deterministic_whatever_the_order_of_authors(case):
    first = split_of(case)
    again = split_of({**case, "shares": list(reversed(case["shares"]))})
    assert first == again
