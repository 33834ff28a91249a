"""The income split, exact to the đồng (domain.md §3).

- basis: ``gross`` or ``gross - costs`` (``net``, the legal floor and default); on an
  in-kind contribution (spin-off) the basis is the contributed value whatever the policy;
- researcher pool: ``ceil(basis * researcher_share_bp / 10000)`` — the law says *at
  least* 30%, so rounding favours the researchers;
- each author: ``floor(pool * contribution_bp / 10000)``, then the leftover đồng go one
  each to the largest fractional remainders, ties broken by ascending author id;
- institution: ``gross - pool`` (on a net basis it bears the declared costs).

Every part is an integer and the parts add up to ``gross`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ipshare.domain.errors import InvalidInput

FULL_BP = 10_000
LEGAL_MIN_SHARE_BP = 3_000


class Basis(StrEnum):
    NET = "net"
    GROSS = "gross"


@dataclass(frozen=True)
class Share:
    researcher_id: str
    contribution_bp: int


@dataclass(frozen=True)
class Split:
    gross_vnd: int
    costs_vnd: int
    basis_vnd: int
    researcher_pool_vnd: int
    institution_vnd: int
    researcher_lines: tuple[tuple[str, int], ...]  # (researcher id, amount) by author id


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def split_pool(pool_vnd: int, shares: Sequence[Share]) -> list[tuple[str, int]]:
    """Floor plus largest remainder; ties go to the smaller author id."""
    ordered = sorted(shares, key=lambda s: s.researcher_id)
    floors = [(s.researcher_id, pool_vnd * s.contribution_bp // FULL_BP,
               pool_vnd * s.contribution_bp % FULL_BP) for s in ordered]
    leftover = pool_vnd - sum(amount for _, amount, _ in floors)
    by_remainder = sorted(range(len(floors)), key=lambda i: (-floors[i][2], floors[i][0]))
    bonus = set(by_remainder[:leftover])
    return [(rid, amount + (1 if i in bonus else 0))
            for i, (rid, amount, _) in enumerate(floors)]


def compute_split(*, gross_vnd: int, costs_vnd: int, basis: Basis, researcher_share_bp: int,
                  shares: Sequence[Share], in_kind: bool = False) -> Split:
    if gross_vnd <= 0:
        raise InvalidInput("gross_vnd must be positive", field="gross_vnd")
    if costs_vnd < 0:
        raise InvalidInput("costs_vnd must not be negative", field="costs_vnd")
    if costs_vnd > gross_vnd:
        raise InvalidInput("costs_vnd cannot exceed gross_vnd", field="costs_vnd")
    if in_kind and costs_vnd:
        raise InvalidInput("an in-kind contribution has no commercialisation costs: its "
                           "basis is the contributed value", field="costs_vnd")
    if not LEGAL_MIN_SHARE_BP <= researcher_share_bp <= FULL_BP:
        raise InvalidInput("researcher_share_bp must be within 3000..10000",
                           field="researcher_share_bp")
    check_authors(shares)
    basis_vnd = gross_vnd if (in_kind or basis == Basis.GROSS) else gross_vnd - costs_vnd
    pool = ceil_div(basis_vnd * researcher_share_bp, FULL_BP)
    lines = split_pool(pool, shares)
    return Split(gross_vnd=gross_vnd, costs_vnd=costs_vnd, basis_vnd=basis_vnd,
                 researcher_pool_vnd=pool, institution_vnd=gross_vnd - pool,
                 researcher_lines=tuple(lines))


def check_authors(shares: Sequence[Share]) -> None:
    if not shares:
        raise InvalidInput("at least one author is required", field="authors")
    ids = [s.researcher_id for s in shares]
    if len(set(ids)) != len(ids):
        raise InvalidInput("an author appears twice", field="authors")
    if any(s.contribution_bp <= 0 for s in shares):
        raise InvalidInput("every contribution_bp must be positive", field="contribution_bp")
    total = sum(s.contribution_bp for s in shares)
    if total != FULL_BP:
        raise InvalidInput(f"contribution_bp must sum to exactly 10000 (got {total})",
                           field="contribution_bp")
