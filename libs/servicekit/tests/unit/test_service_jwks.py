"""A service configured with its identity provider's JWKS (``<SVC>_JWT_JWKS_URL``)
verifies tokens with the listed keys, fetched before traffic, and takes a rotated-in key
without a restart."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from servicekit.auth import Principal, require_roles
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings

ISSUER = "https://id.most.test/realms/most"


class IdentityProvider(ThreadingHTTPServer):
    """Serves a JWKS of the keys it holds and counts the fetches."""

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


def token(key: rsa.RSAPrivateKey, kid: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "r-1", "org": "hust", "roles": ["researcher"], "iss": ISSUER,
                       "aud": "most-platform", "iat": now, "exp": now + 300,
                       "jti": str(uuid.uuid4())}, key, algorithm="RS256",
                      headers={"kid": kid})


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


def service(tmp_path: Path, idp: IdentityProvider, *, cooldown: float) -> TestClient:
    api = APIRouter()

    @api.get("/v1/me")
    async def me(user: Annotated[Principal, Depends(require_roles("researcher"))]
                 ) -> dict[str, str]:
        return {"sub": user.sub}

    # No PEM file anywhere: the dev key directory is never created.
    settings = ServiceSettings(database_url=f"sqlite:///{tmp_path / 'svc.db'}",
                               jwt_issuer=ISSUER, jwt_jwks_url=idp.url,
                               jwt_jwks_cooldown_seconds=cooldown,
                               dev_key_dir=tmp_path / "unused")
    return TestClient(create_service_app(settings, title="svc", description="test",
                                         routers=[api], background=False))


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_a_token_signed_with_the_listed_key_is_accepted(tmp_path: Path,
                                                         idp: IdentityProvider) -> None:
    with service(tmp_path, idp, cooldown=30) as client:
        assert idp.fetches == 1  # before the first request
        response = client.get("/v1/me", headers=auth(token(idp.keys["k1"], "k1")))
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "r-1"}
    assert idp.fetches == 1
    assert not (tmp_path / "unused").exists()


def test_a_token_signed_with_another_key_is_refused(tmp_path: Path,
                                                    idp: IdentityProvider) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with service(tmp_path, idp, cooldown=30) as client:
        same_kid = client.get("/v1/me", headers=auth(token(other, "k1")))
        unlisted_kid = client.get("/v1/me", headers=auth(token(other, "k9")))
    assert same_kid.status_code == 401
    assert same_kid.headers["content-type"].startswith("application/problem+json")
    assert unlisted_kid.status_code == 401
    assert "does not list" in unlisted_kid.json()["detail"]


def test_a_key_rotated_in_at_the_provider_is_used_without_a_restart(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    with service(tmp_path, idp, cooldown=0) as client:
        idp.add_key("k2")
        idp.keys.pop("k1")
        rotated = client.get("/v1/me", headers=auth(token(idp.keys["k2"], "k2")))
    assert rotated.status_code == 200, rotated.text
    assert idp.fetches == 2


def test_made_up_key_ids_cost_at_most_one_fetch_per_cool_down(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with service(tmp_path, idp, cooldown=60) as client:
        codes = {client.get("/v1/me", headers=auth(token(other, f"made-up-{i}"))).status_code
                 for i in range(5)}
    assert codes == {401}
    assert idp.fetches == 1


def test_prod_takes_a_jwks_url_in_place_of_a_public_key_file() -> None:
    settings = ServiceSettings(profile="prod", jwt_issuer=ISSUER,
                               jwt_jwks_url="http://keycloak:8080/realms/most/certs",
                               database_url="postgresql+psycopg://h/db",
                               kafka_bootstrap="kafka:9092")
    assert settings.jwt_public_key_file is None
    with pytest.raises(ValueError, match="jwt_jwks_url or jwt_public_key_file"):
        ServiceSettings(profile="prod", jwt_issuer=ISSUER,
                        database_url="postgresql+psycopg://h/db",
                        kafka_bootstrap="kafka:9092")
