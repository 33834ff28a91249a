"""Readiness checks that answer in bounded time whatever a dependency does.

A check that blocks (a database that accepts connections and answers nothing: a stopped
server, a frozen host) runs on a daemon thread of its own, and ``/ready`` waits for it at
most its timeout. While one run of a check is still blocked, later probes wait for that
same run instead of starting another, so a hung dependency holds one thread (and one
connection) however often it is probed; the run ends once the dependency answers again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class NoAnswer(TimeoutError):
    """A check gave no answer within its timeout."""


class BoundedCheck(Generic[T]):
    """``await check(timeout)``: ``run()``'s result (or its exception), or
    :class:`NoAnswer` once ``timeout`` seconds have passed without one."""

    def __init__(self, name: str, run: Callable[[], T]) -> None:
        self.name = name
        self._run = run
        self._lock = threading.Lock()
        self._running: Future[T] | None = None

    async def __call__(self, timeout: float) -> T:
        waiting = asyncio.wrap_future(self._current())
        # asyncio.wait, not wait_for: a run that outlives this probe is not cancelled
        # (it cannot be), later probes wait for it.
        done, _ = await asyncio.wait([waiting], timeout=timeout)
        if not done:
            raise NoAnswer(f"no answer within {timeout:g} s")
        return waiting.result()

    def _current(self) -> Future[T]:
        """The run still under way, else a new one."""
        with self._lock:
            if self._running is None or self._running.done():
                self._running = Future()
                threading.Thread(target=self._work, args=(self._running,),
                                 name=f"ready-{self.name}", daemon=True).start()
            return self._running

    def _work(self, future: Future[T]) -> None:
        try:
            result = self._run()
        except BaseException as exc:  # noqa: BLE001 - handed to every probe waiting
            future.set_exception(exc)
        else:
            future.set_result(result)
