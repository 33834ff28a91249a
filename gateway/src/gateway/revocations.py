"""Revoked tokens and people, refused at the edge by every replica alike.

With one gateway process the list is the revocation file the services read
(``GATEWAY_REVOCATION_FILE``, reloaded when it changes). With several replicas they share
the rate-limit store (Redis/Valkey), which also keeps a revocation list: two sorted sets,
``jti`` and ``sub``, scored with the time until which the entry stands (a token's ``jti``
needs revoking only until the token expires; a person stays revoked). Each replica reads
them every ``GATEWAY_REVOCATION_REFRESH_SECONDS`` in the background, so a revocation
takes effect within about that time, and a request never waits for the store.

Operators revoke with ``python -m gateway.revocations revoke --jti ID`` (or ``--sub``):
into the shared store when one is configured, else into the revocation file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from redis.asyncio import Redis

from gateway.settings import GatewaySettings
from servicekit.auth import RevocationList

log = logging.getLogger(__name__)

KEYS = {"jti": "most:gateway:revoked:jti", "sub": "most:gateway:revoked:sub"}


def redis_url(storage_url: str) -> str | None:
    """The shared store's URL (``redis://``, ``rediss://``; Valkey speaks the same
    protocol), None for in-memory storage."""
    return storage_url if storage_url.startswith(("redis://", "rediss://")) else None


class SharedRevocations(RevocationList):
    """The revocation file (if any) and the shared store's lists, read in the background."""

    def __init__(self, redis: Redis, *, path: Path | None = None,
                 refresh_seconds: float = 1.0) -> None:
        super().__init__(path=path)
        self._redis = redis
        self._refresh_seconds = refresh_seconds
        self._stored: dict[str, frozenset[str]] = {"jti": frozenset(), "sub": frozenset()}

    def is_revoked(self, jti: str, sub: str) -> bool:
        stored = self._stored
        return jti in stored["jti"] or sub in stored["sub"] or super().is_revoked(jti, sub)

    async def load(self) -> None:
        now = time.time()
        loaded = {}
        for kind, key in KEYS.items():
            members = await self._redis.zrangebyscore(key, now, "+inf")
            loaded[kind] = frozenset(m.decode() if isinstance(m, bytes) else m
                                     for m in members)
        self._stored = loaded

    async def keep_fresh(self) -> None:
        """Read the store's lists now and then every ``refresh_seconds`` (a background
        task); a failed read keeps the last lists and is logged."""
        failing = False
        while True:
            try:
                await self.load()
                if failing:
                    log.warning("revocation list readable again in the shared store")
                failing = False
            except Exception as exc:  # noqa: BLE001 - the store may be down; keep serving
                if not failing:
                    log.error("cannot read the revocation list from the shared store: %r "
                              "(the last one read still applies)", exc)
                failing = True
            await asyncio.sleep(self._refresh_seconds)


async def revoke_in_store(redis: Redis, *, jti: Iterable[str] = (), sub: Iterable[str] = (),
                          until: float = math.inf) -> None:
    """Revoke token ids (until ``until``, epoch seconds: the token's expiry) and
    subjects (for good) for every replica."""
    for kind, values, score in (("jti", list(jti), until), ("sub", list(sub), math.inf)):
        if values:
            await redis.zadd(KEYS[kind], dict.fromkeys(values, score))
    await redis.zremrangebyscore(KEYS["jti"], "-inf", time.time())


def revoke_in_file(path: Path, *, jti: Iterable[str] = (), sub: Iterable[str] = ()) -> None:
    """Add to the revocation file, replacing it in one step (readers never see half)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    for kind, values in (("jti", jti), ("sub", sub)):
        data[kind] = sorted(set(data.get(kind, [])) | set(values))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.revocations",
        description="Revoke a token (--jti) or a person (--sub) at every gateway replica: in "
                    "the shared store when GATEWAY_RATE_LIMIT_STORAGE_URL names one, else in "
                    "GATEWAY_REVOCATION_FILE.")
    parser.add_argument("command", choices=["revoke"])
    parser.add_argument("--jti", action="append", default=[])
    parser.add_argument("--sub", action="append", default=[])
    parser.add_argument("--until", type=float, default=None,
                        help="epoch seconds until which a --jti stands (the token's exp)")
    args = parser.parse_args(argv)
    if not args.jti and not args.sub:
        parser.error("name at least one --jti or --sub")
    settings = GatewaySettings()
    url = redis_url(settings.rate_limit_storage_url)
    if url is not None:
        async def revoke() -> None:
            redis = Redis.from_url(url)
            try:
                await revoke_in_store(redis, jti=args.jti, sub=args.sub,
                                      until=args.until or math.inf)
            finally:
                await redis.aclose()

        asyncio.run(revoke())
        sys.stdout.write(f"revoked in the shared store {url.rsplit('@', 1)[-1]}\n")
        return 0
    if settings.revocation_file is None:
        parser.error("set GATEWAY_RATE_LIMIT_STORAGE_URL (redis://...) or "
                     "GATEWAY_REVOCATION_FILE")
    revoke_in_file(settings.revocation_file, jti=args.jti, sub=args.sub)
    sys.stdout.write(f"revoked in {settings.revocation_file}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
