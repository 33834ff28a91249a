"""Months and reporting periods in business dates."""

from datetime import date

import pytest

from sandbox.domain.dates import Period, add_months, last_day_after
from sandbox.domain.errors import InvalidInput
from sandbox.domain.sectors import ReportFrequency


def test_a_term_of_months_ends_the_day_before_the_same_day_months_later() -> None:
    assert last_day_after(date(2026, 1, 15), 24) == date(2028, 1, 14)
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)


@pytest.mark.parametrize("text, starts, ends", [
    ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
    ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
    ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
])
def test_a_period_is_a_quarter_or_a_month(text, starts, ends) -> None:
    period = Period.parse(text)
    assert (period.starts_on, period.ends_on, str(period)) == (starts, ends, text)


@pytest.mark.parametrize("text", ["2026-Q5", "2026-13", "2026", "26-Q1", "2026-q1"])
def test_anything_else_is_not_a_period(text) -> None:
    with pytest.raises(InvalidInput) as refused:
        Period.parse(text)
    assert refused.value.field == "period"


def test_the_period_containing_a_day_and_its_successor() -> None:
    q = Period.containing(date(2026, 11, 23), ReportFrequency.QUARTERLY)
    assert str(q) == "2026-Q4" and str(q.next()) == "2027-Q1"
    assert q.due_on(15) == date(2027, 1, 15)
    assert str(Period.containing(date(2026, 12, 5), ReportFrequency.MONTHLY).next()) == \
        "2027-01"
