"""Calendar arithmetic of business dates: months, and reporting periods.

A pilot of ``n`` months starting on ``d`` may run until the day before the same day of
the month ``n`` months later (the 31st in a shorter month is the month's last day):
from 2026-01-15 for 24 months, its last day is 2028-01-14 at the latest.

A reporting period is a month (``2026-03``) or a quarter (``2026-Q1``).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from sandbox.domain.errors import InvalidInput
from sandbox.domain.sectors import ReportFrequency


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def last_day_after(starts_on: date, months: int) -> date:
    """The last day of a term of ``months`` months starting on ``starts_on``."""
    return add_months(starts_on, months) - timedelta(days=1)


_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_QUARTER = re.compile(r"([0-9]{4})-Q([1-4])")


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period: ``months`` 1 (a month) or 3 (a quarter) from ``starts_on``."""

    starts_on: date
    months: int

    @classmethod
    def parse(cls, text: str) -> Period:
        if m := _QUARTER.fullmatch(text):
            return cls(date(int(m[1]), 3 * int(m[2]) - 2, 1), 3)
        if m := _MONTH.fullmatch(text):
            return cls(date(int(m[1]), int(m[2]), 1), 1)
        raise InvalidInput(f"period '{text}' is neither a quarter (2026-Q1) nor a month "
                           "(2026-03)", field="period")

    @classmethod
    def containing(cls, day: date, frequency: ReportFrequency) -> Period:
        if frequency == ReportFrequency.QUARTERLY:
            return cls(date(day.year, 3 * ((day.month - 1) // 3) + 1, 1), 3)
        return cls(date(day.year, day.month, 1), 1)

    @property
    def frequency(self) -> ReportFrequency:
        return ReportFrequency.QUARTERLY if self.months == 3 else ReportFrequency.MONTHLY

    @property
    def ends_on(self) -> date:
        return add_months(self.starts_on, self.months) - timedelta(days=1)

    def next(self) -> Period:
        return Period(add_months(self.starts_on, self.months), self.months)

    def due_on(self, grace_days: int) -> date:
        """When the report on this period is due: ``grace_days`` after it ends."""
        return self.ends_on + timedelta(days=grace_days)

    def __str__(self) -> str:
        if self.months == 3:
            return f"{self.starts_on.year}-Q{(self.starts_on.month + 2) // 3}"
        return f"{self.starts_on.year}-{self.starts_on.month:02d}"
