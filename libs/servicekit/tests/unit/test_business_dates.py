"""Business dates are Vietnam's days: an instant late in the UTC day is already the next
day in Hanoi; the zone is a setting, refused when it is not a known IANA name."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine

from servicekit.clock import business_date
from servicekit.decisions import REGISTERS, take_number
from servicekit.settings import ServiceSettings


def test_half_past_eleven_utc_on_30_june_is_1_july_in_hanoi() -> None:
    assert business_date(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == date(2026, 7, 1)


def test_before_five_pm_utc_it_is_the_same_day_in_hanoi() -> None:
    assert business_date(datetime(2026, 6, 30, 16, 59, tzinfo=UTC)) == date(2026, 6, 30)


def test_new_years_eve_utc_evening_is_already_next_year_for_decision_numbers() -> None:
    assert business_date(datetime(2026, 12, 31, 17, 0, tzinfo=UTC)).year == 2027


def test_an_instant_with_another_offset_is_the_same_instant() -> None:
    at = datetime(2026, 7, 1, 6, 30, tzinfo=timezone(timedelta(hours=7)))  # 23:30 UTC
    assert business_date(at) == date(2026, 7, 1)
    assert business_date(at, "UTC") == date(2026, 6, 30)


def test_the_business_time_zone_is_configurable_and_checked() -> None:
    assert ServiceSettings(database_url="sqlite://").business_timezone == "Asia/Ho_Chi_Minh"
    assert ServiceSettings(database_url="sqlite://",
                           business_timezone="Europe/Paris").business_timezone == "Europe/Paris"
    with pytest.raises(ValidationError, match="unknown time zone"):
        ServiceSettings(database_url="sqlite://", business_timezone="Mars/Olympus")


def test_decision_numbers_count_per_register_on_sqlite() -> None:
    engine = create_engine("sqlite://")
    REGISTERS.metadata.create_all(engine, tables=[REGISTERS])
    with engine.connect() as conn:
        numbers = [take_number(conn, r, 2026).decision_no
                   for r in ("QĐ-MOST", "QĐ-MOST", "QĐ-HN", "QĐ-MOST")]
    assert numbers == ["1/QĐ-MOST", "2/QĐ-MOST", "1/QĐ-HN", "3/QĐ-MOST"]
