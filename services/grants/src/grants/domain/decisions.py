"""Formal decisions are numbered (domain.md §1, Decree 30/2020/NĐ-CP): an award, a
rejection and a grant's closure each take the next number of the deciding agency's
grants register for the year ("17/QĐ-MOST").

A decision takes its number through a :data:`TakeNumber` it is handed, called once,
after every rule of the decision has passed: a refused decision takes no number, and the
register (locked by the taking until the transaction ends) is held as briefly as it can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Numbered(Protocol):
    """What a register hands out (servicekit.decisions.DecisionNumber)."""

    @property
    def decision_no(self) -> str: ...

    @property
    def year(self) -> int: ...


TakeNumber = Callable[[], Numbered]


@dataclass(frozen=True)
class DecisionNo:
    """The number a decision carries: ``decision_no`` ``"17/QĐ-MOST"`` of ``year``."""

    decision_no: str
    year: int

    @classmethod
    def take(cls, take_number: TakeNumber) -> DecisionNo:
        taken = take_number()
        return cls(taken.decision_no, taken.year)
