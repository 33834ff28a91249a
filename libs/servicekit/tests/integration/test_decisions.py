"""Decision registers on PostgreSQL: numbers per register and year, with no gap and no
repeat under concurrent decisions, and a rolled-back decision gives its number back."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, insert, select

from servicekit.decisions import take_number

from .test_unit_of_work import EFFECTS

pytestmark = pytest.mark.postgres


def test_twenty_racing_decisions_across_two_agencies_get_gap_free_numbers(
        kit_engine: Engine) -> None:
    registers = ["QĐ-MOST", "QĐ-TNKS-SBV"]
    start = threading.Barrier(20)

    def decide(i: int) -> tuple[str, int]:
        register = registers[i % 2]
        with kit_engine.connect() as conn:
            start.wait(10)  # all twenty open their transactions together
            number = take_number(conn, register, 2026)
            # The decision's own write, in the same transaction, after the number.
            conn.execute(insert(EFFECTS).values(event_id=f"{register}#{number.number}"))
            conn.commit()
            return register, number.number

    with ThreadPoolExecutor(max_workers=20) as pool:
        taken = list(pool.map(decide, range(20)))

    by_register: dict[str, list[int]] = defaultdict(list)
    for register, number in taken:
        by_register[register].append(number)
    assert {r: sorted(n) for r, n in by_register.items()} == {
        "QĐ-MOST": list(range(1, 11)), "QĐ-TNKS-SBV": list(range(1, 11))}
    with kit_engine.connect() as conn:
        written = sorted(conn.execute(select(EFFECTS.c.event_id)).scalars())
    assert written == sorted(f"{r}#{n}" for r, n in taken)


def test_a_rolled_back_decision_gives_its_number_back(kit_engine: Engine) -> None:
    with kit_engine.connect() as conn:
        assert take_number(conn, "QĐ-MOST", 2026).number == 1
        conn.commit()
    with kit_engine.connect() as conn:
        assert take_number(conn, "QĐ-MOST", 2026).number == 2
        conn.rollback()
    with kit_engine.connect() as conn:
        second = take_number(conn, "QĐ-MOST", 2026)
        conn.commit()
    assert second.decision_no == "2/QĐ-MOST"


def test_each_year_starts_again_from_one(kit_engine: Engine) -> None:
    with kit_engine.connect() as conn:
        take_number(conn, "QĐ-MOST", 2026)
        take_number(conn, "QĐ-MOST", 2026)
        first_of_next = take_number(conn, "QĐ-MOST", 2027)
        conn.commit()
    assert (first_of_next.number, first_of_next.year) == (1, 2027)
