"""Tranche arithmetic in integer đồng (domain.md §1–2).

- A tranche is ``floor(awarded_vnd * tranche_bp / 10000)``; the remainder goes to the
  last milestone in the application's order, so the tranches always add up to the award.
- A partial release at close is ``floor(tranche_vnd * completion_bp / 10000)``; the rest
  of that tranche is cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence

FULL_BP = 10_000


def tranche_schedule(awarded_vnd: int, tranche_bps: Sequence[int]) -> list[int]:
    """Exact VND per milestone: 1,000,000,001 at 3333/3333/3334 → 333,300,000 /
    333,300,000 / 333,400,001."""
    if awarded_vnd < 0:
        raise ValueError("awarded_vnd must not be negative")
    if not tranche_bps or sum(tranche_bps) != FULL_BP or any(bp <= 0 for bp in tranche_bps):
        raise ValueError("tranche_bp must be positive and sum to exactly 10000")
    amounts = [awarded_vnd * bp // FULL_BP for bp in tranche_bps]
    amounts[-1] += awarded_vnd - sum(amounts)
    return amounts


def partial_release(tranche_vnd: int, completion_bp: int) -> int:
    if not 0 <= completion_bp <= FULL_BP:
        raise ValueError("completion_bp must be within 0..10000")
    return tranche_vnd * completion_bp // FULL_BP
