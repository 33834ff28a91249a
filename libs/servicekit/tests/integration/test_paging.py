"""Keyset pages on PostgreSQL: a page deep in a large table is an index range, as cheap
as the first page, and the pages cover every row once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

from servicekit.paging import keyset_page
from servicekit.types import UtcDateTime

pytestmark = pytest.mark.postgres

ROWS = 5_000


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "paged_items"
    __table_args__ = (sa.Index("ix_paged_items_kind", "kind", "created_at", "id"),)
    id = mapped_column(sa.String(36), primary_key=True)
    kind = mapped_column(sa.String(10), nullable=False)
    created_at = mapped_column(UtcDateTime, nullable=False)


@pytest.fixture
def items(kit_engine: Engine) -> Engine:
    Base.metadata.create_all(kit_engine)
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    with kit_engine.begin() as conn:  # pairs share a time: ties go by id
        conn.execute(sa.insert(Item), [
            {"id": f"i{n:05d}", "kind": "a" if n % 2 else "b",
             "created_at": t0 + timedelta(minutes=n // 2)} for n in range(ROWS)])
        conn.execute(sa.text("ANALYZE paged_items"))
    return kit_engine


def test_a_deep_page_reads_an_index_range_not_every_row_before_it(items: Engine) -> None:
    with Session(items) as session:
        statement = sa.select(Item).where(Item.kind == "a")
        cursor = None
        for _ in range(40):  # 40 pages of 50 of the 2,500 "a" rows: 80 % deep
            _, cursor = keyset_page(session, statement, Item.created_at, Item.id, limit=50,
                                    cursor=cursor)
        captured: list[tuple[str, object]] = []

        def capture(conn, cursor_, sql, params, context, executemany):
            captured.append((sql, params))

        sa.event.listen(items, "before_cursor_execute", capture)
        try:
            keyset_page(session, statement, Item.created_at, Item.id, limit=50,
                        cursor=cursor)
        finally:
            sa.event.remove(items, "before_cursor_execute", capture)
        sql, params = captured[-1]
        plan = "\n".join(r[0] for r in session.connection().exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT TEXT) " + sql, params))
    assert "Index Cond" in plan and "ROW(created_at, id)" in plan.replace('"', ""), plan
    assert "Rows Removed by Filter" not in plan, plan


@pytest.mark.parametrize("newest_first", [True, False])
def test_pages_cover_every_row_once_in_either_order(items: Engine, newest_first) -> None:
    seen: list[str] = []
    cursor = None
    with Session(items) as session:
        while True:
            page, cursor = keyset_page(session, sa.select(Item).where(Item.kind == "b"),
                                       Item.created_at, Item.id, limit=333, cursor=cursor,
                                       newest_first=newest_first)
            seen += [i.id for i in page]
            if cursor is None:
                break
    expected = [f"i{n:05d}" for n in range(0, ROWS, 2)]
    assert seen == (expected[::-1] if newest_first else expected)
