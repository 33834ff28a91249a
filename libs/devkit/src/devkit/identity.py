"""A stand-in identity provider for tests: a JWKS over HTTP on loopback, and tokens
signed by its keys (or by a key it does not list)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devkit.testing import in_thread

ISSUER = "https://id.most.test/realms/most"
AUDIENCE = "most-platform"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IdentityProvider(ThreadingHTTPServer):
    """Serves a JWKS of the keys it holds on ``url`` and counts the fetches."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _JwksHandler)
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0

    @classmethod
    @contextmanager
    def serving(cls, *kids: str) -> Iterator[IdentityProvider]:
        """A provider holding a key for each of ``kids``, serving until the block ends."""
        server = cls()
        for kid in kids:
            server.add_key(kid)
        with in_thread(server):
            yield server

    def add_key(self, kid: str) -> None:
        self.keys[kid] = new_key()

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str, *, signed_by: str | None = None,
              key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        """A researcher's token naming ``kid``, signed by that key, by the provider's key
        ``signed_by``, or by ``key`` (one the provider does not list)."""
        now = int(time.time())
        body = {"sub": "r-1", "org": "hust", "roles": ["researcher"], "iss": ISSUER,
                "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
                **claims}
        return jwt.encode(body, key or self.keys[signed_by or kid], algorithm="RS256",
                          headers={"kid": kid})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/realms/most/certs"


class _JwksHandler(BaseHTTPRequestHandler):
    server: IdentityProvider

    def do_GET(self) -> None:
        self.server.fetches += 1
        body = json.dumps(self.server.jwks()).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return
