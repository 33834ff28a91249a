"""``GET /openapi.json``: one document for the whole platform, merged from the services'.

Each service's operations appear under its prefix (``/grants/v1/calls``), with their
``operationId`` (and the links naming them) and tags prefixed by the service's name;
a component the services define alike (the problem schema, say) is shared, one they
define differently is renamed ``<service>.<Name>`` with every reference to it. Only
operations the route table admits appear (and links to them), with what the edge adds
to them: the bearer security the table implies where the service states none
(``x-roles`` naming the table's roles), and the answers the gateway itself gives, each
``application/problem+json``: 400 (a request the gateway does not read: malformed or
ambiguous framing, not exactly one ``Host``), 401 (a token that does not verify, on public
routes too), 403 (no role of the row), 413 (a body over the limit), 429 (rate limit, with
``Retry-After``), 431 (a head over the limits), 502, 503 and 504 (the service broke off,
is down, too slow), 505 (not HTTP/1.1 or 1.0). What a service already declares is kept
as it is.

The services are asked for their documents (``GET /openapi.json`` on each) when the
merged one is first wanted, and again after ``GATEWAY_OPENAPI_CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from gateway import route_table
from gateway.routes import RouteTable

METHODS = ("get", "put", "post", "delete", "patch")
BEARER = "bearerAuth"
PROBLEM = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                         {"type": "integer"}]}},
            "msg": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again",
                                "schema": {"type": "integer"}}}
# status -> (description, headers); which operations get which is decided in _edge_answers.
GATEWAY_ANSWERS: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("Not an HTTP/1.1 request the gateway reads: malformed or ambiguous framing, or "
            "not exactly one Host header field; the connection is closed", {}),
    "401": ("No valid bearer token (a token that is sent must verify, on public routes "
            "too)", {}),
    "403": ("The token holds none of the roles this operation needs", {}),
    "413": ("The request body is larger than the gateway takes", {}),
    "429": ("Too many requests from this caller or address", _RETRY_AFTER),
    "431": ("The request line and header fields are larger, or more, than the gateway "
            "takes; the connection is closed", {}),
    "502": ("The service broke off its answer", {}),
    "503": ("The service is unavailable; nothing was sent to it", _RETRY_AFTER),
    "504": ("The service did not answer in time", {}),
    "505": ("Not HTTP/1.1 (or 1.0); the connection is closed", {}),
}


class MergedDocuments:
    """The merged document, built from the services' and cached for ``cache_seconds``."""

    def __init__(self, gateway_document: Callable[[], dict[str, Any]],
                 services: Mapping[str, httpx.AsyncClient], table: RouteTable, *,
                 cache_seconds: float) -> None:
        self._gateway = gateway_document
        self._services = services
        self._table = table
        self._cache_seconds = cache_seconds
        self._merged: dict[str, Any] | None = None
        self._built_at = float("-inf")
        self._lock = asyncio.Lock()

    async def document(self) -> dict[str, Any]:
        """The merged document; :class:`DocumentUnavailable` naming the services whose
        documents could not be read."""
        async with self._lock:
            if self._merged is None or time.monotonic() - self._built_at > self._cache_seconds:
                documents = await asyncio.gather(*(_fetch(c) for c in self._services.values()))
                missing = [n for n, d in zip(self._services, documents, strict=True) if d is None]
                if missing:
                    raise DocumentUnavailable(missing)
                self._merged = merge(self._gateway(), dict(zip(self._services, documents,
                                                             strict=True)), self._table)
                self._built_at = time.monotonic()
            return self._merged


class DocumentUnavailable(Exception):
    def __init__(self, services: list[str]) -> None:
        super().__init__(", ".join(services))
        self.services = services


