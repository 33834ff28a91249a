"""JWT verification, the Principal, role dependencies and the revocation list.

Tokens are verified with PyJWT against asymmetric public keys only (RS256, ES256,
EdDSA): ``alg: none`` and HMAC are refused by construction because they are not in the
allowed list. ``exp``, ``iat``, ``aud``, ``iss``, ``sub`` and ``jti`` are required.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import jwt
import orjson
from fastapi import Depends, Request

from servicekit.jwks import UnknownKey
from servicekit.openapi import answers
from servicekit.problems import Forbidden, Unauthenticated

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"]
# An identity provider's token is 1-2 KiB; a longer one is refused before it is decoded
# (or remembered as verified), whoever signed it.
MAX_TOKEN_BYTES = 8 * 1024
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
_DECODE_OPTIONS = {"require": REQUIRED_CLAIMS}
SIGNED_TOKEN_CACHE_SIZE = 4096

ROLES = frozenset(
    {
        "researcher",
        "institution",
        "program_manager",
        "reviewer",
        "sandbox_applicant",
        "finance",
        "auditor",
        "admin",
    }
)
MINISTRY_ROLES = frozenset({"program_manager", "reviewer", "auditor", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: identities are opaque strings from the token."""

    sub: str
    name: str
    org: str
    roles: frozenset[str]
    jti: str = ""
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def acting_role(self, allowed: Iterable[str]) -> str:
        """The role under which an action is taken, for the audit trail."""
        for role in allowed:
            if role in self.roles:
                return role
        return sorted(self.roles)[0] if self.roles else ""


class RevocationList:
    """Revoked token ids and subjects (people who left).

    Held in memory and, when ``path`` is given, reloaded from a JSON file
    ``{"jti": [...], "sub": [...]}`` whenever its modification time changes, so an
    operator can revoke without a restart.
    """

    def __init__(
        self, jti: Iterable[str] = (), sub: Iterable[str] = (), path: Path | None = None
    ) -> None:
        self._jti = set(jti)
        self._sub = set(sub)
        self._file_jti: set[str] = set()
        self._file_sub: set[str] = set()
        self._path = path
        self._mtime: float | None = None
        self._lock = threading.Lock()

    def revoke_jti(self, jti: str) -> None:
        with self._lock:
            self._jti.add(jti)

    def revoke_sub(self, sub: str) -> None:
        with self._lock:
            self._sub.add(sub)

    def is_revoked(self, jti: str, sub: str) -> bool:
        self._reload_if_changed()
        with self._lock:
            return (
                jti in self._jti
                or jti in self._file_jti
                or sub in self._sub
                or sub in self._file_sub
            )

    def _reload_if_changed(self) -> None:
        if self._path is None:
            return
        try:
            mtime = os.stat(self._path).st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        data = json.loads(self._path.read_text()) if mtime is not None else {}
        with self._lock:
            self._file_jti = set(data.get("jti", []))
            self._file_sub = set(data.get("sub", []))
            self._mtime = mtime


# What the services record of a caller (actor, created_by, idempotency scope, audit org)
# is at most this long; a longer id is refused at the door, not by a column later on.
MAX_ID_LENGTH = 200
MAX_ROLES = 50


def _is_id(value: Any) -> bool:
    """An identity claim as the services store and compare it: a string, bounded, with
    no surrounding whitespace (``" hust"`` is not ``"hust"``)."""
    return (isinstance(value, str) and len(value) <= MAX_ID_LENGTH
            and value == value.strip() and "\x00" not in value)


