"""Hostile request bodies and query strings against every write and read of the three
services, generated from their OpenAPI documents and the route table.

Each write (a POST or PUT with a body) is sent by a caller the route table admits, the
owner of the seeded object (``world.py``):

- structurally bad bodies: over the size limit (with and without a Content-Length),
  not JSON, truncated, invalid UTF-8, deep nesting (in the body and in a field), not
  an object, the wrong content type, NaN and Infinity;
- its valid body with one field changed at a time: each number made huge (past 64
  bits, 400 digits, 1e308), negative, fractional, NaN or Infinity; each string given a
  NUL, a lone surrogate, 100,000 characters;

every one a 4xx problem+json and, all of them together, nothing stored (every table of
the service unchanged). The same fields given odd but valid Unicode (right-to-left
override, zero-width joiner, combining marks, astral emoji) are accepted or refused,
never a server error. Each read's query parameters are tried with huge numbers, NUL,
invalid percent-encoded UTF-8 and long strings: never a server error.

``HOSTILE_STRING_LENGTH`` (default 100,000) sets the long string.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from gateway import route_table

from .conftest import FIGURES
from .world import CAST, SERVICES, World, bodies, split

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

PROBLEM = "application/problem+json"
LONG = int(os.environ.get("HOSTILE_STRING_LENGTH", "100000"))
WRITES = [(m, t, a) for m, t, a in route_table.ROUTES
          if t.split("/")[1] in SERVICES and m in ("POST", "PUT") and isinstance(a, tuple)]
READS = [(m, t, a) for m, t, a in route_table.ROUTES
         if t.split("/")[1] in SERVICES and m == "GET" and a != route_table.PROBE]
TALLY: Counter[str] = Counter()
NEST = 50_000

# Bodies no API takes: (name, raw bytes, content type).
STRUCTURAL: list[tuple[str, bytes | None, str]] = [
    ("not JSON", b"{title: 'x'", "application/json"),
    ("invalid UTF-8", b'{"title": "\xff\xfe\xfd"}', "application/json"),
    ("deep nesting", b"[" * NEST + b"]" * NEST, "application/json"),
    ("deep nesting in a field", b'{"title": ' + b"[" * NEST + b"]" * NEST + b"}",
     "application/json"),
    ("deep object nesting", b'{"a":' * NEST + b"1" + b"}" * NEST, "application/json"),
    ("a list", b"[]", "application/json"),
    ("a string", b'"x"', "application/json"),
    ("null", b"null", "application/json"),
    ("a number", b"1e999", "application/json"),
    ("empty", b"", "application/json"),
    ("NaN and Infinity", b'{"title": NaN, "budget_vnd": Infinity, "kpis": {"x": NaN}}',
     "application/json"),
    ("a digit string past Python's int limit", b'{"x": ' + b"9" * 5000 + b"}",
     "application/json"),
]
# (name, new value for an integer field)
NUMBERS = [("2**63", 2**63), ("10**30", 10**30), ("-10**30", -(10**30)), ("-1", -1),
           ("10**400", 10**400), ("NaN", float("nan")), ("Infinity", float("inf")),
           ("1e308", 1e308), ("0.5", 0.5)]
# (name, new value for a string field); all must be refused
BAD_TEXT = [("NUL", "a\x00b"), ("lone surrogate", "\ud800"), ("long", "x" * LONG)]
# Odd but valid Unicode: accepted or refused, never a server error.
ODD_TEXT = [("right-to-left override", "abc\u202edef"), ("zero-width joiner", "a\u200db"),
            ("combining marks", "Nguye\u0302\u0303n"), ("astral emoji", "🧪🇻🇳"),
            ("non-character", "a\ufffeb")]


def owner(access: tuple[str, ...]):
    return next(CAST[r] for r in access if r in CAST)


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, leaf) of a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path, value


def replaced(body: Any, path: tuple[Any, ...], new: Any) -> Any:
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


def encode(body: Any) -> bytes:
    """JSON as a client would send it, lone surrogates escaped (``\\ud800``)."""
    return json.dumps(body, ensure_ascii=True).encode()


def mutations(body: Any) -> Iterator[tuple[str, bytes]]:
    for path, leaf in leaves(body):
        where = "/".join(map(str, path))
        if isinstance(leaf, bool):
            yield f"{where} as a string", encode(replaced(body, path, "true"))
        elif isinstance(leaf, int | float):
            for name, value in NUMBERS:
                yield f"{where} = {name}", encode(replaced(body, path, value))
        elif isinstance(leaf, str):
            for name, value in BAD_TEXT:
                yield f"{where} with {name}", encode(replaced(body, path, value))


def check(response, name: str, problems: list[str], *, refused: bool) -> None:
    status = response.status_code
    TALLY[f"{status}"] += 1
    if status >= 500:
        problems.append(f"{name}: {status} {response.text[:300]}")
    elif refused and not 400 <= status < 500:
        problems.append(f"{name}: {status}, not refused: {response.text[:200]}")
    elif status >= 400 and response.headers.get("content-type") != PROBLEM:
        problems.append(f"{name}: {status} as {response.headers.get('content-type')}")


@pytest.mark.parametrize(("method", "template", "access"), WRITES,
                         ids=[f"{m} {t}" for m, t, _ in WRITES])
async def test_a_hostile_body_is_a_4xx_problem_and_stores_nothing(
        world: World, method: str, template: str, access: tuple[str, ...]) -> None:
    service, _ = split(template)
    if (method, template) not in world.operations(service):
        pytest.skip(f"{service} does not serve {method} {template} yet")
    operation = world.services[service].app.openapi()["paths"][split(template)[1]]
    if "requestBody" not in operation[method.lower()]:
        pytest.skip(f"{method} {template} takes no body")
    path, _ = world.concrete(template)
    service, rest = split(path)
    client = world.services[service].client
    headers = world.headers(owner(access))
    body = bodies(world.ids).get((method, template), {})
    limit = world.services[service].app.state.kit.settings.max_body_bytes
    problems: list[str] = []

    async def send(name: str, content: bytes, content_type: str = "application/json",
                   *, refused: bool = True, **extra: Any) -> None:
        response = await client.request(method, rest, content=content, headers={
            **headers, "Content-Type": content_type, **extra})
        check(response, name, problems, refused=refused)

    before = world.fingerprint(service)
    oversized = encode(body)[:-1] + b', "padding": "' + b"x" * limit + b'"}'
    await send("oversized", oversized)
    response = await client.request(method, rest, content=_chunks(oversized), headers={
        **headers, "Content-Type": "application/json"})
    check(response, "oversized, chunked", problems, refused=True)
    if response.status_code != 413:
        problems.append(f"oversized, chunked: {response.status_code}, not 413")
    await send("truncated", encode(body)[: len(encode(body)) // 2])
    await send("as text/plain", encode(body), "text/plain")
    await send("as form data", b"title=x", "application/x-www-form-urlencoded")
    for name, content, content_type in STRUCTURAL:
        await send(name, content, content_type)
    for name, content in mutations(body):
        await send(name, content)
    if world.fingerprint(service) != before:
        problems.append("a refused body stored something")
    for path_, leaf in leaves(body):
        if isinstance(leaf, str):
            for name, value in ODD_TEXT:
                await send(f"{'/'.join(map(str, path_))} with {name}",
                           encode(replaced(body, path_, value)), refused=False)
    TALLY["writes"] += 1
    FIGURES["hostile bodies"] = ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items()))
    assert not problems, f"{method} {template}:\n" + "\n".join(problems)


async def _chunks(content: bytes):
    for start in range(0, len(content), 65536):
        yield content[start:start + 65536]


QUERY_VALUES = [("huge", "9" * 30), ("negative", "-99999999999999999999"),
                ("NUL", "%00"), ("invalid UTF-8", "%ff%fe"), ("lone surrogate", "%ed%a0%80"),
                ("long", "x" * 10_000), ("a far date", "99999-12-31")]


@pytest.mark.parametrize(("method", "template", "access"), READS,
                         ids=[f"{m} {t}" for m, t, _ in READS])
async def test_a_hostile_query_string_is_never_a_server_error(
        world: World, method: str, template: str, access) -> None:
    service, _ = split(template)
    if (method, template) not in world.operations(service):
        pytest.skip(f"{service} does not serve {method} {template} yet")
    path, _ = world.concrete(template)
    _, rest = split(path)
    doc = world.services[service].app.openapi()
    operation = doc["paths"][split(template)[1]]["get"]
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    names = names or ["limit"]
    who = owner(access) if isinstance(access, tuple) else None
    problems: list[str] = []
    for name in names:
        for label, value in QUERY_VALUES:
            response = await world.services[service].client.get(
                f"{rest}?{name}={value}", headers=world.headers(who))
            check(response, f"?{name}= {label}", problems, refused=False)
    TALLY["reads"] += 1
    FIGURES["hostile bodies"] = ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items()))
    assert not problems, f"{method} {template}:\n" + "\n".join(problems)
