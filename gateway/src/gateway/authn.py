"""Authentication at the edge: the bearer token checked once, before any service.

The checks are the services' own (``servicekit.auth.TokenVerifier``: asymmetric
algorithms only, ``exp``/``nbf``/``iat``/``aud``/``iss`` with the same leeway, required
claims, bounded ids, revoked ``jti``/``sub``), so a token the gateway lets through is one
the services accept. A verified token's caller is remembered (bounded), so a caller's
next requests cost a dictionary look-up and the checks whose outcome changes with time
(``exp``, ``nbf``, revocation), not an RSA operation nor reading its claims again.

Keys come from the identity provider's JWKS (``GATEWAY_JWT_JWKS_URL``, the kit's
``servicekit.jwks`` cache: fetched at start, every ``JWT_JWKS_CACHE_SECONDS``, and for a
key id not seen yet at most once per ``JWT_JWKS_COOLDOWN_SECONDS``), a PEM file
(``GATEWAY_JWT_PUBLIC_KEY_FILE``) or, in the dev profile, the development issuer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.settings import GatewaySettings
from servicekit.auth import SIGNED_TOKEN_CACHE_SIZE as CALLERS_REMEMBERED
from servicekit.auth import Principal, RevocationList, TokenVerifier
from servicekit.devtokens import ensure_dev_keys
from servicekit.jwks import JwksKeys, UnknownKey
from servicekit.problems import Unauthenticated

_AUTHORIZATION = b"authorization"


class EdgeAuthenticator:
    """The caller of a request, from its ``Authorization`` header."""

    def __init__(self, verifier: TokenVerifier, jwks: JwksKeys | None = None) -> None:
        self.verifier = verifier
        self.jwks = jwks
        self._callers: dict[str, Principal] = {}  # token -> its verified caller

    def immediate(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """Whether ``principal_now`` can answer: no key to fetch for this token."""
        if self.jwks is None:
            return True
        try:
            token = bearer_token(headers)
        except Unauthenticated:
            return True
        return token is None or self.verifier.remembers(token)

    def principal_now(self, headers: Sequence[tuple[bytes, bytes]]) -> Principal | None:
        """``principal`` when ``immediate``."""
        token = bearer_token(headers)
        return None if token is None else self._verified(token)

    async def principal(self, headers: Sequence[tuple[bytes, bytes]]) -> Principal | None:
        """The verified caller, ``None`` without a token; :class:`Unauthenticated` for
        a token that is malformed, expired, not for this platform, revoked..."""
        token = bearer_token(headers)
        if token is None:
            return None
        try:
            return self._verified(token)
        except UnknownKey:
            if self.jwks is None or not await self.jwks.refresh():
                raise
        return self._verified(token)

    def _verified(self, token: str) -> Principal:
        caller = self._callers.get(token)
        if caller is not None:
            self.verifier.check_still_valid(caller)
            return caller
        caller = self.verifier.verify(token)
        if len(self._callers) >= CALLERS_REMEMBERED:
            self._callers.clear()
        self._callers[token] = caller
        return caller


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
