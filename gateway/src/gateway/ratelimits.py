"""Rate limits per subject and per client address, per route class (the `limits` library).

Each request counts against its client address (before its token is checked, so a flood
of bad tokens is stopped cheaply) and, once authenticated, against its subject, in the
class of its route: ``read`` (GET, HEAD) or ``write``. Defaults (settings): 20 reads and
5 writes a second per subject, 100 reads and 20 writes a second per address.

Counters live in memory with one gateway process, in Redis/Valkey when several share
them. When that store does not answer within ``rate_limit_store_timeout_seconds`` the
request is let through unlimited and the failure is logged: the store being down must
not take the API down with it.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio import strategies
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError

from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

_STRATEGIES = {
    "fixed-window": strategies.FixedWindowRateLimiter,
    "sliding-window-counter": strategies.SlidingWindowCounterRateLimiter,
    "moving-window": strategies.MovingWindowRateLimiter,
}


def build_storage(settings: GatewaySettings) -> Storage:
    url = settings.rate_limit_storage_url
    if url == "memory://":
        return MemoryStorage()
    timeout = settings.rate_limit_store_timeout_seconds
    return RedisStorage(f"async+{url}", implementation="redispy", wrap_exceptions=True,
                        key_prefix="most-gateway", socket_timeout=timeout,
                        socket_connect_timeout=timeout)


class RateLimits:
    """``over(per, route_class, who)``: None within the limits, else the seconds to wait."""

    def __init__(self, settings: GatewaySettings, storage: Storage | None = None) -> None:
        self.storage = storage or build_storage(settings)
        self._limiter = _STRATEGIES[settings.rate_limit_strategy](self.storage)
        self._limits: dict[tuple[str, str], list[RateLimitItem]] = {
            key: parse_many(value) if value else []
            for key, value in settings.rate_limits().items()
        }
        self._failing = False

    async def over(self, per: str, route_class: str, who: str) -> int | None:
        """Count one request of ``who`` (a subject or an address); the ``Retry-After``
        seconds when that goes past one of its limits."""
        for item in self._limits[(per, route_class)]:
            try:
                if await self._limiter.hit(item, per, route_class, who):
                    continue
                stats = await self._limiter.get_window_stats(item, per, route_class, who)
            except StorageError as exc:
                self._store_failed(exc)
                return None
            self._store_answered()
            return max(1, math.ceil(stats.reset_time - time.time()))
        self._store_answered()
        return None

    def _store_failed(self, exc: StorageError) -> None:
        if not self._failing:
            log.error("rate-limit store unavailable (%r): requests pass unlimited",
                      exc.storage_error)
        self._failing = True

    def _store_answered(self) -> None:
        if self._failing:
            log.warning("rate-limit store answers again: limits apply")
        self._failing = False
