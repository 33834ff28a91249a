"""An injectable clock: handlers read ``now`` from here, never from ``datetime.now``.

Timestamps are UTC. Business dates (due dates, start and end dates, "today" for overdue
and expiry, the calendar year of a decision number) are days in the business time zone,
Vietnam's by default: :func:`business_date` turns an instant into that day.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from typing import Protocol
from zoneinfo import ZoneInfo

BUSINESS_TIMEZONE = "Asia/Ho_Chi_Minh"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move; for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


def as_utc(value: datetime) -> datetime:
    """Normalise a datetime read back from a database: naive values are UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@cache
def timezone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``Asia/Ho_Chi_Minh``), loaded once."""
    return ZoneInfo(name)


def business_date(instant: datetime, zone: str = BUSINESS_TIMEZONE) -> date:
    """The day ``instant`` falls on in the business time zone ``zone``.

    At 23:30 UTC on 30 June it is already 1 July in Hanoi (UTC+7).
    """
    return as_utc(instant).astimezone(timezone(zone)).date()
