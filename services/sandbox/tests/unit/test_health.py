"""The sandbox service answers health, readiness and metrics, and 404s as problem+json."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sandbox.app import create_app
from sandbox.settings import SandboxSettings


@pytest.fixture
def client(tmp_path: Path):
    settings = SandboxSettings(
        database_url=f"sqlite:///{tmp_path / 'sandbox.db'}", dev_key_dir=tmp_path / "keys"
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_health_names_the_service(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "sandbox"}


def test_ready_once_migrated_on_start(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "http_requests_total" in response.text


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == "/v1/nothing-here"


def test_a_problem_names_the_path_the_caller_used_behind_the_gateway(client: TestClient
                                                                     ) -> None:
    # The gateway's proxy strips /sandbox and says so in X-Forwarded-Prefix.
    proxied = client.get("/v1/nothing-here", headers={"X-Forwarded-Prefix": "/sandbox"})
    assert proxied.json()["instance"] == "/sandbox/v1/nothing-here"
    odd = client.get("/v1/nothing-here", headers={"X-Forwarded-Prefix": "/a b/../x"})
    assert odd.json()["instance"] == "/v1/nothing-here"  # not a prefix the gateway makes
