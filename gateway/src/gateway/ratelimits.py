"""Rate limits per subject and per client address, per route class (the `limits` library).

Each request counts against its client address (before its token is checked, so a flood
of bad tokens is stopped cheaply) and, once authenticated, against its subject, in the
class of its route: ``read`` (GET, HEAD) or ``write``. Defaults (settings): 20 reads and
5 writes a second per subject, 100 reads and 20 writes a second per address.

Counters live in memory with one gateway process, in Redis/Valkey when several share
them. In memory they are counted by ``limits``' synchronous storage (nothing to wait
for), whose expired counters are swept once every ``SWEEP_SECONDS`` as requests come,
where the storage would start a thread to sweep them every 10 ms under load (and its
asynchronous form a task on nearly every hit): that was a quarter of the hop's CPU.
When the shared store does not answer within
``rate_limit_store_timeout_seconds`` the request is let through unlimited and the
failure is logged: the store being down must not take the API down with it.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits import storage as sync_storage
from limits import strategies as sync_strategies
from limits.aio import strategies
from limits.aio.storage import RedisStorage, Storage
from limits.errors import StorageError

from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

# The strategy settings name, by its class name in limits (sync and async alike).
_STRATEGIES = {
    "fixed-window": "FixedWindowRateLimiter",
    "sliding-window-counter": "SlidingWindowCounterRateLimiter",
    "moving-window": "MovingWindowRateLimiter",
}


SWEEP_SECONDS = 1.0


class SweptMemoryStorage(sync_storage.MemoryStorage):
    """``limits``' memory storage, its expired counters dropped by ``sweep``."""

    def _MemoryStorage__schedule_expiry(self) -> None:  # the storage's own hook
        """Nothing per hit: ``RateLimits`` sweeps (a counter read after it expired is
        dropped by the read itself)."""

    def sweep(self) -> None:
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int,
                                     amount: int = 1) -> bool:
        """``limits``' sliding-window counter (``MemoryStorage``'s: the same keys, counters
        and arithmetic) in one call on the event loop's thread, where the storage's own
        makes ten, each through its error wrapper and a per-key lock, for a race that one
        thread cannot have. ``test_rate_limits`` holds the two to the same decisions."""
        if amount > limit:
            return False
        now = time.time()
        previous_key = f"{key}/{int((now - expiry) / expiry)}"
        current_key = f"{key}/{int(now / expiry)}"
        counts, expirations = self.storage, self.expirations
        previous = counts[previous_key] if expirations.get(previous_key, 0) > now else 0
        current = counts[current_key] if expirations.get(current_key, 0) > now else 0
        weighted = current
        if previous:  # as limits weighs it, to the last rounding
            weighted += previous * ((1 - (((now - expiry) / expiry) % 1)) * expiry) / expiry
        if math.floor(weighted) + amount > limit:
            return False
        if current:
            counts[current_key] = current + amount
        else:  # a new window (or an expired one's key): counted afresh, kept two windows
            counts[current_key] = amount
            expirations[current_key] = now + 2 * expiry
        return True


def build_storage(settings: GatewaySettings) -> Storage | sync_storage.Storage:
    url = settings.rate_limit_storage_url
    if url == "memory://":
        return SweptMemoryStorage()
    timeout = settings.rate_limit_store_timeout_seconds
    return RedisStorage(f"async+{url}", implementation="redispy", wrap_exceptions=True,
                        key_prefix="most-gateway", socket_timeout=timeout,
                        socket_connect_timeout=timeout)


class RateLimits:
    """``over(per, route_class, who)``: None within the limits, else the seconds to wait;
    ``over_now`` the same without waiting, when the counters are ``immediate`` (memory)."""

    def __init__(self, settings: GatewaySettings,
                 storage: Storage | sync_storage.Storage | None = None) -> None:
        self.storage = storage or build_storage(settings)
        self._sync: sync_strategies.RateLimiter | None = None
        self._async: strategies.RateLimiter | None = None
        strategy = _STRATEGIES[settings.rate_limit_strategy]
        if isinstance(self.storage, sync_storage.Storage):
            self._sync = getattr(sync_strategies, strategy)(self.storage)
        else:
            self._async = getattr(strategies, strategy)(self.storage)
        self._limits: dict[tuple[str, str], list[RateLimitItem]] = {
            key: parse_many(value) if value else []
            for key, value in settings.rate_limits().items()
        }
        # The swept sliding-window counter is asked directly, each limit's key made of
        # the parts ``RateLimitItem.key_for`` joins (what ``limiter.hit`` does, less the
        # two calls and the join per hit).
        self._keyed: dict[tuple[str, str], list[tuple[RateLimitItem, str, str, int]]] = {}
        if (isinstance(self.storage, SweptMemoryStorage)
                and strategy == "SlidingWindowCounterRateLimiter"):
            for (per, route_class), items in self._limits.items():
                self._keyed[(per, route_class)] = [
                    (item, *item.key_for(per, route_class, "\0").split("\0"),
                     item.get_expiry()) for item in items]
        self._failing = False
        self._next_sweep = time.monotonic() + SWEEP_SECONDS

    @property
    def immediate(self) -> bool:
        """Whether counting waits for nothing (in memory): ``over_now`` may be used."""
        return self._sync is not None

    def over_now(self, per: str, route_class: str, who: str) -> int | None:
        """``over`` for counters in memory."""
        limiter = self._sync
        assert limiter is not None, "over_now needs the in-memory counters"
        storage = self.storage
        if isinstance(storage, SweptMemoryStorage):
            if (now := time.monotonic()) >= self._next_sweep:
                self._next_sweep = now + SWEEP_SECONDS
                storage.sweep()
            if self._keyed:
                acquire = storage.acquire_sliding_window_entry
                for item, before, after, expiry in self._keyed[(per, route_class)]:
                    if not acquire(before + who + after, item.amount, expiry):
                        return self._wait(item, per, route_class, who)
                return None
        for item in self._limits[(per, route_class)]:
            if not limiter.hit(item, per, route_class, who):
                return self._wait(item, per, route_class, who)
        return None

    def _wait(self, item: RateLimitItem, per: str, route_class: str, who: str) -> int:
        """The seconds until ``who`` may send again (``Retry-After``)."""
        stats = self._sync.get_window_stats(item, per, route_class, who)  # type: ignore[union-attr]
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def over(self, per: str, route_class: str, who: str) -> int | None:
        """Count one request of ``who`` (a subject or an address); the ``Retry-After``
        seconds when that goes past one of its limits."""
        limiter = self._async
        if limiter is None:
            return self.over_now(per, route_class, who)
        for item in self._limits[(per, route_class)]:
            try:
                if await limiter.hit(item, per, route_class, who):
                    continue
                stats = await limiter.get_window_stats(item, per, route_class, who)
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
