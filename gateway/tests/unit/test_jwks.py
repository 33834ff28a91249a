"""Keys from the identity provider's JWKS: fetched at start, again for a new key id (a
rotation), never more than once per cool-down for key ids nobody lists."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import GatewaySettings

ISSUER = "https://id.most.test/realms/most"


class IdentityProvider(ThreadingHTTPServer):
    """Serves ``/certs`` (a JWKS of the keys it holds) and counts the fetches."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _JwksHandler)
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str, *, signed_by: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": "r-1", "org": "hust", "roles": ["researcher"], "iss": ISSUER,
                "aud": "most-platform", "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
                **claims}
        return jwt.encode(body, self.keys[signed_by or kid], algorithm="RS256",
                          headers={"kid": kid})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/certs"


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


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    server = IdentityProvider()
    server.add_key("k1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def gateway(tmp_path: Path, idp: IdentityProvider, cooldown: float) -> TestClient:
    settings = GatewaySettings(profile="prod", jwt_issuer=ISSUER, jwt_jwks_url=idp.url,
                               jwt_jwks_cooldown_seconds=cooldown,
                               dev_key_dir=tmp_path / "unused")
    ok = httpx.MockTransport(lambda r: httpx.Response(200, json={}))
    return TestClient(create_app(settings, transports={"grants": ok}))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_signed_with_a_listed_key_passes(tmp_path: Path,
                                                 idp: IdentityProvider) -> None:
    with gateway(tmp_path, idp, cooldown=30) as client:
        assert client.get("/grants/v1/applications", headers=auth(idp.token("k1"))
                          ).status_code == 200
    assert idp.fetches == 1  # at start, not per request


def test_a_rotated_in_key_is_fetched_when_a_token_names_it(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    with gateway(tmp_path, idp, cooldown=0) as client:
        idp.add_key("k2")
        response = client.get("/grants/v1/applications", headers=auth(idp.token("k2")))
    assert response.status_code == 200, response.text
    assert idp.fetches == 2


def test_made_up_key_ids_cost_at_most_one_fetch_per_cool_down(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    idp.add_key("not-listed")
    made_up = idp.token("not-listed")
    idp.keys.pop("not-listed")
    with gateway(tmp_path, idp, cooldown=60) as client:
        codes = {client.get("/grants/v1/applications", headers=auth(made_up)).status_code
                 for _ in range(5)}
    assert codes == {401}
    assert idp.fetches == 1


def test_a_listed_key_id_on_a_token_signed_by_another_key_is_refused(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    idp.add_key("k2")
    forged = idp.token("k1", signed_by="k2")
    with gateway(tmp_path, idp, cooldown=30) as client:
        assert client.get("/grants/v1/applications", headers=auth(forged)).status_code == 401