async def _fetch(client: httpx.AsyncClient) -> dict[str, Any] | None:
    try:
        response = await client.get("/openapi.json")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def merge(gateway: dict[str, Any], services: Mapping[str, dict[str, Any]],
          table: RouteTable) -> dict[str, Any]:
    """One document: the gateway's own operations and every service's under its prefix."""
    documents = {"": copy.deepcopy(gateway),
                 **{name: copy.deepcopy(doc) for name, doc in services.items()}}
    renames = _component_renames(documents)
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "MOST platform API", "version": gateway["info"].get("version", "1"),
                 "description": "Every operation of the platform, as the gateway serves it: "
                 + ", ".join(f"/{name}/..." for name in services) + "."},
        "paths": {},
        "components": {},
        "tags": [],
    }
    for name, document in documents.items():
        document = _renamed_refs(document, renames.get(name, {}))
        for section, entries in document.get("components", {}).items():
            for key, value in entries.items():
                new_key = renames.get(name, {}).get((section, key), key)
                merged["components"].setdefault(section, {})[new_key] = value
        for tag in document.get("tags", []):
            merged["tags"].append({**tag, "name": _tag(name, tag["name"])})
        for path, item in document.get("paths", {}).items():
            public_path = f"/{name}{path}" if name else path
            for method in METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                route = table.match(method.upper(), _example(public_path))
                if route is None:
                    continue  # the edge refuses it: not part of the public API
                if name:
                    operation["operationId"] = f"{name}_{operation.get('operationId', method)}"
                    _prefix_links(operation, name)
                operation["tags"] = [_tag(name, t) for t in operation.get("tags", [])]
                _edge_answers(operation, route, service=bool(name))
                merged["paths"].setdefault(public_path, {})[method] = operation
    _drop_dangling_links(merged)
    schemas = merged["components"].setdefault("schemas", {})
    schemas.setdefault(PROBLEM, PROBLEM_SCHEMA)
    merged["components"].setdefault("securitySchemes", {}).setdefault(
        BEARER, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    return merged


def _prefix_links(operation: dict[str, Any], service: str) -> None:
    """A service's links name its operations as the merged document does."""
    for response in operation.get("responses", {}).values():
        for link in response.get("links", {}).values():
            if "operationId" in link:
                link["operationId"] = f"{service}_{link['operationId']}"


def _drop_dangling_links(merged: dict[str, Any]) -> None:
    """Links to an operation the route table keeps out of the public API go."""
    present = {operation.get("operationId") for item in merged["paths"].values()
               for operation in item.values() if isinstance(operation, dict)}
    for item in merged["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                links = response.get("links")
                if links:
                    response["links"] = {k: v for k, v in links.items()
                                         if v.get("operationId") in present}


def _component_renames(documents: Mapping[str, dict[str, Any]]
                       ) -> dict[str, dict[tuple[str, str], str]]:
    """Per document: components whose name another document uses for something else get
    ``<service>.<Name>``; alike ones keep their name, unless what they refer to was
    renamed (two ``ApplicationPage`` of the same text, each a page of its own service's
    ``ApplicationRead``, are two components)."""
    contents: dict[tuple[str, str], set[str]] = {}
    defined: Counter[tuple[str, str]] = Counter()
    for document in documents.values():
        for section, entries in document.get("components", {}).items():
            for key, value in entries.items():
                contents.setdefault((section, key), set()).add(
                    json.dumps(value, sort_keys=True))
                defined[(section, key)] += 1
    renamed = {key for key, texts in contents.items() if len(texts) > 1}
    while True:  # a shared name referring to a renamed component is renamed too
        more = {(section, key) for document in documents.values()
                for section, entries in document.get("components", {}).items()
                for key, value in entries.items()
                if (section, key) not in renamed and defined[(section, key)] > 1
                and any(ref.removeprefix("#/components/").split("/", 1) == [s, k]
                        for ref in _refs_in(value) for s, k in renamed)}
        if not more:
            break
        renamed |= more
    renames: dict[str, dict[tuple[str, str], str]] = {}
    for name, document in documents.items():
        for section, entries in document.get("components", {}).items():
            for key in entries:
                if (section, key) in renamed:
                    renames.setdefault(name, {})[(section, key)] = f"{name or 'gateway'}.{key}"
    return renames


def _refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref" and isinstance(v, str)] + [
            ref for k, v in node.items() if k != "$ref" for ref in _refs_in(v)]
    if isinstance(node, list):
        return [ref for v in node for ref in _refs_in(v)]
    return []


def _renamed_refs(document: dict[str, Any], renames: dict[tuple[str, str], str]) -> Any:
    if not renames:
        return document
    refs = {f"#/components/{section}/{key}": f"#/components/{section}/{new}"
            for (section, key), new in renames.items()}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (refs.get(v, v) if k == "$ref" and isinstance(v, str) else walk(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(document)


def _edge_answers(operation: dict[str, Any], route: Any, *, service: bool) -> None:
    if route.access == route_table.PROBE:
        return
    if "security" not in operation:
        if route.access == "roles":
            operation["security"] = [{BEARER: []}]
        else:
            operation["security"] = [{}, {BEARER: []}]  # a token is optional, checked if sent
    if route.access == "roles":
        operation["x-roles"] = sorted(route.roles)
    wanted = ["400", "401", "429", "431", "505"]
    if route.access == "roles":
        wanted.append("403")
    if "requestBody" in operation:
        wanted.append("413")
    if service:
        wanted += ["502", "503", "504"]
    responses = operation.setdefault("responses", {})
    for status in wanted:
        if status not in responses:
            description, headers = GATEWAY_ANSWERS[status]
            responses[status] = {
                "description": description,
                "content": {"application/problem+json": {
                    "schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}},
                **({"headers": headers} if headers else {}),
            }


def _tag(service: str, tag: str) -> str:
    return f"{service}: {tag}" if service else tag


def _example(path: str) -> str:
    """A concrete path for a template, to find its table row as a request would."""
    parts = [("x" if part.startswith("{") else part) for part in path.split("/")]
    return "/".join(parts)
