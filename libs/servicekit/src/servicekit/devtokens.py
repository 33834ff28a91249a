"""Development token issuer: on only in the dev profile (embedded run and local stack).

Keys are an RSA pair under ``var/dev-keys`` made on first use; services in the dev
profile verify with its public half. ``POST /dev/tokens`` with ``{sub, name, org,
roles}`` returns ``{access_token}``; ``most-dev-token`` prints the same on the console.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from servicekit.auth import ROLES
from servicekit.settings import DEV_ISSUER, PLATFORM_AUDIENCE, default_var_dir

PRIVATE = "private.pem"
PUBLIC = "public.pem"


def ensure_dev_keys(key_dir: Path) -> tuple[Path, Path]:
    """The dev key pair's paths, generating it once when missing.

    The pair is written to a sibling temporary folder and renamed into place in one
    step, so processes starting at once never mix halves of two pairs.
    """
    private, public = key_dir / PRIVATE, key_dir / PUBLIC
    if private.exists() and public.exists():
        return private, public
    key_dir.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tmp = Path(tempfile.mkdtemp(prefix=".dev-keys-", dir=key_dir.parent))
    (tmp / PRIVATE).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp / PUBLIC).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    try:
        os.rename(tmp, key_dir)  # atomic; fails when another process got there first
    except OSError:
        shutil.rmtree(tmp)
    return private, public


class DevIssuer:
    def __init__(
        self,
        key_dir: Path,
        *,
        issuer: str = DEV_ISSUER,
        audience: str = PLATFORM_AUDIENCE,
        ttl: timedelta = timedelta(hours=8),
    ) -> None:
        private, _ = ensure_dev_keys(key_dir)
        self._key = private.read_bytes()
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl

    def issue(
        self, sub: str, *, name: str, org: str, roles: list[str], ttl: timedelta | None = None
    ) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": sub,
            "name": name,
            "org": org,
            "roles": roles,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + (ttl or self.ttl),
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": "dev"})


class TokenRequest(BaseModel):
    sub: str = Field(min_length=1, max_length=200, examples=["researcher-1"])
    name: str = Field(default="", max_length=200, examples=["Nguyễn Văn A"])
    org: str = Field(default="", max_length=200, examples=["hust"])
    roles: list[str] = Field(min_length=1, examples=[["researcher"]])
    ttl_seconds: int | None = Field(default=None, gt=0, le=7 * 24 * 3600)

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = sorted(set(roles) - ROLES)
        if unknown:
            raise ValueError(f"unknown roles {unknown}; known: {sorted(ROLES)}")
        return roles


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


def router(issuer: DevIssuer) -> APIRouter:
    api = APIRouter(tags=["development"])

    @api.post("/dev/tokens", response_model=TokenResponse, status_code=201,
              summary="Issue a development token (dev profile only)")
    def issue_dev_token(body: TokenRequest) -> TokenResponse:
        ttl = timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else issuer.ttl
        token = issuer.issue(body.sub, name=body.name, org=body.org, roles=body.roles, ttl=ttl)
        return TokenResponse(access_token=token, expires_in=int(ttl.total_seconds()))

    return api


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a development JWT (dev profile only).")
    parser.add_argument("--sub", required=True)
    parser.add_argument("--name", default="")
    parser.add_argument("--org", default="")
    parser.add_argument("--roles", required=True, help="comma-separated, e.g. researcher")
    parser.add_argument("--key-dir", type=Path, default=default_var_dir() / "dev-keys")
    parser.add_argument("--ttl-seconds", type=int, default=8 * 3600)
    args = parser.parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        parser.error(f"unknown roles {unknown}; known: {sorted(ROLES)}")
    token = DevIssuer(args.key_dir).issue(
        args.sub, name=args.name, org=args.org, roles=roles,
        ttl=timedelta(seconds=args.ttl_seconds),
    )
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