class TokenVerifier:
    def __init__(
        self,
        public_keys: list[Any],
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 10,
        revocations: RevocationList | None = None,
        key_resolver: Callable[[str], list[Any]] | None = None,
    ) -> None:
        """``key_resolver``, when given, names the keys a token may be signed with (say,
        the one whose ``kid`` its header names, from a JWKS) instead of ``public_keys``;
        it returns keys ready for PyJWT and raises :class:`Unauthenticated` when it knows
        none."""
        if not public_keys and key_resolver is None:
            raise ValueError("TokenVerifier needs at least one public key")
        self._keys = public_keys
        self._key_resolver = key_resolver
        # (key index, alg) -> the key as PyJWT prepares it for alg, so a PEM is parsed
        # once, not on every request; None when preparing it fails (PyJWT then gets the
        # key as given and fails exactly as it would without the cache).
        self._prepared: dict[tuple[int, str], Any] = {}
        # Tokens whose signature verified. A caller sends the same token for its whole
        # life; checking the signature again costs an RSA operation that also releases the
        # GIL on the event loop's thread. Claims (expiry included) and revocation are
        # still checked on every request.
        self._signed: dict[str, bytes] = {}  # token -> its verified claims, as JSON
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self.revocations = revocations or RevocationList()

    @classmethod
    def from_pem_file(cls, path: Path, **kw: Any) -> TokenVerifier:
        return cls([path.read_bytes()], **kw)

    def remembers(self, token: str) -> bool:
        """Whether ``token`` verified before: ``verify`` needs no key for it."""
        return token in self._signed

    def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"token is longer than {MAX_TOKEN_BYTES} bytes")
        claims = self._decode(token)
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or len(roles) > MAX_ROLES or not all(
                isinstance(r, str) and 0 < len(r) <= MAX_ID_LENGTH for r in roles):
            raise Unauthenticated(f"token claim 'roles' must be a list of at most "
                                  f"{MAX_ROLES} role names")
        sub, org, name = claims["sub"], claims.get("org", ""), claims.get("name", "")
        if not _is_id(sub) or not sub:
            raise Unauthenticated(f"token claim 'sub' must be a non-empty id of at most "
                                  f"{MAX_ID_LENGTH} characters, without surrounding spaces")
        if not _is_id(org):
            raise Unauthenticated(f"token claim 'org' must be an id of at most "
                                  f"{MAX_ID_LENGTH} characters, without surrounding spaces")
        if not isinstance(name, str):
            raise Unauthenticated("token claim 'name' must be a string")
        jti = str(claims["jti"])
        self._check_revoked(jti, sub)
        return Principal(sub=sub, name=name, org=org, roles=frozenset(roles), jti=jti,
                         claims=claims)

    def check_still_valid(self, principal: Principal) -> None:
        """For a caller ``verify`` returned before: what can change since (``exp``, ``nbf``,
        revocation), checked as ``verify`` checks it."""
        self._check_times(principal.claims)
        self._check_revoked(principal.jti, principal.sub)

    def _check_revoked(self, jti: str, sub: str) -> None:
        if self.revocations.is_revoked(jti, sub):
            raise Unauthenticated("token has been revoked")

    def _prepared_key(self, index: int, key: Any, alg: str | None) -> Any:
        if alg is None or alg not in ALGORITHMS:
            return key
        cache_key = (index, alg)
        if cache_key not in self._prepared:
            try:
                prepared = jwt.get_algorithm_by_name(alg).prepare_key(key)
            except Exception:  # noqa: BLE001 - left to jwt.decode to report
                prepared = None
            self._prepared[cache_key] = prepared
        prepared = self._prepared[cache_key]
        return key if prepared is None else prepared

    def _decode(self, token: str) -> dict[str, Any]:
        signed = self._signed.get(token)
        if signed is not None:
            claims = orjson.loads(signed)  # a fresh copy: callers cannot alter the cache
            self._check_times(claims)
            return claims
        claims = self._verify(token)
        try:
            remembered = orjson.dumps(claims)  # JSON in, JSON out: the same claims
        except TypeError:  # an integer beyond 64 bits, say: verified again next time
            return claims
        if len(self._signed) >= SIGNED_TOKEN_CACHE_SIZE:
            self._signed.clear()
        self._signed[token] = remembered
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        """For a token whose signature and claims already verified: the only checks whose
        outcome changes with time (``exp``, ``nbf``), with the same leeway and errors as
        ``jwt.decode``. ``iss``, ``aud`` and the required claims are signed and were
        checked when the token was first seen."""
        now = time.time()
        if float(claims["exp"]) <= now - self._leeway:
            raise Unauthenticated("token has expired")
        nbf = claims.get("nbf")
        if nbf is not None and float(nbf) > now + self._leeway:
            raise Unauthenticated("token is not yet valid")

    def _verify(self, token: str) -> dict[str, Any]:
        last_error: Exception | None = None
        alg = _header_alg(token)
        if self._key_resolver is not None:
            keys = self._key_resolver(token)
        else:
            keys = [self._prepared_key(i, key, alg) for i, key in enumerate(self._keys)]
        for key in keys:
            try:
                return jwt.decode(
                    token,
                    key,
                    algorithms=ALGORITHMS,
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options=_DECODE_OPTIONS,  # type: ignore[arg-type]
                )
            except jwt.InvalidSignatureError as exc:
                last_error = exc  # try the next key (rotation)
            except jwt.PyJWTError as exc:
                raise _refusal(exc) from exc
        raise Unauthenticated("token signature does not verify") from last_error


