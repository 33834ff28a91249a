"""A kit app's OpenAPI document declares each route's problems, token and Idempotency-Key
from the route's dependencies and shape, and what it declares is what the app answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.testclient import TestClient
from pydantic import BaseModel

from servicekit.auth import CurrentPrincipal, OptionalPrincipal, Principal, require_roles
from servicekit.devtokens import DevIssuer
from servicekit.hotpath.unit_of_work import HotUnitOfWork, hot_unit_of_work
from servicekit.openapi import answers
from servicekit.problems import PROBLEM_JSON, NotFound
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

Finance = Annotated[Principal, Depends(require_roles("finance"))]
Command = Annotated[HotUnitOfWork, Depends(hot_unit_of_work("institution"))]
PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


class Thing(BaseModel):
    name: str


@answers(429)
async def rationed() -> None:
    """A service's own dependency that states what it answers."""


Rationed = Annotated[None, Depends(rationed)]


def things_router() -> APIRouter:
    api = APIRouter()

    @api.post("/things", status_code=201)
    def create_thing(body: Thing, user: Finance, uow: UnitOfWorkDep) -> dict[str, str]:
        return {"name": body.name}

    @api.get("/things/{thing_id}")
    def read_thing(thing_id: str, user: CurrentPrincipal, session: SessionDep) -> None:
        raise NotFound(f"thing {thing_id} not found")

    @api.get("/listing")
    def listing(principal: OptionalPrincipal, session: SessionDep) -> list[str]:
        return []

    @api.get("/plain")
    def plain() -> dict[str, str]:
        return {}

    @api.post("/things/{thing_id}/pipelined")
    async def pipelined(thing_id: str, uow: Command) -> None:
        return None

    @api.post("/things/{thing_id}/merge",
              responses={410: {"description": "The thing was merged away."}})
    def merge(thing_id: str, user: CurrentPrincipal, session: SessionDep,
              _: Rationed) -> None:
        return None

    @api.get("/search")
    def search(q: str, user: CurrentPrincipal,
               trace: Annotated[str | None, Header()] = None) -> list[str]:
        return []

    return api


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    settings = ServiceSettings(database_url=f"sqlite:///{tmp_path / 'kit.db'}",
                               dev_key_dir=tmp_path / "keys", max_body_bytes=1024)
    return create_service_app(settings, title="things", description="test",
                              routers=[things_router()], background=False)


@pytest.fixture
def paths(app: FastAPI) -> dict[str, Any]:
    return app.openapi()["paths"]


def errors(operation: dict[str, Any]) -> set[int]:
    return {int(s) for s in operation["responses"] if int(s) >= 400}


def test_a_role_checked_write_with_a_body_declares_what_it_can_refuse(paths):
    operation = paths["/things"]["post"]
    assert errors(operation) == {401, 403, 409, 413, 422, 503}
    assert operation["security"] == [{"bearerAuth": []}]
    assert all(operation["responses"][str(s)]["content"] == PROBLEM
               for s in errors(operation))


def test_a_path_parameter_is_a_404_and_a_required_token_a_401_or_403(paths):
    operation = paths["/things/{thing_id}"]["get"]
    assert errors(operation) == {401, 403, 404, 422, 503}
    assert operation["security"] == [{"bearerAuth": []}]


def test_a_token_read_when_sent_is_optional_security_and_a_401(paths):
    operation = paths["/listing"]["get"]
    assert errors(operation) == {401, 503}
    assert operation["security"] == [{}, {"bearerAuth": []}]


def test_a_route_without_dependencies_or_parameters_declares_no_problem(paths):
    operation = paths["/plain"]["get"]
    assert errors(operation) == set()
    assert "security" not in operation


def test_a_hot_unit_of_work_declares_the_same_as_roles_and_a_unit_of_work(paths):
    operation = paths["/things/{thing_id}/pipelined"]["post"]
    assert errors(operation) == {401, 403, 404, 409, 422, 503}
    assert operation["security"] == [{"bearerAuth": []}]


def test_a_routes_own_responses_and_its_own_dependencies_add_problems(paths):
    operation = paths["/things/{thing_id}/merge"]["post"]
    assert errors(operation) == {401, 403, 404, 410, 422, 429, 503}
    assert operation["responses"]["410"] == {"description": "The thing was merged away.",
                                            "content": PROBLEM}


def test_query_and_header_parameters_are_a_422(paths):
    assert 422 in errors(paths["/search"]["get"])


def test_every_post_takes_an_idempotency_key_and_no_get_does(paths):
    for path, item in paths.items():
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            assert ("Idempotency-Key" in names) == (method == "post"), (method, path)


def test_fastapis_validation_schemas_are_gone_and_the_problem_schema_is_there(app):
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail", "instance"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_the_document_is_built_once(app):
    assert app.openapi() is app.openapi()


def test_the_declared_problems_are_what_the_app_answers(app, tmp_path):
    issuer = DevIssuer(tmp_path / "keys")
    auditor = {"Authorization": "Bearer " + issuer.issue("a", name="a", org="SAV",
                                                          roles=["auditor"])}
    finance = {"Authorization": "Bearer " + issuer.issue("f", name="f", org="MOF",
                                                          roles=["finance"])}
    paths = app.openapi()["paths"]
    with TestClient(app) as client:
        answers = [
            ("/things", "post", client.post("/things", json={"name": "x"})),
            ("/things", "post", client.post("/things", json={"name": "x"}, headers=auditor)),
            ("/things", "post", client.post("/things", json={"name": 1}, headers=finance)),
            ("/things", "post", client.post("/things", content=b"{" * 2048,
                                            headers=finance)),
            ("/things", "post", client.post("/things", json={"name": "x"},
                                            headers={**finance, "Idempotency-Key": " "})),
            ("/things/{thing_id}", "get", client.get("/things/7", headers=auditor)),
            ("/listing", "get", client.get("/listing",
                                           headers={"Authorization": "Bearer bad"})),
        ]
    assert [r.status_code for _, _, r in answers] == [401, 403, 422, 413, 422, 404, 401]
    for path, method, response in answers:
        assert str(response.status_code) in paths[path][method]["responses"], (path, method)
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["status"] == response.status_code
    assert answers[0][2].headers["www-authenticate"].startswith("Bearer")
