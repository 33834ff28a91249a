"""A service configured with its identity provider's JWKS (``<SVC>_JWT_JWKS_URL``)
verifies tokens with the listed keys, fetched before traffic, and takes a rotated-in key
without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from devkit.identity import ISSUER, IdentityProvider, new_key
from servicekit.auth import Principal, require_roles
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider.serving("k1") as server:
        yield server


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
        response = client.get("/v1/me", headers=auth(idp.token("k1")))
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "r-1"}
    assert idp.fetches == 1
    assert not (tmp_path / "unused").exists()


def test_a_token_signed_with_another_key_is_refused(tmp_path: Path,
                                                    idp: IdentityProvider) -> None:
    other = new_key()
    with service(tmp_path, idp, cooldown=30) as client:
        same_kid = client.get("/v1/me", headers=auth(idp.token("k1", key=other)))
        unlisted_kid = client.get("/v1/me", headers=auth(idp.token("k9", key=other)))
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
        rotated = client.get("/v1/me", headers=auth(idp.token("k2")))
    assert rotated.status_code == 200, rotated.text
    assert idp.fetches == 2


def test_made_up_key_ids_cost_at_most_one_fetch_per_cool_down(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    other = new_key()
    with service(tmp_path, idp, cooldown=60) as client:
        codes = {client.get("/v1/me", headers=auth(idp.token(f"made-up-{i}", key=other))
                            ).status_code for i in range(5)}
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
