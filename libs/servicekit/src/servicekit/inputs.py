"""Pydantic types for what requests carry: text, times and dates, checked at the edge.

- ``Text``: free text (a title, a name, a reason) trimmed of surrounding whitespace, in
  Unicode NFC (a name typed with combining accents, as some Vietnamese keyboards send
  them, is the same text as its precomposed form) and without NUL, which PostgreSQL
  cannot store in text (SQLite can: the two would disagree). Pydantic already refuses
  what is not Unicode (a lone surrogate). Give each field its length limits with
  ``Field``: they apply to the trimmed text, so a blank value fails ``min_length=1``.
- ``Opaque``: an id or a reference, compared byte for byte with what is stored and with
  the ids tokens carry (the contract: identities are opaque strings). Never rewritten:
  refused when it has NUL or surrounding whitespace (so a blank one too). Trimming or
  normalising it would make ``"INV-1 "`` stored earlier and ``"INV-1 "`` sent again
  different keys, and a researcher's own ``sub`` no longer match their lines.
- ``UtcTime``: an RFC 3339 time with its offset, converted to UTC; not a number of
  seconds (which pydantic would take), and not one whose UTC instant falls outside the
  years 1 to 9999 (``0001-01-01T00:00:00+05:00``), which Python cannot represent.
- ``CalendarDate``: a date as ``YYYY-MM-DD`` only; not a time at midnight, not seconds.
- ``integer(ge=..., le=...)``: a whole number within bounds (money in đồng, basis points,
  counts). JSON has one number type and JSON Schema's ``integer`` admits ``3.0``, so a
  number with no fraction is the integer it names, as long as a float holds it exactly
  (up to 2**53); ``3.5``, ``"3"``, ``true`` and ``1e300`` are refused.
- ``Vnd`` and ``NonNegativeVnd``: money in integer đồng (no minor unit), up to 10^15, as
  ``integer`` takes it: never a fraction, nor a number in a string.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    Strict,
    StringConstraints,
)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", _no_nul(value))


Text = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_clean)]


def _opaque(value: str) -> str:
    if _no_nul(value) != value.strip():
        raise ValueError("must not be blank or start or end with whitespace")
    return value


Opaque = Annotated[str, AfterValidator(_opaque)]


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError("a time is RFC 3339 text with its offset, "
                         "e.g. 2026-11-23T09:00:00+07:00")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside the years 1 to 9999 in UTC") from None


UtcTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _calendar_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("a date is YYYY-MM-DD")
    return value


CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]


EXACT_FLOAT_LIMIT = 2**53  # every integer up to it is exactly a float, none is beyond


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_FLOAT_LIMIT:
        return int(value)
    return value


def integer(**bounds: Any) -> Any:
    """The type of a whole number within ``bounds`` (``Field``'s ``gt``, ``ge``, ``lt``,
    ``le``), documented as ``type: integer`` with them."""
    # The bounds go on the int itself, inside the conversion: after it, pydantic would
    # still check them but document them as unknown keywords (``gt``) instead of
    # ``exclusiveMinimum``.
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_integral)]


MAX_VND = 10**15
Vnd = integer(gt=0, le=MAX_VND)
NonNegativeVnd = integer(ge=0, le=MAX_VND)
