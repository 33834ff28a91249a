"""The links each service's document declares (``servicekit.openapi.add_links``): from an
answer to the operations that take the ids it carries, as a client follows them."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import SERVICES


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("links")
    return {name: service.app(f"sqlite:///{folder / name}.db", folder / "keys").openapi()
            for name, service in SERVICES.items()}


def links(document: dict[str, Any], method: str, path: str, status: str) -> dict[str, Any]:
    response = document["paths"][path][method]["responses"][status]
    by_target = {}
    for link in response.get("links", {}).values():
        target = next((m.upper(), p) for p, item in document["paths"].items()
                      for m, op in item.items()
                      if isinstance(op, dict) and op.get("operationId") == link["operationId"])
        by_target[target] = link
    return by_target


def test_a_created_call_links_to_what_its_manager_and_applicants_do_next(documents):
    found = links(documents["grants"], "post", "/v1/calls", "201")
    assert found[("POST", "/v1/calls/{call_id}/open")]["parameters"] == {
        "path.call_id": "$response.body#/id"}
    assert found[("POST", "/v1/applications")]["requestBody"] == {
        "call_id": "$response.body#/id"}
    assert ("POST", "/v1/grants/{grant_id}/close") not in found  # no grant in a call


def test_a_decision_links_to_its_grant_and_a_grant_to_its_milestones(documents):
    grants = documents["grants"]
    decided = links(grants, "post", "/v1/applications/{application_id}/decision", "200")
    assert decided[("GET", "/v1/grants/{grant_id}")]["parameters"] == {
        "path.grant_id": "$response.body#/grant_id"}
    assert decided[("POST", "/v1/applications/{application_id}/withdraw")]["parameters"] == {
        "path.application_id": "$response.body#/id"}
    grant = links(grants, "get", "/v1/grants/{grant_id}", "200")
    assert grant[("POST", "/v1/grants/{grant_id}/milestones/{milestone_id}/report")][
        "parameters"] == {"path.grant_id": "$response.body#/id",
                          "path.milestone_id": "$response.body#/milestones/0/id"}


def test_a_page_links_to_its_first_item(documents):
    found = links(documents["sandbox"], "get", "/v1/applications", "200")
    assert found[("POST", "/v1/applications/{application_id}/submit")]["parameters"] == {
        "path.application_id": "$response.body#/items/0/id"}


def test_every_link_names_an_operation_and_only_parameters_it_takes(documents):
    for document in documents.values():
        ids = {op["operationId"]: (path, op) for path, item in document["paths"].items()
               for op in item.values() if isinstance(op, dict) and "operationId" in op}
        for path, item in document["paths"].items():
            for operation in item.values():
                for response in operation.get("responses", {}).values():
                    for link in response.get("links", {}).values():
                        target_path, target = ids[link["operationId"]]
                        for name in link.get("parameters", {}):
                            assert "{" + name.removeprefix("path.") + "}" in target_path
                        body = target.get("requestBody", {})
                        assert not link.get("requestBody") or body, (path, link)
