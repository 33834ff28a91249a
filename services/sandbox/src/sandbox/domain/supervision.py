"""What a pilot's supervision records: periodic reports and their breaches, incidents,
and the exit report (domain.md §4).

- A **report** covers one period (``2026-Q1`` or ``2026-03``, the sector's frequency):
  participants, the period's total and largest transaction, the regions served, KPIs and
  complaints. Every figure over a limit in force is a **breach**: participants over
  ``max_participants``, a largest transaction over ``max_transaction_vnd``, a region
  outside the approved ones.
- An **incident** carries its severity, when it occurred and when it was reported, and
  whether that was within the sector's deadline (a tester keeps its liability exemption
  only if it reported risks promptly: Law 93/2025 Art. 22, as reported).
- The **exit report** ends a pilot that ran its course: ``graduate`` (recommend permanent
  rules or a licence; a certificate of completion) or ``discontinue``, with the final
  report, lessons and recommended rule changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sandbox.domain.applications import Scope
from sandbox.domain.dates import Period
from sandbox.domain.errors import InvalidInput


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ExitOutcome(StrEnum):
    GRADUATE = "graduate"
    DISCONTINUE = "discontinue"


@dataclass(frozen=True)
class Figures:
    """What the firm reports on one period."""

    period: str
    participants: int
    transactions_vnd: int
    complaints: int
    kpis: dict[str, float] = field(default_factory=dict)
    largest_transaction_vnd: int | None = None
    regions: tuple[str, ...] | None = None

    def check(self, limits: Scope) -> None:
        """Figures that can be compared with ``limits`` and with each other."""
        for name in ("participants", "transactions_vnd", "complaints"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} cannot be negative", field=name)
        largest = self.largest_transaction_vnd
        if largest is not None and not 0 <= largest <= self.transactions_vnd:
            raise InvalidInput("largest_transaction_vnd is one transaction of the period: "
                               "from 0 to transactions_vnd (the period's total)",
                               field="largest_transaction_vnd")
        if largest is None and limits.max_transaction_vnd is not None:
            raise InvalidInput(
                f"largest_transaction_vnd is required: the pilot's limits cap one "
                f"transaction at {limits.max_transaction_vnd} VND",
                field="largest_transaction_vnd")
        if self.regions is not None and len(set(self.regions)) != len(self.regions):
            raise InvalidInput("a region appears twice in regions", field="regions")


@dataclass(frozen=True)
class Breach:
    """A reported figure over a limit: ``limit`` is the limit's name."""

    limit: str
    allowed: Any
    reported: Any

    def as_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "allowed": self.allowed, "reported": self.reported}


def breaches_of(figures: Figures, limits: Scope) -> list[Breach]:
    """Every figure of ``figures`` over ``limits``."""
    found = []
    if figures.participants > limits.max_participants:
        found.append(Breach("max_participants", limits.max_participants,
                            figures.participants))
    cap, largest = limits.max_transaction_vnd, figures.largest_transaction_vnd
    if cap is not None and largest is not None and largest > cap:
        found.append(Breach("max_transaction_vnd", cap, largest))
    outside = [r for r in figures.regions or () if r not in limits.regions]
    if outside:
        found.append(Breach("regions", list(limits.regions), outside))
    return found


@dataclass(frozen=True)
class Report:
    id: str
    pilot_id: str
    period: Period
    figures: Figures
    breaches: tuple[Breach, ...]
    due_on: date
    filed_late: bool
    filed_by: str
    filed_at: datetime


@dataclass(frozen=True)
class Incident:
    id: str
    pilot_id: str
    severity: Severity
    description: str
    occurred_at: datetime
    reported_at: datetime
    reported_by: str
    reporter_role: str
    deadline_at: datetime
    reported_in_time: bool
    suspended_pilot: bool


class ExitStatus(StrEnum):
    FILED = "filed"
    ACCEPTED = "accepted"


@dataclass
class ExitReport:
    id: str
    outcome: ExitOutcome
    final_report: str
    lessons: str
    recommendations: tuple[str, ...]
    kpi_results: dict[str, float] | None
    filed_by: str
    filed_at: datetime
    status: ExitStatus = ExitStatus.FILED
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    note: str | None = None
    decision_no: str | None = None
    decision_year: int | None = None
    certificate_no: str | None = None

    def check(self) -> None:
        for name in ("final_report", "lessons"):
            if not getattr(self, name).strip():
                raise InvalidInput(f"the exit report states its {name}", field=name)
        if not all(r.strip() for r in self.recommendations):
            raise InvalidInput("a recommendation is blank", field="recommendations")
