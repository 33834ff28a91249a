"""Authentication at the edge: the bearer token checked once, before any service.

The checks are the services' own (``servicekit.auth.TokenVerifier``: asymmetric
algorithms only, ``exp``/``nbf``/``iat``/``aud``/``iss`` with the same leeway, required
claims, bounded ids, revoked ``jti``/``sub``), so a token the gateway lets through is one
the services accept. A verified token is remembered (bounded), so a caller's next
requests cost a dictionary look-up and the time checks, not an RSA operation.

Keys come from the identity provider's JWKS (``GATEWAY_JWT_JWKS_URL``), a PEM file
(``GATEWAY_JWT_PUBLIC_KEY_FILE``) or, in the dev profile, the development issuer. The
JWKS is fetched with PyJWT's ``PyJWKClient`` off the event loop: at start, every
``JWT_JWKS_CACHE_SECONDS``, and when a token names a key id not seen yet (a rotation),
at most once per ``JWT_JWKS_COOLDOWN_SECONDS`` so that made-up key ids cannot make the
gateway hammer the provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import jwt
from jwt import PyJWK, PyJWKClient

from gateway.settings import GatewaySettings
from servicekit.auth import Principal, RevocationList, TokenVerifier
from servicekit.devtokens import ensure_dev_keys
from servicekit.problems import Unauthenticated

log = logging.getLogger(__name__)

_AUTHORIZATION = b"authorization"


class UnknownKey(Unauthenticated):
    """The token names a signing key the gateway does not (yet) know."""

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


class EdgeAuthenticator:
    """The caller of a request, from its ``Authorization`` header."""

    def __init__(self, verifier: TokenVerifier, jwks: JwksKeys | None = None) -> None:
        self.verifier = verifier
        self.jwks = jwks

    async def principal(self, headers: Sequence[tuple[bytes, bytes]]) -> Principal | None:
        """The verified caller, ``None`` without a token; :class:`Unauthenticated` for
        a token that is malformed, expired, not for this platform, revoked..."""
        token = bearer_token(headers)
        if token is None:
            return None
        try:
            return self.verifier.verify(token)
        except UnknownKey:
            if self.jwks is None or not await self.jwks.refresh():
                raise
        return self.verifier.verify(token)


def bearer_token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == _AUTHORIZATION:
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("Authorization header must be 'Bearer <token>'")
            return token
    return None


def build_authenticator(settings: GatewaySettings,
                        revocations: RevocationList) -> EdgeAuthenticator:
    """From the settings: JWKS, else the PEM file, else (dev) the dev issuer's key."""
    common = {"issuer": settings.jwt_issuer, "audience": settings.jwt_audience,
              "leeway_seconds": settings.jwt_leeway_seconds, "revocations": revocations}
    if settings.jwt_jwks_url:
        jwks = JwksKeys(settings.jwt_jwks_url, cache_seconds=settings.jwt_jwks_cache_seconds,
                        cooldown_seconds=settings.jwt_jwks_cooldown_seconds,
                        timeout_seconds=settings.jwt_jwks_timeout_seconds)
        return EdgeAuthenticator(TokenVerifier([], key_resolver=jwks.resolve, **common), jwks)
    key_file = settings.jwt_public_key_file
    if key_file is None:
        if settings.profile != "dev":
            raise ValueError("the gateway needs jwt_jwks_url or jwt_public_key_file")
        _, key_file = ensure_dev_keys(settings.dev_key_dir)
    return EdgeAuthenticator(TokenVerifier.from_pem_file(Path(key_file), **common))
