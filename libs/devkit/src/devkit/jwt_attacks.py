"""Forged and unacceptable bearer tokens, for the gateway's and the services' tests.

:func:`forged_token` makes the token of one of :data:`ATTACKS` against the dev key pair
in ``key_dir`` (``servicekit.devtokens``): every one must be refused with 401, at the
edge and at each service. Two of them name what a test's revocation file must list:
:data:`REVOKED_JTI` and :data:`REVOKED_SUB` (:func:`revocation_file` writes it).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from servicekit.devtokens import PRIVATE, PUBLIC
from servicekit.settings import DEV_ISSUER, PLATFORM_AUDIENCE

REVOKED_JTI = "jti-revoked"
REVOKED_SUB = "left-the-ministry"
# Far above any identity provider's token (1-2 KiB) and the services' 8 KiB, within what
# the gateway reads of a request's head (64 KiB, else 431): a token this size is refused
# for its size (401), whoever signed it.
OVERSIZED_BYTES = 32 * 1024


def revocation_file(path: Path) -> Path:
    """The revocation list (``{"jti": [...], "sub": [...]}``) these attacks expect."""
    path.write_text(json.dumps({"jti": [REVOKED_JTI], "sub": [REVOKED_SUB]}))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    """A programme manager's valid claims, with ``overrides`` (None removes a claim)."""
    now = int(time.time())
    base = {"sub": "pm-1", "name": "PM", "org": "MOST", "roles": ["program_manager"],
            "iss": DEV_ISSUER, "aud": PLATFORM_AUDIENCE, "iat": now, "nbf": now,
            "exp": now + 600, "jti": str(uuid.uuid4())}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(key_dir: Path, **overrides: Any) -> str:
    """A token signed (RS256) with the dev key the app under test trusts, its claims
    written as given: PyJWT's encoder would refuse some of the wrong types tried here."""
    rs256 = jwt.get_algorithm_by_name("RS256")
    signing_input = (_segment({"alg": "RS256", "typ": "JWT", "kid": "dev"}) + "."
                     + _segment(claims(**overrides))).encode()
    signature = rs256.sign(signing_input, rs256.prepare_key((key_dir / PRIVATE).read_bytes()))
    return f"{signing_input.decode()}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value).encode())


@functools.cache
def _other_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _other_ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _hs256_with_public_key(key_dir: Path) -> str:
    """The confusion attack: HMAC keyed with the server's public key."""
    signing_input = _segment({"alg": "HS256", "typ": "JWT"}) + "." + _segment(claims())
    mac = hmac.new((key_dir / PUBLIC).read_bytes(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{_b64(mac.digest())}"


def _altered(key_dir: Path) -> str:
    header, _, signature = signed(key_dir).split(".")
    return f"{header}.{_segment(claims(roles=['admin']))}.{signature}"


def _attacker_jwk() -> dict[str, Any]:
    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_other_rsa().public_key()))


_NONE = _segment({"alg": "none", "typ": "JWT"})
_BUILDERS: dict[str, Callable[[Path], str]] = {
    "alg none": lambda k: f"{_NONE}.{_segment(claims())}.",
    "alg None, signature kept": lambda k: f"{_segment({'alg': 'None'})}.{_segment(claims())}."
                                          + signed(k).split(".")[2],
    "HS256 signed with the public key": _hs256_with_public_key,
    "signed with another key": lambda k: jwt.encode(claims(), _pem(_other_rsa()), "RS256"),
    "ES256 with another key": lambda k: jwt.encode(claims(), _pem(_other_ec()), "ES256"),
    "another key named in a jku header": lambda k: jwt.encode(
        claims(), _pem(_other_rsa()), "RS256",
        headers={"jku": "https://attacker.invalid/jwks.json", "kid": "dev"}),
    "another key embedded as a jwk header": lambda k: jwt.encode(
        claims(), _pem(_other_rsa()), "RS256", headers={"jwk": _attacker_jwk()}),
    "signature stripped": lambda k: signed(k).rsplit(".", 1)[0] + ".",
    "payload altered": _altered,
    "expired": lambda k: signed(k, exp=int(time.time()) - 120),
    "not yet valid (nbf)": lambda k: signed(k, nbf=int(time.time()) + 600),
    "wrong audience": lambda k: signed(k, aud="another-platform"),
    "wrong issuer": lambda k: signed(k, iss="https://evil.example"),
    "no jti": lambda k: signed(k, jti=None),
    "no exp": lambda k: signed(k, exp=None),
    "no sub": lambda k: signed(k, sub=None),
    "revoked jti": lambda k: signed(k, jti=REVOKED_JTI),
    "revoked subject": lambda k: signed(k, sub=REVOKED_SUB),
    "oversized": lambda k: signed(k, name="N" * OVERSIZED_BYTES),
    "roles a string": lambda k: signed(k, roles="program_manager"),
    "roles holding a number": lambda k: signed(k, roles=["program_manager", 7]),
    "sub a number": lambda k: signed(k, sub=12345),
    "org a list": lambda k: signed(k, org=["MOST"]),
    "name an object": lambda k: signed(k, name={"first": "P"}),
    "jti a number": lambda k: signed(k, jti=12345),
    "exp a string": lambda k: signed(k, exp="tomorrow"),
    "iat a string": lambda k: signed(k, iat="today"),
    "nbf a string": lambda k: signed(k, nbf="now"),
    "aud a number": lambda k: signed(k, aud=42),
    "iss a list": lambda k: signed(k, iss=[DEV_ISSUER]),
    "garbage": lambda k: "a.b.c",
}
ATTACKS: tuple[str, ...] = tuple(_BUILDERS)


def forged_token(key_dir: Path, attack: str) -> str:
    """The token of ``attack`` (one of :data:`ATTACKS`); it must be refused (401)."""
    return _BUILDERS[attack](key_dir)
