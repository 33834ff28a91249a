"""A readiness check answers within its timeout whatever the dependency does, and a
dependency that never answers holds one run of the check, not one per probe."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from servicekit.readiness import BoundedCheck, NoAnswer


def test_a_check_that_does_not_answer_is_given_up_after_its_timeout_and_runs_once() -> None:
    answered = threading.Event()
    runs: list[float] = []

    def hung() -> str:
        runs.append(time.monotonic())
        answered.wait(10)
        return "answered"

    check = BoundedCheck("db", hung)

    async def probes() -> list[object]:
        return await asyncio.gather(check(0.2), check(0.2), return_exceptions=True)

    started = time.monotonic()
    first = asyncio.run(probes())
    again = asyncio.run(probes())  # while the first run is still blocked
    elapsed = time.monotonic() - started
    answered.set()

    assert [type(outcome) for outcome in first + again] == [NoAnswer] * 4
    assert str(first[0]) == "no answer within 0.2 s"
    assert elapsed < 1.0
    assert len(runs) == 1
    assert asyncio.run(check(1.0)) == "answered"  # the run that outlived the probes


def test_a_check_runs_afresh_after_its_last_run_failed() -> None:
    outcomes = iter([ConnectionRefusedError("down"), "ok"])

    def run() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    check = BoundedCheck("db", run)

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(check(1.0))
    assert asyncio.run(check(1.0)) == "ok"
