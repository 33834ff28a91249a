"""Authentication and coarse authorisation at the edge, from the route table.

The services behind the gateway are recorders: whatever the edge refuses must never
reach them. Every row of the table is tried with no token, with each platform role, and
public rows with a bad token.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from devkit.jwt_attacks import ATTACKS, forged_token, revocation_file, signed
from gateway import route_table
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.tests.conftest import Bearer, open_gateway
from servicekit.auth import ROLES

NO_LIMITS = {f"rate_limit_{c}_per_{p}": "" for c in ("read", "write")
             for p in ("subject", "address")}
SERVICE_ROWS = [row for row in route_table.ROUTES if row[1].split("/")[1] in
                {"grants", "sandbox", "ipshare"}]


class Upstreams:
    """Every service answers 200 and remembers what reached it."""

    def __init__(self) -> None:
        self.reached: list[str] = []
        self.tokens: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.reached.append(f"{request.method} {request.url.path}")
        self.tokens.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"ok": True})


@pytest.fixture
def upstreams() -> Upstreams:
    return Upstreams()


@pytest.fixture
def revoked(tmp_path: Path) -> Path:
    return revocation_file(tmp_path / "revoked.json")


@pytest.fixture
def client(key_dir: Path, upstreams: Upstreams, revoked: Path,
           way: str) -> Iterator[TestClient]:
    mock = httpx.MockTransport(upstreams)
    settings = GatewaySettings(dev_key_dir=key_dir, revocation_file=revoked, **NO_LIMITS)
    app = create_app(settings, transports={"grants": mock, "sandbox": mock, "ipshare": mock})
    with open_gateway(app, way) as client:
        yield client


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", template)


def test_every_row_admits_its_roles_and_refuses_the_others_at_the_edge(
    client: TestClient, upstreams: Upstreams, bearer: Bearer
) -> None:
    tokens = {role: bearer(role, sub=f"{role}-1") for role in ROLES}
    for method, template, access in SERVICE_ROWS:
        path = concrete(template)
        for role in sorted(ROLES):
            upstreams.reached.clear()
            response = client.request(method, path, headers=tokens[role], json={})
            if not isinstance(access, tuple) or role in access:
                assert response.status_code == 200, (method, template, role, response.text)
                assert upstreams.reached, (method, template, role)
            else:
                assert response.status_code == 403, (method, template, role, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert upstreams.reached == [], (method, template, role)


def test_every_row_with_roles_needs_a_token_and_public_rows_do_not(
    client: TestClient, upstreams: Upstreams
) -> None:
    for method, template, access in SERVICE_ROWS:
        upstreams.reached.clear()
        response = client.request(method, concrete(template), json={})
        if isinstance(access, tuple):
            assert response.status_code == 401, (method, template)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert upstreams.reached == []
        else:
            assert response.status_code == 200, (method, template)


def test_a_public_route_with_a_bad_token_is_401_and_not_forwarded(
    client: TestClient, upstreams: Upstreams
) -> None:
    response = client.get("/grants/v1/calls", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401
    assert response.json()["type"].endswith("/unauthenticated")
    assert upstreams.reached == []


def test_an_operation_missing_from_the_table_never_reaches_a_service(
    client: TestClient, upstreams: Upstreams, bearer: Bearer
) -> None:
    admin = bearer("admin", "auditor")
    assert client.delete("/grants/v1/calls/x-1", headers=admin).status_code == 405
    assert client.get("/grants/v1/secret-admin", headers=admin).status_code == 404
    assert client.get("/ipshare/metrics", headers=admin).status_code == 404
    assert client.get("/sandbox/openapi.json", headers=admin).status_code == 404
    assert client.get("/grants/v1/calls/%2E%2E/portfolio", headers=admin).status_code == 404
    assert upstreams.reached == []


def test_the_token_is_forwarded_to_the_service(
    client: TestClient, upstreams: Upstreams, bearer: Bearer
) -> None:
    pm = bearer("program_manager")
    assert client.get("/grants/v1/portfolio", headers=pm).status_code == 200
    assert upstreams.tokens == [pm["Authorization"]]


# --------------------------------------------------------------------- JWT attacks
# The attacks are devkit's (devkit.jwt_attacks), tried at each service in tests/security.


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_forged_or_unacceptable_token_is_401_at_the_edge(
    client: TestClient, upstreams: Upstreams, key_dir: Path, attack: str
) -> None:
    token = forged_token(key_dir, attack)
    for path in ("/grants/v1/portfolio", "/grants/v1/calls"):  # a protected and a public one
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (attack, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert upstreams.reached == []


def test_the_same_valid_token_passes(client: TestClient, key_dir: Path,
                                     upstreams: Upstreams) -> None:
    token = signed(key_dir)
    response = client.get("/grants/v1/portfolio", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert upstreams.reached == ["GET /v1/portfolio"]


def test_a_token_expiring_after_it_was_first_accepted_is_refused(
    key_dir: Path, upstreams: Upstreams
) -> None:
    settings = GatewaySettings(dev_key_dir=key_dir, jwt_leeway_seconds=0, **NO_LIMITS)
    app = create_app(settings, transports={"grants": httpx.MockTransport(upstreams)})
    auth = {"Authorization": f"Bearer {signed(key_dir, exp=int(time.time()) + 2)}"}
    with TestClient(app) as client:
        assert client.get("/grants/v1/portfolio", headers=auth).status_code == 200
        time.sleep(3)  # the token is remembered as verified, and its expiry still checked
        assert client.get("/grants/v1/portfolio", headers=auth).status_code == 401


def test_a_revocation_written_while_running_is_refused_at_once(
    client: TestClient, key_dir: Path, revoked: Path
) -> None:
    token = signed(key_dir, sub="pm-leaving")
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/grants/v1/portfolio", headers=auth).status_code == 200
    revoked.write_text(json.dumps({"jti": [], "sub": ["pm-leaving"]}))
    assert client.get("/grants/v1/portfolio", headers=auth).status_code == 401


def test_basic_authorization_is_refused(client: TestClient) -> None:
    response = client.get("/grants/v1/portfolio", headers={"Authorization": "Basic dTpw"})
    assert response.status_code == 401
