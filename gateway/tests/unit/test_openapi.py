"""The merged API document and Swagger UI at the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.embedded import create_embedded_app
from gateway.openapi import merge
from gateway.routes import RouteTable
from gateway.settings import GatewaySettings

GATEWAY_DOC = {"openapi": "3.1.0", "info": {"title": "gw", "version": "1.0.0"},
               "paths": {"/health": {"get": {"operationId": "health", "responses": {
                   "200": {"description": "ok"}}}}}}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    app = create_embedded_app(tmp_path_factory.mktemp("docs") / "var")
    with TestClient(app) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200, response.text
        yield response.json()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_service_operation_is_under_its_prefix(document: dict[str, Any]) -> None:
    table = RouteTable.default()
    paths = document["paths"]
    assert "/grants/v1/calls" in paths and "/ipshare/v1/ledger/trial-balance" in paths
    assert "/sandbox/v1/register" in paths and "/health" in paths
    for path, item in paths.items():
        for method in item:
            concrete = "/".join("x" if p.startswith("{") else p for p in path.split("/"))
            assert table.match(method.upper(), concrete) is not None, (method, path)


def test_every_reference_resolves_and_operation_ids_are_unique(
    document: dict[str, Any],
) -> None:
    for ref in set(_refs(document)):
        section, name = ref.removeprefix("#/components/").split("/", 1)
        assert name in document["components"][section], ref
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_a_name_two_services_use_differently_is_kept_apart(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "grants.ApplicationRead" in schemas and "sandbox.ApplicationRead" in schemas
    assert "ApplicationRead" not in schemas
    grants_app = document["paths"]["/grants/v1/applications/{application_id}"]["get"]
    assert "grants.ApplicationRead" in str(grants_app["responses"]["200"])


def test_operations_carry_the_edges_security_and_answers(document: dict[str, Any]) -> None:
    create = document["paths"]["/grants/v1/calls"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    assert create["x-roles"] == ["program_manager"]
    for status in ("400", "401", "403", "413", "429", "431", "503", "504", "505"):
        content = create["responses"][status]["content"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"}
    assert "Retry-After" in create["responses"]["429"]["headers"]
    listing = document["paths"]["/grants/v1/calls"]["get"]
    assert listing["security"] == [{}, {"bearerAuth": []}]  # public; a token is checked
    assert "403" not in listing["responses"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_what_a_service_declares_is_kept() -> None:
    service = {"openapi": "3.1.0", "info": {"title": "grants", "version": "1"},
               "paths": {"/v1/portfolio": {"get": {
                   "operationId": "read_portfolio", "tags": ["portfolio"],
                   "security": [{"jwt": []}],
                   "responses": {"200": {"description": "ok"},
                                 "403": {"description": "not your agency", "content": {
                                     "application/problem+json": {"schema": {
                                         "$ref": "#/components/schemas/Problem"}}}}}}},
                   "/v1/internal": {"get": {"operationId": "internal", "responses": {}}}},
               "components": {"schemas": {"Problem": {"type": "object", "title": "P"}},
                              "securitySchemes": {"jwt": {"type": "http",
                                                          "scheme": "bearer"}}}}
    merged = merge(GATEWAY_DOC, {"grants": service}, RouteTable.default())
    operation = merged["paths"]["/grants/v1/portfolio"]["get"]
    assert operation["security"] == [{"jwt": []}]
    assert operation["responses"]["403"]["description"] == "not your agency"
    assert operation["operationId"] == "grants_read_portfolio"
    assert operation["tags"] == ["grants: portfolio"]
    assert merged["components"]["schemas"]["Problem"] == {"type": "object", "title": "P"}
    assert "/grants/v1/internal" not in merged["paths"]  # no table row: refused at the edge


def test_swagger_ui_shows_the_merged_document(tmp_path: Path) -> None:
    app = create_app(GatewaySettings(dev_key_dir=tmp_path / "keys"),
                     transports={n: httpx.MockTransport(lambda r: httpx.Response(404))
                                 for n in ("grants", "sandbox", "ipshare")})
    with TestClient(app) as client:
        page = client.get("/docs")
        missing = client.get("/openapi.json")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert missing.status_code == 503
    assert missing.headers["content-type"] == "application/problem+json"
    assert "grants, sandbox, ipshare" in missing.json()["detail"]


def test_links_name_operations_of_the_merged_document(document: dict[str, Any]) -> None:
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    created = document["paths"]["/grants/v1/calls"]["post"]["responses"]["201"]["links"]
    assert created["open_call_v1_calls__call_id__open_post"]["operationId"] == \
        "grants_open_call_v1_calls__call_id__open_post"
    named = [link["operationId"] for item in document["paths"].values()
             for op in item.values() for response in op.get("responses", {}).values()
             for link in response.get("links", {}).values()]
    assert named and set(named) <= ids


def test_alike_components_referring_to_renamed_ones_are_kept_apart() -> None:
    """Two pages of the same text, each of its own service's ApplicationRead."""
    def service(required: str) -> dict[str, Any]:
        return {"openapi": "3.1.0", "info": {"title": "s", "version": "1"},
                "paths": {"/v1/applications": {"get": {
                    "operationId": "list", "responses": {"200": {"description": "ok",
                        "content": {"application/json": {"schema": {
                            "$ref": "#/components/schemas/ApplicationPage"}}}}}}}},
                "components": {"schemas": {
                    "ApplicationRead": {"type": "object", "required": [required]},
                    "ApplicationPage": {"type": "object", "properties": {"items": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ApplicationRead"}}}}}}}

    merged = merge(GATEWAY_DOC, {"grants": service("call_id"), "sandbox": service("owner_id")},
                   RouteTable.default())
    schemas = merged["components"]["schemas"]
    page = merged["paths"]["/grants/v1/applications"]["get"]["responses"]["200"]
    grants_page = page["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert grants_page == "grants.ApplicationPage"
    assert schemas[grants_page]["properties"]["items"]["items"]["$ref"].endswith(
        "/grants.ApplicationRead")
    assert schemas["grants.ApplicationRead"]["required"] == ["call_id"]
