"""Column types shared by the kit's tables and the services' models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, TypeDecorator

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
# Money in đồng is BIGINT everywhere.
Money = BigInteger


class _UtcDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE``, written and read as UTC on every database.

    PostgreSQL keeps the instant of an aware value whatever its offset; SQLite has no
    time zones and stored the wall-clock digits, dropping the offset (a call closing at
    08:30+07:00 closed at 08:30 UTC). So values are converted to UTC before they are
    bound, as a column's value or in a comparison, and read back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


UtcDateTime = _UtcDateTime()