def _refusal(exc: jwt.PyJWTError) -> Unauthenticated:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return Unauthenticated("token has expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return Unauthenticated("token is not yet valid")
    if isinstance(exc, jwt.InvalidAudienceError):
        return Unauthenticated("token audience is not accepted here")
    if isinstance(exc, jwt.InvalidIssuerError):
        return Unauthenticated("token issuer is not trusted")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return Unauthenticated(f"token lacks the '{exc.claim}' claim")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return Unauthenticated("token algorithm is not accepted")
    return Unauthenticated("token is malformed")


def _header_alg(token: str) -> str | None:
    """The ``alg`` the token's header names, or None when it cannot be read (jwt.decode
    then reports the token as it always does)."""
    try:
        segment = token.split(".", 1)[0].encode("ascii")
        header = json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
        alg = header.get("alg") if isinstance(header, dict) else None
    except Exception:  # noqa: BLE001 - malformed: jwt.decode says so
        return None
    return alg if isinstance(alg, str) else None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _verifier(request: Request) -> TokenVerifier:
    return request.app.state.kit.verifier


# The dependencies below are ``async def`` on purpose: they do no I/O (the revocation
# file is re-read only when it changes), and FastAPI runs a plain ``def`` dependency in
# the thread pool, a thread hop per dependency and request.


@answers(401, token="optional")
async def optional_principal(request: Request) -> Principal | None:
    """The caller when a token is presented; ``None`` for anonymous calls."""
    token = bearer_token(request)
    if token is None:
        return None
    try:
        return _verifier(request).verify(token)
    except UnknownKey:  # a key rotated in at the identity provider: fetch its keys
        jwks = request.app.state.kit.jwks
        if jwks is None or not await jwks.refresh():
            raise
    return _verifier(request).verify(token)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


@answers(401, 403, token="required")  # 403: not the caller's resource, as handlers decide
async def current_principal(principal: OptionalPrincipal) -> Principal:
    """The authenticated caller; 401 problem+json otherwise."""
    if principal is None:
        raise Unauthenticated()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def authorize(request: Request, principal: Principal | None, roles: Iterable[str]) -> Principal:
    """The caller if they hold one of ``roles``: 401 without a token, 403 without the role.

    Records the role they act in on ``request.state`` for the audit trail.
    """
    if principal is None:
        raise Unauthenticated()
    roles = tuple(roles)
    if not principal.has(*roles):
        raise Forbidden(f"this action needs one of the roles: {', '.join(roles)}")
    request.state.acting_role = principal.acting_role(roles)
    return principal


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """``roles``, refused at import time when one is not a platform role."""
    roles = tuple(roles)
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    return roles


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency admitting callers holding any of ``roles`` (403 otherwise).

    Declare it on the route, so each route states its permissions::

        @router.post("/v1/calls")
        def create_call(user: Annotated[Principal, Depends(require_roles("program_manager"))]):
    """
    check_roles(roles)

    @answers(401, 403, token="required")
    async def dependency(request: Request, principal: OptionalPrincipal) -> Principal:
        return authorize(request, principal, roles)

    dependency.__name__ = f"require_{'_or_'.join(roles)}"
    return dependency
