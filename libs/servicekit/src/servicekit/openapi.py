"""The OpenAPI document a service publishes: FastAPI's, plus what each operation really
answers besides success.

Every operation declares:

- its error responses as ``application/problem+json`` with one shared ``Problem``
  schema (FastAPI's ``HTTPValidationError`` goes: the services never send it);
- the bearer token it needs (``security``): required, optional (read when sent, as on
  the published call listings) or none (health);
- on a POST, the ``Idempotency-Key`` header.

The errors are derived from each route, so a new route declares nothing of its own:

- from its dependencies: a kit dependency states what it answers with :func:`answers`
  (a token 401, a role check 403, the database 503, a unit of work 409 and 422);
- from its shape: a path parameter 404 (an id not found, or not the caller's to see),
  any parameter or body 422 (refused by validation or by the database), a body 413;
- from the route's own ``responses=`` for what only its handler knows: there a 4xx or
  5xx status is a problem too (``responses={403: {"description": "..."}}``).

Each success answer also declares OpenAPI links (:func:`add_links`) to the operations
that take the ids it carries, so a client (and a stateful fuzzer) can go from a created
resource to what can be done with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute

from servicekit import idempotency
from servicekit.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS, TYPE_BASE

Token = Literal["optional", "required"]
F = TypeVar("F", bound=Callable[..., Any])

SCHEMAS = "#/components/schemas/"
BEARER = "bearerAuth"  # the name the gateway's merged document uses too

DESCRIPTIONS = {
    401: "No valid bearer token: missing where required, malformed, expired or revoked.",
    403: "The caller's roles or organisation do not allow this.",
    404: "No such resource, or none the caller may see.",
    409: "Illegal state transition, or a conflicting change (the reason is given).",
    413: "The body is larger than the service takes.",
    422: "Invalid request: ``errors`` names each field refused (an Idempotency-Key reused "
         "with a different body, too).",
    503: "The database is unavailable: nothing was changed; retry after ``Retry-After``.",
}

FIELD_ERROR = {
    "type": "object",
    "description": "A refused field: where (``loc``, e.g. ``[\"body\", \"gross_vnd\"]``) and why.",
    "required": ["loc", "msg"],
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
    },
    "additionalProperties": False,
}

PROBLEM = {
    "type": "object",
    "description": "An RFC 9457 problem: every error a service answers. Members other "
                   "than these are extensions a client ignores (RFC 9457 §3.2): the "
                   "gateway's, say.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": f"The rule broken: {TYPE_BASE}<kind>.",
                 "examples": [TYPE_BASE + "not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path the caller used."},
        "errors": {"type": "array", "items": {"$ref": SCHEMAS + "FieldError"},
                   "description": "On an invalid request (422): each field refused."},
        "checks": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "On ``/ready`` (503): the state of each dependency."},
    },
}

class Readiness(BaseModel):
    """What ``GET /ready`` (a service's or the gateway's) answers with ``200``:
    ``ready`` when every check is ``ok``, else ``degraded``; ``checks`` names each
    dependency's state."""

    status: Literal["ready", "degraded"]
    service: str
    checks: dict[str, str]


BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT from the platform's issuer (claims sub, name, org, roles, iss, "
                   "aud, exp, iat, jti).",
}

IDEMPOTENCY_KEY = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Repeating a POST with the same key and body replays the first answer "
                   "(with ``Idempotent-Replayed: true``); the same key with another body is "
                   "a 422. Scoped to the caller and the route.",
    # Trimmed, then 1..MAX_KEY_LENGTH printable ASCII characters: not blank.
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH,
               "pattern": idempotency.KEY_PATTERN},
}


_TOKEN_RANK = {None: 0, "optional": 1, "required": 2}


@dataclass(frozen=True)
class Answers:
    """What a dependency can answer instead of the route: problem statuses, and whether
    it reads the caller's bearer token."""

    statuses: frozenset[int]
    token: Token | None = None


