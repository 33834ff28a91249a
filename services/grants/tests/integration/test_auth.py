"""JWT verification on a real endpoint: every bad token is a 401 problem, a wrong role 403."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.settings import DEV_ISSUER, PLATFORM_AUDIENCE

pytestmark = pytest.mark.postgres

CALL = {"title": "t", "budget_vnd": 100, "max_award_vnd": 10,
        "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-01-01T00:00:00Z"}


def claims(**overrides):
    now = datetime.now(UTC)
    base = {"sub": "pm-1", "name": "PM", "org": "MOST", "roles": ["program_manager"],
            "iss": DEV_ISSUER, "aud": PLATFORM_AUDIENCE, "iat": now,
            "exp": now + timedelta(minutes=5), "jti": str(uuid.uuid4())}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(key_dir, **overrides) -> str:
    return jwt.encode(claims(**overrides), (key_dir / "private.pem").read_bytes(),
                      algorithm="RS256")


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).decode().rstrip("=")


def unsigned_token() -> str:
    body = {k: (int(v.timestamp()) if isinstance(v, datetime) else v)
            for k, v in claims().items()}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(body)}."


def other_key_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return jwt.encode(claims(), pem, algorithm="RS256")


def hmac_with_public_key_token(key_dir) -> str:
    """The classic confusion attack: HS256 keyed with the server's public key."""
    header = b64({"alg": "HS256", "typ": "JWT"})
    body = {k: (int(v.timestamp()) if isinstance(v, datetime) else v)
            for k, v in claims().items()}
    import hashlib
    import hmac

    signing_input = f"{header}.{b64(body)}".encode()
    sig = hmac.new((key_dir / "public.pem").read_bytes(), signing_input, hashlib.sha256)
    return f"{header}.{b64(body)}.{base64.urlsafe_b64encode(sig.digest()).decode().rstrip('=')}"


def assert_401(response, detail_part: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthenticated"
    assert detail_part in body["detail"]


def post_call(client, token: str | None, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return client.post("/v1/calls", json=CALL, headers=headers)


def test_missing_token_is_401(client):
    assert_401(post_call(client, None), "bearer token is required")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
def test_malformed_token_is_401(client, token):
    r = post_call(client, token)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_basic_scheme_is_401(client):
    assert_401(post_call(client, "dXNlcjpwYXNz", scheme="Basic"), "Bearer")


def test_alg_none_is_401(client):
    assert_401(post_call(client, unsigned_token()), "algorithm")


def test_hmac_signed_with_the_public_key_is_401(client, key_dir):
    assert_401(post_call(client, hmac_with_public_key_token(key_dir)), "algorithm")


def test_token_signed_by_another_key_is_401(client):
    assert_401(post_call(client, other_key_token()), "signature")


def test_expired_token_is_401(client, key_dir):
    past = datetime.now(UTC) - timedelta(hours=1)
    token = signed(key_dir, iat=past - timedelta(minutes=5), exp=past)
    assert_401(post_call(client, token), "expired")


def test_wrong_audience_is_401(client, key_dir):
    assert_401(post_call(client, signed(key_dir, aud="another-system")), "audience")


def test_wrong_issuer_is_401(client, key_dir):
    assert_401(post_call(client, signed(key_dir, iss="https://evil.example")), "issuer")


def test_token_without_jti_is_401(client, key_dir):
    assert_401(post_call(client, signed(key_dir, jti=None)), "jti")


def test_revoked_token_id_is_401(client, key_dir):
    jti = str(uuid.uuid4())
    client.app.state.kit.verifier.revocations.revoke_jti(jti)
    assert_401(post_call(client, signed(key_dir, jti=jti)), "revoked")


def test_revoked_subject_is_401_for_every_token(client, key_dir):
    client.app.state.kit.verifier.revocations.revoke_sub("pm-who-left")
    assert_401(post_call(client, signed(key_dir, sub="pm-who-left")), "revoked")


def test_revocations_are_read_from_the_operator_file(grants_db, key_dir, tmp_path, clock):
    from fastapi.testclient import TestClient

    from grants.app import create_app
    from grants.settings import GrantsSettings

    revoked = tmp_path / "revoked.json"
    revoked.write_text(json.dumps({"sub": ["pm-gone"]}))
    app = create_app(GrantsSettings(database_url=grants_db, dev_key_dir=key_dir,
                                    migrate_on_start=False, revocation_file=revoked),
                     clock=clock, background=False)
    with TestClient(app) as c:
        assert_401(post_call(c, signed(key_dir, sub="pm-gone")), "revoked")
        assert post_call(c, signed(key_dir, sub="pm-here")).status_code == 201


def test_wrong_role_is_403(client, key_dir):
    r = post_call(client, signed(key_dir, roles=["researcher"]))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert "program_manager" in r.json()["detail"]


def test_a_valid_token_with_the_role_is_accepted(client, key_dir):
    assert post_call(client, signed(key_dir)).status_code == 201
