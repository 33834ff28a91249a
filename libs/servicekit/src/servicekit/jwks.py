"""The identity provider's token-signing keys, from its JWKS URL.

Fetched with PyJWT's ``PyJWKClient`` off the event loop: before traffic, every
``cache_seconds`` (:meth:`JwksKeys.keep_fresh`), and when a token names a key id not
seen yet (a rotation), at most once per ``cooldown_seconds`` so that made-up key ids
cannot make a process hammer the provider. The gateway and the services use the same
cache, so both see a rotated key the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time

import jwt
from jwt import PyJWK, PyJWKClient

from servicekit.problems import Unauthenticated

log = logging.getLogger(__name__)


class UnknownKey(Unauthenticated):
    """The token names a signing key this process does not (yet) know."""

    def __init__(self) -> None:
        super().__init__("token is signed with a key the identity provider does not list")


class JwksKeys:
    """The identity provider's signing keys by ``kid``, fetched from its JWKS URL."""

    def __init__(self, url: str, *, cache_seconds: float, cooldown_seconds: float,
                 timeout_seconds: float) -> None:
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout_seconds)
        self._keys: dict[str, PyJWK] = {}
        self.cache_seconds = cache_seconds
        self._cooldown = cooldown_seconds
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    def resolve(self, token: str) -> list[PyJWK]:
        """The key the token's header names (no I/O); :class:`UnknownKey` otherwise."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token is malformed") from exc
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKey()
        return [key]

    async def refresh(self, *, forced: bool = True) -> bool:
        """Fetch the key set again, unless one was fetched within the cool-down (a
        ``forced`` refresh, for an unknown key) or within the cache time. True when the
        keys were fetched now."""
        async with self._lock:
            wait = self._cooldown if forced else self.cache_seconds
            if time.monotonic() - self._fetched_at < wait:
                return False
            self._fetched_at = time.monotonic()
            try:
                keys = await asyncio.to_thread(self._client.get_signing_keys, True)
            except jwt.PyJWTError as exc:
                log.warning("JWKS fetch failed (%s); keeping %d known keys", exc,
                            len(self._keys))
                return False
            self._keys = {k.key_id: k for k in keys if k.key_id}
            return True

    async def keep_fresh(self) -> None:
        """Fetch the keys now and again every ``cache_seconds`` (a background task)."""
        while True:
            await self.refresh(forced=False)
            await asyncio.sleep(self.cache_seconds)
