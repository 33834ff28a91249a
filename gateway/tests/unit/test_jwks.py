"""Keys from the identity provider's JWKS: fetched at start, again for a new key id (a
rotation), never more than once per cool-down for key ids nobody lists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from devkit.identity import ISSUER, IdentityProvider
from gateway.app import create_app
from gateway.settings import GatewaySettings


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider.serving("k1") as server:
        yield server


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