def answers(*statuses: int, token: Token | None = None) -> Callable[[F], F]:
    """Mark a dependency with the problem statuses it raises (``token``: it reads the
    bearer token, when sent or always); every route using it declares them."""
    def mark(dependency: F) -> F:
        found = Answers(frozenset(statuses), token)
        dependency.__openapi_answers__ = found  # type: ignore[attr-defined]
        return dependency
    return mark


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` FastAPI's document with the declarations above."""
    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            declare(FastAPI.openapi(app), app.routes)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def declare(document: dict[str, Any], routes: Iterable[BaseRoute]) -> None:
    """Add each route's problems, security and Idempotency-Key header to ``document``."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # Copies: whoever edits the document (the gateway merging several) edits its own.
    schemas["Problem"], schemas["FieldError"] = deepcopy(PROBLEM), deepcopy(FIELD_ERROR)
    components.setdefault("securitySchemes", {})[BEARER] = deepcopy(BEARER_SCHEME)
    for route in iter_route_contexts(list(routes)):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        path = document.get("paths", {}).get(route.path_format, {})
        for method in sorted(route.methods):
            operation = path.get(method.lower())
            if operation is not None:
                _declare_operation(operation, route, method)
    _drop_unused(schemas, document, ("HTTPValidationError", "ValidationError"))
    add_links(document)


def route_answers(route: APIRoute | RouteContext) -> Answers:
    """The problem statuses ``route`` can answer and the token it reads."""
    statuses: set[int] = set()
    token: Token | None = None
    for dependant in _dependants(route.dependant):
        found: Answers | None = getattr(dependant.call, "__openapi_answers__", None)
        if found is not None:
            statuses |= found.statuses
            if _TOKEN_RANK[found.token] > _TOKEN_RANK[token]:
                token = found.token
        if dependant.path_params:
            statuses.add(404)
        if dependant.body_params:
            statuses |= {413, 422}
        if (dependant.path_params or dependant.query_params or dependant.header_params
                or dependant.cookie_params):
            statuses.add(422)
    statuses |= {int(s) for s in route.responses if str(s).isdigit() and int(s) >= 400}
    return Answers(frozenset(statuses), token)


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The response object of a problem ``status``."""
    response: dict[str, Any] = {
        "description": description or DESCRIPTIONS.get(status, "A problem."),
        "content": {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + "Problem"}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {
            "required": True, "schema": {"type": "string"},
            "description": "``Bearer error=\"invalid_token\"``"}}
    elif status == 503:
        response["headers"] = {"Retry-After": {
            "schema": {"type": "string"},
            "description": f"Seconds to wait before retrying ({RETRY_AFTER_SECONDS})."}}
    return response


def _declare_operation(operation: dict[str, Any], route: APIRoute | RouteContext,
                       method: str) -> None:
    found = route_answers(route)
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's HTTPValidationError, or the route's own below
    for status in sorted(found.statuses):
        own = route.responses.get(status) or route.responses.get(str(status)) or {}
        responses[str(status)] = problem_response(status, own.get("description"))
    if found.token == "required":
        operation["security"] = [{BEARER: []}]
    elif found.token == "optional":
        operation["security"] = [{}, {BEARER: []}]
    if method == "POST":
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("in") == "header" and p.get("name", "").lower()
                   == idempotency.HEADER.lower() for p in parameters):
            parameters.append(deepcopy(IDEMPOTENCY_KEY))


def _dependants(dependant: Dependant) -> Iterable[Dependant]:
    """``dependant`` and every dependency under it."""
    yield dependant
    for dependency in dependant.dependencies:
        yield from _dependants(dependency)


def _drop_unused(schemas: dict[str, Any], document: dict[str, Any],
                 names: Iterable[str]) -> None:
    """Remove FastAPI's validation schemas when nothing refers to them any more."""
    for name in names:
        if name in schemas:
            others = {k: v for k, v in schemas.items() if k != name}
            text = json.dumps([document.get("paths", {}), others])
            if f'"{SCHEMAS}{name}"' not in text:
                del schemas[name]


# --- links -----------------------------------------------------------------------------

def add_links(document: dict[str, Any]) -> None:
    """Declare, on each success answer, a link to every operation whose ids it carries.

    An answer carries the id of the resource its schema is (the schema of ``GET
    .../{x_id}``: its ``id`` names ``x_id``), of each resource a page's first item is, of
    each ``<x>_id`` property, and of each item of an array property ``<x>s`` of objects
    with an ``id`` (``milestones`` → ``milestone_id``). A link targets an operation when
    every path parameter it takes comes from the answer or from the answering request's
    own path, at least one from the answer; a target's body fields named like an id the
    answer carries are set from it (``call_id`` of a new application, say). Links are
    named by the target's ``operationId``.
    """
    operations = [(path, method, operation)
                  for path, item in document.get("paths", {}).items()
                  for method, operation in item.items()
                  if isinstance(operation, dict) and "operationId" in operation]
    schemas = document.get("components", {}).get("schemas", {})
    resources = _resources(operations, schemas)
    for path, _method, operation in operations:
        for status, response in operation.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            schema = _json_schema(response)
            carried = _carried(schema, schemas, resources)
            if not carried:
                continue
            own = {p: f"$request.path.{p}" for p in _path_params(path)}
            links = {}
            for target_path, _target_method, target in operations:
                if target is operation:
                    continue
                link = _link(target_path, target, carried, own, schemas)
                if link is not None:
                    links[target["operationId"]] = link
            if links:
                response["links"] = links


def _link(path: str, target: dict[str, Any], carried: dict[str, str], own: dict[str, str],
          schemas: dict[str, Any]) -> dict[str, Any] | None:
    params = _path_params(path)
    if any(p not in carried and p not in own for p in params):
        return None
    body = {field: carried[field] for field in _body_ids(target, schemas) if field in carried}
    if not body and not any(p in carried for p in params):
        return None
    link: dict[str, Any] = {"operationId": target["operationId"]}
    if params:
        link["parameters"] = {f"path.{p}": carried.get(p, own.get(p)) for p in params}
    if body:
        link["requestBody"] = body
    return link


def _resources(operations: list[tuple[str, str, dict[str, Any]]],
               schemas: dict[str, Any]) -> dict[str, str]:
    """Schema name → the path parameter naming one of it (``GrantRead`` → ``grant_id``)."""
    found: dict[str, str] = {}
    for path, method, operation in operations:
        params = _path_params(path)
        if method != "get" or not params or not path.endswith("}"):
            continue
        for name in _schema_names(_json_schema(operation.get("responses", {}).get("200", {}))):
            if "id" in schemas.get(name, {}).get("properties", {}):
                found.setdefault(name, params[-1])
    return found


def _carried(schema: dict[str, Any] | None, schemas: dict[str, Any],
             resources: dict[str, str]) -> dict[str, str]:
    """Path parameter name → where an answer of ``schema`` (one of its shapes, when it
    has several) carries its value."""
    carried: dict[str, str] = {}
    for name in _schema_names(schema):
        if name in resources:
            carried.setdefault(resources[name], "$response.body#/id")
        _carried_properties(schemas.get(name, {}).get("properties", {}), schemas, resources,
                            carried)
    return carried


def _carried_properties(properties: dict[str, Any], schemas: dict[str, Any],
                        resources: dict[str, str], carried: dict[str, str]) -> None:
    for key, value in properties.items():
        if key.endswith("_id") and _is_string(value, schemas):
            carried.setdefault(key, f"$response.body#/{key}")
        items = value.get("items", {}) if value.get("type") == "array" else {}
        item = _schema_name(items)
        if item is None or "id" not in schemas.get(item, {}).get("properties", {}):
            continue
        if key == "items" and item in resources:  # a page: its first item
            carried.setdefault(resources[item], "$response.body#/items/0/id")
        elif key.endswith("s"):
            carried.setdefault(f"{key[:-1]}_id", f"$response.body#/{key}/0/id")


def _body_ids(operation: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    name = _schema_name(content.get("application/json", {}).get("schema"))
    properties = schemas.get(name, {}).get("properties", {}) if name else {}
    return [key for key, value in properties.items()
            if key.endswith("_id") and _is_string(value, schemas)]


def _json_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    return response.get("content", {}).get("application/json", {}).get("schema")


def _schema_name(schema: dict[str, Any] | None) -> str | None:
    ref = (schema or {}).get("$ref", "")
    return ref.removeprefix(SCHEMAS) if ref.startswith(SCHEMAS) else None


def _schema_names(schema: dict[str, Any] | None) -> list[str]:
    """The component schemas an answer may be: its ``$ref``, or those of its ``anyOf``."""
    options = (schema or {}).get("anyOf") or (schema or {}).get("oneOf") or [schema]
    return [name for option in options if (name := _schema_name(option))]


def _is_string(schema: dict[str, Any], schemas: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "string" for option in options)


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
