"""Each service's OpenAPI document declares what the service really answers: problem+json
errors with one Problem schema, the bearer token where the contract needs one, and the
Idempotency-Key header on every POST (contract.md, Conventions)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servicekit.problems import PROBLEM_JSON

# The contract's calls without a token: health, published call listings, the public
# sandbox register and sector profiles. Path parameters compare by position only.
PUBLIC = {("get", "/health"), ("get", "/ready"), ("get", "/v1/calls"),
          ("get", "/v1/calls/{}"), ("get", "/v1/register"), ("get", "/v1/register/{}"),
          ("get", "/v1/sectors")}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
def document(service, tmp_path: Path) -> dict[str, Any]:
    app = service.app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "keys")
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def is_public(method: str, path: str) -> bool:
    return (method, re.sub(r"\{[^}]*\}", "{}", path)) in PUBLIC


def test_every_error_response_is_problem_json_with_the_one_problem_schema(document):
    for method, path, operation in operations(document):
        errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
        assert errors or path == "/health", f"{method} {path} declares no error"
        for status, response in errors.items():
            assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, \
                (method, path, status)


def test_fastapis_validation_error_is_declared_nowhere(document):
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert '"ValidationError"' not in text
    for _, _, operation in operations(document):
        if "422" in operation["responses"]:
            assert "application/json" not in operation["responses"]["422"]["content"]


def test_the_problem_schema_has_the_rfc_9457_members_and_the_field_errors(document):
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance"}
    assert {"type", "title", "status", "detail", "instance", "errors", "checks"} == \
        set(problem["properties"])
    item = problem["properties"]["errors"]["items"]
    assert schemas[item["$ref"].rsplit("/", 1)[1]]["required"] == ["loc", "msg"]


def test_the_bearer_jwt_scheme_is_declared(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_every_call_but_the_public_ones_requires_the_bearer_token(document):
    for method, path, operation in operations(document):
        security = operation.get("security", [])
        if is_public(method, path):
            assert security == [] or {} in security, (method, path, security)
        else:
            assert security == [{"bearerAuth": []}], (method, path, security)
            assert "401" in operation["responses"], (method, path)


def test_a_public_call_that_reads_a_token_when_sent_declares_the_401_of_a_bad_one(document):
    for method, path, operation in operations(document):
        if {} in operation.get("security", []):
            assert operation["security"] == [{}, {"bearerAuth": []}]
            assert "401" in operation["responses"], (method, path)


def test_every_post_declares_the_idempotency_key_header(document):
    posts = [(path, op) for method, path, op in operations(document) if method == "post"]
    for path, operation in posts:
        keys = [p for p in operation.get("parameters", [])
                if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        assert len(keys) == 1, path
        assert keys[0]["required"] is False
        assert keys[0]["schema"] == {"type": "string", "minLength": 1, "maxLength": 200,
                                     "pattern": r"^[ -~]*[!-~][ -~]*$"}


def test_errors_follow_from_each_operations_shape(document):
    for method, path, operation in operations(document):
        declared = set(operation["responses"])
        where = f"{method} {path}"
        if "{" in path:
            assert {"404", "422"} <= declared, where
        if "requestBody" in operation:
            assert {"413", "422"} <= declared, where
        if method in ("post", "put", "patch", "delete"):
            assert {"409", "503"} <= declared, where  # writes: the database
    assert set(document["paths"]["/health"]["get"]["responses"]) == {"200"}


def test_ready_documents_what_it_answers_with_the_broker_or_the_database_down(document):
    ready = document["paths"]["/ready"]["get"]
    answers = ready["responses"]
    assert answers["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"}
    assert document["components"]["schemas"]["Readiness"]["properties"]["status"][
        "enum"] == ["ready", "degraded"]
    assert answers["503"]["content"][PROBLEM_JSON]["schema"] == PROBLEM_REF
    # The divergence from the contract's "database and broker reachable" is stated.
    for said in ('`503`', '"broker": "unreachable', "degraded", "outbox",
                 "docs/decisions/0011"):
        assert said in ready["description"], said
