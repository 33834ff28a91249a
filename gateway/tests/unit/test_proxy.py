"""The proxy mode: prefix routing to upstream URLs, headers, and upstream failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from devkit.localservers import free_port
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.tests.conftest import Bearer, open_gateway
from grants.app import create_app as create_grants
from grants.app import migrate as migrate_grants
from grants.settings import GrantsSettings
from servicekit.devtokens import ensure_dev_keys

CALL = {
    "title": "Rice genomics",
    "budget_vnd": 9_000_000_000,
    "max_award_vnd": 3_000_000_000,
    "opens_at": "2026-01-01T00:00:00Z",
    "closes_at": "2099-01-01T00:00:00Z",
}


def settings(tmp_path: Path, **urls: str) -> GatewaySettings:
    return GatewaySettings(dev_key_dir=tmp_path / "keys", **urls)


class Recorder:
    """An upstream that answers every request with 200 and remembers it."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(
            self.status,
            json={"path": request.url.raw_path.decode()},
            headers=[("set-cookie", "a=1"), ("set-cookie", "b=2"), ("keep-alive", "timeout=5"),
                     ("x-upstream", "yes")],
        )


def raising(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(tmp_path: Path, recorder: Recorder, way: str) -> Iterator[TestClient]:
    mock = httpx.MockTransport(recorder)
    app = create_app(
        settings(tmp_path, grants_url="http://grants.internal:8101/"),
        transports={"grants": mock, "sandbox": mock, "ipshare": mock},
    )
    with open_gateway(app, way, base_url="http://api.most.test") as client:
        yield client


def test_prefix_is_replaced_by_the_upstream_url_keeping_path_and_query(
    client: TestClient, recorder: Recorder
) -> None:
    client.get("/grants/v1/calls/a%20b?status=open&limit=5")
    sent = recorder.requests[0]
    assert (sent.method, sent.url.host, sent.url.port) == ("GET", "grants.internal", 8101)
    assert sent.url.raw_path == b"/v1/calls/a%20b?status=open&limit=5"


def test_method_body_token_and_end_to_end_headers_are_forwarded(
    client: TestClient, recorder: Recorder, bearer: Bearer
) -> None:
    firm = bearer("sandbox_applicant")
    client.post(
        "/sandbox/v1/applications", content=b'{"x": 1}',
        headers={**firm, "Idempotency-Key": "k-1", "content-type": "application/json"},
    )  # fmt: skip
    sent = recorder.requests[0]
    assert sent.method == "POST"
    assert sent.content == b'{"x": 1}'
    assert sent.headers["authorization"] == firm["Authorization"]
    assert sent.headers["idempotency-key"] == "k-1"
    assert sent.headers["content-length"] == "8"


def test_the_callers_trace_goes_on_through_the_gateways_own_span(
    client: TestClient, recorder: Recorder
) -> None:
    trace_id, caller_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    client.get("/grants/v1/calls", headers={"traceparent": f"00-{trace_id}-{caller_span}-01",
                                            "tracestate": "vendor=a1", "baggage": "case=7"})
    sent = recorder.requests[0].headers
    version, sent_trace, parent, flags = sent["traceparent"].split("-")
    assert (version, sent_trace, flags) == ("00", trace_id, "01")
    assert parent != caller_span  # the gateway's span sits between the caller and the service
    assert (sent["tracestate"], sent["baggage"]) == ("vendor=a1", "case=7")


def test_a_trace_starts_at_the_gateway_when_the_caller_sends_none(
    client: TestClient, recorder: Recorder
) -> None:
    client.get("/grants/v1/calls")
    client.get("/grants/v1/calls")
    first, second = (r.headers["traceparent"].split("-")[1] for r in recorder.requests)
    assert first != second and len(first) == 32


def test_hop_by_hop_headers_are_dropped_and_forwarding_headers_added(
    client: TestClient, recorder: Recorder, bearer: Bearer, way: str
) -> None:
    client.get(
        "/ipshare/v1/assets",
        headers={"Connection": "keep-alive, x-secret-hop", "x-secret-hop": "1",
                 "Keep-Alive": "timeout=5", "X-Forwarded-For": "203.0.113.7",
                 **bearer("finance")},
    )  # fmt: skip
    sent = recorder.requests[0].headers
    assert "keep-alive" not in sent
    assert "x-secret-hop" not in sent
    assert sent["host"] == "127.0.0.1:8103"  # the upstream's, not the caller's
    # The peer is no trusted proxy: what the client says it forwarded for is dropped.
    assert sent["x-forwarded-for"] == ("testclient" if way == "asgi" else "127.0.0.1")
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == "api.most.test"
    assert sent["x-forwarded-prefix"] == "/ipshare"
    assert len(sent["x-request-id"]) == 32


def test_upstream_response_is_returned_with_repeated_headers_and_request_id(
    client: TestClient,
) -> None:
    response = client.get("/grants/v1/calls", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 200
    assert response.json() == {"path": "/v1/calls"}
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["x-upstream"] == "yes"
    assert "keep-alive" not in response.headers
    assert response.headers["x-request-id"] == "req-7"


def test_unknown_prefix_is_404_problem_json_and_never_forwarded(
    client: TestClient, recorder: Recorder
) -> None:
    response = client.get("/payroll/v1/salaries")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert recorder.requests == []


def test_unreachable_upstream_is_503_problem_json(tmp_path: Path, way: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    app = create_app(settings(tmp_path, grants_url=closed))
    with open_gateway(app, way) as client:
        response = client.get("/grants/v1/calls")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert (body["status"], body["upstream"], body["instance"]) == (503, "grants",
                                                                    "/grants/v1/calls")
    assert "127.0.0.1" not in response.text


def test_upstream_timeout_is_504_problem_json(tmp_path: Path, way: str) -> None:
    app = create_app(settings(tmp_path),
                     transports={"grants": raising(httpx.ReadTimeout("slow"))})
    with open_gateway(app, way) as client:
        response = client.get("/grants/v1/calls")
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"


def test_ready_when_every_upstream_is_ready(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"grants": "ok", "sandbox": "ok", "ipshare": "ok"}


def test_not_ready_names_the_upstreams_that_are_not(tmp_path: Path) -> None:
    ok = httpx.MockTransport(Recorder())
    app = create_app(
        settings(tmp_path),
        transports={"grants": ok, "sandbox": httpx.MockTransport(Recorder(503)),
                    "ipshare": raising(httpx.ConnectError("refused"))},
    )  # fmt: skip
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "grants": "ok", "sandbox": "not ready (503)", "ipshare": "unreachable: ConnectError"
    }


def test_ready_names_a_degraded_service_and_stays_200(tmp_path: Path) -> None:
    degraded = httpx.MockTransport(lambda _request: httpx.Response(200, json={
        "status": "degraded", "service": "ipshare",
        "checks": {"database": "ok", "broker": "unreachable: KafkaTimeoutError",
                   "relay": "degraded: the oldest unsent event has waited 95 s (limit 60 s)"},
    }))
    ok = httpx.MockTransport(Recorder())
    app = create_app(settings(tmp_path),
                     transports={"grants": ok, "sandbox": ok, "ipshare": degraded})
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"] == {
        "grants": "ok", "sandbox": "ok",
        "ipshare": "degraded: broker unreachable: KafkaTimeoutError, relay degraded: the "
                   "oldest unsent event has waited 95 s (limit 60 s)",
    }


def test_the_document_says_what_ready_answers_in_each_case(tmp_path: Path) -> None:
    ready = create_app(settings(tmp_path)).openapi()["paths"]["/ready"]["get"]
    assert ready["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"}
    assert "application/problem+json" in ready["responses"]["503"]["content"]
    for said in ("`200`", "degraded", "`503`", "not ready (503)", "outbox"):
        assert said in ready["description"], said


def test_dev_token_from_the_gateway_is_accepted_by_grants_behind_it(tmp_path: Path,
                                                                    way: str) -> None:
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    migrate_grants(url)
    grants = create_grants(GrantsSettings(database_url=url, dev_key_dir=tmp_path / "keys"),
                           background=False)
    app = create_app(settings(tmp_path),
                     transports={"grants": httpx.ASGITransport(app=grants)})
    with open_gateway(app, way) as client:
        token = client.post("/dev/tokens", json={"sub": "pm-2", "org": "DOST-HN",
                                                 "roles": ["program_manager"]})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        created = client.post("/grants/v1/calls", json=CALL, headers=auth)
        read = client.get(f"/grants/v1/calls/{created.json()['id']}", headers=auth)
    assert created.status_code == 201, created.text
    assert read.json()["agency_id"] == "DOST-HN"


def test_prod_profile_does_not_issue_dev_tokens(tmp_path: Path) -> None:
    _, public_key = ensure_dev_keys(tmp_path / "idp")
    app = create_app(GatewaySettings(profile="prod", jwt_issuer="https://id.most.gov.vn",
                                     jwt_public_key_file=public_key,
                                     dev_key_dir=tmp_path / "keys"))
    with TestClient(app) as client:
        response = client.post("/dev/tokens", json={"sub": "x", "roles": ["admin"]})
    assert response.status_code == 404


def test_a_head_answer_keeps_the_length_of_the_get(client: TestClient) -> None:
    get = client.get("/grants/v1/calls")
    head = client.head("/grants/v1/calls")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] != "0"


def test_a_service_down_and_the_gateway_not_ready_are_one_problem_type(tmp_path: Path,
                                                                      way: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    app = create_app(settings(tmp_path, grants_url=closed))
    with open_gateway(app, way) as client:
        down, not_ready = client.get("/grants/v1/calls"), client.get("/ready")
    assert (down.status_code, not_ready.status_code) == (503, 503)
    assert down.json()["type"] == not_ready.json()["type"] == (
        "https://most.gov.vn/problems/unavailable")
