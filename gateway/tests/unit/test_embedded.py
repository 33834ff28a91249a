"""The embedded default: gateway and three services in one app, SQLite under a var dir."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.embedded import create_embedded_app

CALL = {
    "title": "Quantum sensing for the Mekong delta",
    "description": "Lump-sum grants for risky, high-value research.",
    "budget_vnd": 50_000_000_000,
    "max_award_vnd": 5_000_000_000,
    "opens_at": "2026-01-01T00:00:00Z",
    "closes_at": "2099-01-01T00:00:00Z",
}
PM = {"sub": "pm-1", "name": "PM", "org": "MOST", "roles": ["program_manager"]}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, TestClient]]:
    app = create_embedded_app(tmp_path_factory.mktemp("embedded") / "var")
    with TestClient(app) as client:
        yield app, client


@pytest.fixture(scope="module")
def client(system: tuple[FastAPI, TestClient]) -> TestClient:
    return system[1]


@pytest.fixture(scope="module")
def pm_headers(client: TestClient) -> dict[str, str]:
    response = client.post("/dev/tokens", json=PM)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_health_answers_for_the_gateway(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "gateway"}


def test_ready_once_every_service_is_migrated_and_running(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"grants": "ok", "sandbox": "ok", "ipshare": "ok"}


def test_each_service_answers_its_own_health_under_its_prefix(client: TestClient) -> None:
    services = [client.get(f"/{name}/health").json()["service"]
                for name in ("grants", "sandbox", "ipshare")]
    assert services == ["grants", "sandbox", "ipshare"]


def test_each_service_has_its_own_sqlite_file(system: tuple[FastAPI, TestClient]) -> None:
    app, _ = system
    urls = {name: str(svc.state.kit.engine.url) for name, svc in app.state.services.items()}
    assert {name: url.rsplit("/", 1)[-1] for name, url in urls.items()} == {
        "grants": "grants.db", "sandbox": "sandbox.db", "ipshare": "ipshare.db"
    }


def test_dev_token_is_accepted_by_grants(client: TestClient, pm_headers: dict[str, str]) -> None:
    created = client.post("/grants/v1/calls", json=CALL, headers=pm_headers)
    assert created.status_code == 201, created.text
    read = client.get(f"/grants/v1/calls/{created.json()['id']}", headers=pm_headers)
    assert read.status_code == 200
    assert read.json()["title"] == CALL["title"]
    assert read.json()["agency_id"] == "MOST"


def test_opened_call_event_flows_through_the_shared_bus(
    system: tuple[FastAPI, TestClient], pm_headers: dict[str, str]
) -> None:
    app, client = system
    call_id = client.post("/grants/v1/calls", json=CALL, headers=pm_headers).json()["id"]
    opened = client.post(f"/grants/v1/calls/{call_id}/open", headers=pm_headers)
    assert opened.status_code == 200, opened.text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [json.loads(d.value) for d in app.state.bus.messages("grants.events.v1")]
        matching = [e for e in events if e["data"]["call_id"] == call_id]
        if matching:
            break
        time.sleep(0.05)
    assert [e["type"] for e in matching] == ["vn.gov.most.grants.call.opened.v1"]


def test_dev_token_with_an_unknown_role_is_refused(client: TestClient) -> None:
    response = client.post("/dev/tokens", json={**PM, "roles": ["emperor"]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_prefix_is_problem_json(client: TestClient) -> None:
    response = client.get("/payroll/v1/salaries")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == "/payroll/v1/salaries"


def test_unknown_path_inside_a_service_is_its_problem_json(client: TestClient) -> None:
    response = client.get("/grants/v1/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_request_id_is_kept_when_given_and_made_when_missing(client: TestClient) -> None:
    given = client.get("/grants/health", headers={"X-Request-ID": "abc-123"})
    made = client.get("/grants/health")
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32


def test_head_answers_a_get_resource_without_its_body(client: TestClient,
                                                      pm_headers: dict[str, str]) -> None:
    get = client.get("/grants/v1/calls", headers=pm_headers)
    head = client.head("/grants/v1/calls", headers=pm_headers)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == get.headers["content-length"]
    assert client.head("/grants/v1/calls/none", headers=pm_headers).status_code == 404
    assert client.head("/grants/v1/applications",
                       headers=pm_headers).headers.get("allow") is None


def test_what_the_edge_does_not_let_through(client: TestClient,
                                            pm_headers: dict[str, str]) -> None:
    # A service's metrics are for Prometheus on the service's own port.
    for name in ("grants", "sandbox", "ipshare"):
        response = client.get(f"/{name}/metrics")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    # A client's X-Forwarded-Prefix does not reach the services.
    spoofed = client.get("/grants/v1/nothing", headers={"X-Forwarded-Prefix": "/evil"})
    assert spoofed.json()["instance"] == "/grants/v1/nothing"
    # A trailing slash is a 404, not a redirect (behind the proxy it named the service).
    slashed = client.get("/grants/v1/calls/", headers=pm_headers, follow_redirects=False)
    assert slashed.status_code == 404
    # A body larger than the limit is refused before it is read whole.
    big = client.post("/grants/v1/calls", headers=pm_headers,
                      content=b'{"title": "' + b"x" * 2_000_000 + b'"}')
    assert big.status_code == 413
    assert big.headers["content-type"] == "application/problem+json"
    # Also when it comes in chunks, without a length: stopped once past the limit.
    chunks = (b"x" * 65_536 for _ in range(40))
    chunked = client.post("/grants/v1/calls", headers=pm_headers, content=chunks)
    assert chunked.status_code == 413, chunked.text
    assert chunked.headers["content-type"] == "application/problem+json"


def test_the_gateways_own_get_routes_answer_head_as_their_allow_says(
        client: TestClient) -> None:
    assert "HEAD" in client.delete("/health").headers["allow"]
    for path in ("/health", "/ready", "/openapi.json", "/docs"):
        get, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-length"] == get.headers["content-length"], path
        assert head.headers["x-request-id"], path
