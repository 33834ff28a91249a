"""The verifier remembers tokens whose signature verified; a remembered token is still
refused once it expires, is revoked, or is altered in any byte."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from servicekit import auth
from servicekit.auth import RevocationList, TokenVerifier
from servicekit.devtokens import DevIssuer
from servicekit.problems import Unauthenticated
from servicekit.settings import DEV_ISSUER, PLATFORM_AUDIENCE


@pytest.fixture
def issuer(tmp_path) -> DevIssuer:
    return DevIssuer(tmp_path / "keys")


@pytest.fixture
def verifier(tmp_path, issuer) -> TokenVerifier:
    return TokenVerifier([(tmp_path / "keys" / "public.pem").read_bytes()],
                         issuer=DEV_ISSUER, audience=PLATFORM_AUDIENCE,
                         revocations=RevocationList(), leeway_seconds=5)


def token(issuer: DevIssuer, ttl: timedelta = timedelta(minutes=5)) -> str:
    return issuer.issue("r-1", name="R", org="HUST", roles=["researcher"], ttl=ttl)


def test_a_remembered_token_expires_like_a_fresh_one(issuer, verifier, monkeypatch):
    t = token(issuer, ttl=timedelta(seconds=60))
    assert verifier.verify(t).sub == "r-1"
    assert verifier.verify(t).sub == "r-1"  # served from memory
    exp = jwt.decode(t, options={"verify_signature": False})["exp"]  # whole seconds
    monkeypatch.setattr(auth.time, "time", lambda: exp + 4.5)  # within the 5 s leeway
    assert verifier.verify(t).sub == "r-1"
    monkeypatch.setattr(auth.time, "time", lambda: exp + 5.5)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(t)


def test_a_remembered_token_is_refused_once_revoked(issuer, verifier):
    t = token(issuer)
    principal = verifier.verify(t)
    verifier.revocations.revoke_jti(principal.jti)
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(t)


def test_an_altered_remembered_token_is_verified_again(issuer, verifier):
    t = token(issuer)
    verifier.verify(t)
    header, body, signature = t.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(Unauthenticated, match="signature"):
        verifier.verify(f"{header}.{body}.{flipped}")


def test_the_caller_cannot_change_what_the_verifier_remembers(issuer, verifier):
    t = token(issuer)
    verifier.verify(t).claims["roles"].append("admin")
    assert verifier.verify(t).roles == frozenset({"researcher"})


@pytest.mark.parametrize(("claims", "named"), [
    ({"sub": ""}, "sub"), ({"sub": " r-1"}, "sub"), ({"sub": "r" * 201}, "sub"),
    ({"org": ["hust"]}, "org"), ({"org": 123}, "org"), ({"org": "HUST "}, "org"),
    ({"org": "H" * 201}, "org"), ({"roles": ["researcher"] * 51}, "roles"),
    ({"roles": [""]}, "roles"), ({"name": ["R"]}, "name"),
])
def test_identity_claims_the_services_cannot_record_as_sent_are_refused(
        issuer, verifier, claims, named):
    # Coerced ("['hust']") or cut by a column later, they would name someone else.
    fields = {"sub": "r-1", "name": "R", "org": "HUST", "roles": ["researcher"], **claims}
    sub = fields.pop("sub")
    t = issuer.issue(sub, **fields)
    with pytest.raises(Unauthenticated, match=f"'{named}'"):
        verifier.verify(t)
    assert verifier.verify(issuer.issue("r" * 200, name="R", org="H" * 200,
                                        roles=["researcher"])).sub == "r" * 200


def test_a_token_longer_than_the_limit_is_refused_whoever_signed_it(issuer, verifier):
    # Signed by the trusted key: its size alone refuses it, and it is not remembered.
    long_name = "N" * auth.MAX_TOKEN_BYTES
    t = issuer.issue("r-1", name=long_name, org="HUST", roles=["researcher"])
    with pytest.raises(Unauthenticated, match="longer than 8192 bytes"):
        verifier.verify(t)
    assert t not in verifier._signed
    fits = issuer.issue("r-1", name="N" * 5000, org="HUST", roles=["researcher"])
    assert len(fits) <= auth.MAX_TOKEN_BYTES
    assert verifier.verify(fits).name == "N" * 5000
