"""``UtcDateTime`` keeps the instant on SQLite, which has no time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select

from servicekit.types import UtcDateTime

HANOI = timezone(timedelta(hours=7))


def test_an_aware_time_is_stored_and_compared_as_its_utc_instant() -> None:
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UtcDateTime))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table).values(id=1, at=datetime(2026, 11, 24, 8, 30, tzinfo=HANOI)))
        stored = conn.execute(select(table.c.at)).scalar_one()
        # The same instant in another offset finds it; the wall-clock digits do not.
        found = conn.execute(select(table.c.id).where(
            table.c.at == datetime(2026, 11, 24, 1, 30, tzinfo=UTC))).scalar_one_or_none()
        later = conn.execute(select(table.c.id).where(
            table.c.at >= datetime(2026, 11, 24, 8, 0, tzinfo=UTC))).scalar_one_or_none()
    assert stored == datetime(2026, 11, 24, 1, 30, tzinfo=UTC) and stored.tzinfo is not None
    assert (found, later) == (1, None)
