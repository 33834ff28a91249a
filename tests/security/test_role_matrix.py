"""Every role, and no token, against every operation of the three services: at the
gateway and at each service directly, generated from the gateway's route table.

For each operation (a row of ``gateway.route_table`` naming a service) and each caller:

- no token: 401 problem+json on an operation with roles, at the edge and at the service;
  a public operation answers;
- a role the table does not name: 403 at the edge, which never reaches the service; the
  service itself refuses it too, 403, or 404 where the path names an object whose
  existence is private (``servicekit.problems``); none of these refusals stores
  anything (every table of the service's database is unchanged);
- a role the table names, as the owner of the seeded objects (``world.py``): it gets past
  both (no 401, 403 or 404 on its own object; a write may still meet a 409 or a 422 of
  the domain), and a read answers the same at the edge as at the service.

A write is sent a valid body (``world.bodies``). An operation in the table that its
service does not serve yet is reported as skipped; one the service serves without a row
in the table fails.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gateway import route_table
from servicekit.auth import ROLES

from .conftest import FIGURES
from .world import CAST, SERVICES, Caller, World, bodies

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

PROBLEM = "application/problem+json"
ROWS = [(m, t, a) for m, t, a in route_table.ROUTES
        if t.split("/")[1] in SERVICES and a != route_table.PROBE]
TALLY: Counter[str] = Counter()


def allowed(access: str | tuple[str, ...], role: str | None) -> bool:
    if not isinstance(access, tuple):
        return True  # public
    return role is not None and role in access


def caller(role: str | None) -> Caller | None:
    return CAST[role] if role else None


@pytest.mark.parametrize(("method", "template", "access"), ROWS,
                         ids=[f"{m} {t}" for m, t, _ in ROWS])
async def test_each_caller_meets_what_the_table_says_at_the_edge_and_the_service(
        world: World, method: str, template: str, access: str | tuple[str, ...]) -> None:
    service = template.split("/")[1]
    if (method, template) not in world.operations(service):
        TALLY["operations not served yet"] += 1
        pytest.skip(f"{service} does not serve {method} {template} yet")
    path, unknown = world.concrete(template)
    body = bodies(world.ids).get((method, template))
    if body is None and method in ("POST", "PUT"):
        body = {}
    callers = [None, *sorted(ROLES)]
    refused = [r for r in callers if not allowed(access, r)]
    admitted = [r for r in callers if allowed(access, r)]
    problems: list[str] = []

    before = world.fingerprint(service)
    for role in refused:
        who = caller(role)
        expected = {401} if role is None else (
            {403, 404} if "{" in template else {403})
        reached_before = len(world.services[service].reached.requests)
        edge = await world.call(who, method, path, body=body, via_gateway=True)
        if edge.status_code != (401 if role is None else 403):
            problems.append(f"edge, {role}: {edge.status_code} {edge.text[:200]}")
        if len(world.services[service].reached.requests) != reached_before:
            problems.append(f"edge, {role}: the request reached {service}")
        direct = await world.call(who, method, path, body=body)
        if direct.status_code not in expected:
            problems.append(f"{service}, {role}: {direct.status_code} not in "
                            f"{sorted(expected)}: {direct.text[:200]}")
        for where, response in (("edge", edge), (service, direct)):
            if response.headers.get("content-type") != PROBLEM:
                problems.append(f"{where}, {role}: {response.headers.get('content-type')}")
            TALLY[f"refused {response.status_code}"] += 1
        if role is None and direct.status_code == 401 and \
                not direct.headers.get("www-authenticate", "").startswith("Bearer"):
            problems.append(f"{service}: a 401 without WWW-Authenticate: Bearer")
    if refused and world.fingerprint(service) != before:
        problems.append(f"{service}: a refused request stored something")

    for role in admitted:
        who = caller(role)
        direct = await world.call(who, method, path, body=body)
        edge = await world.call(who, method, path, body=body, via_gateway=True)
        for where, response in ((service, direct), ("edge", edge)):
            TALLY[f"admitted {response.status_code}"] += 1
            status = response.status_code
            hidden = status == 404 and not unknown
            if status in (401, 403) or hidden or status >= 500:
                problems.append(f"{where}, {role}: {status} {response.text[:200]}")
        if method == "GET" and edge.status_code != direct.status_code:
            problems.append(f"{role}: {direct.status_code} at {service} but "
                            f"{edge.status_code} at the edge")
    TALLY["operations"] += 1
    TALLY["requests"] += 2 * len(callers)
    FIGURES["role matrix"] = ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items()))
    assert not problems, f"{method} {template} ({path}):\n" + "\n".join(problems)
