"""Schemathesis against the gateway's merged document (``GET /openapi.json``), with the
three services on PostgreSQL behind the gateway's edge and proxy: every operation of the
platform as a client generated from that document calls it, with tokens of every role
(and none, and a bad one), path parameters half the time naming seeded objects.

Every answer, the edge's own included (401, 403, 413...), has a declared status,
content type, headers and schema, and none is a server error. ``OPENAPI_EXAMPLES`` sets
the examples per operation and mode (default: a budget of about 1,000 requests).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi

from devkit.testing import DatabaseFactory, Tokens

from ..security.world import CAST, OTHERS, Caller, Service, World, gateway_app, seed
from .test_conformance import exercise

pytestmark = pytest.mark.postgres

BUDGET = 1000


class ThroughTheGateway(World):
    """The security suites' world, its calls made through the gateway's sync client."""

    def __init__(self, client: Any, tokens: Tokens, apps: dict[str, Any]) -> None:
        super().__init__(services={n: Service(n, a, "", None, None)  # type: ignore[arg-type]
                                   for n, a in apps.items()}, gateway=None, tokens=tokens)
        self.sync = client

    async def call(self, who: Caller | None, method: str, path: str, *, body: Any = None,
                   via_gateway: bool = True, **kw: Any) -> Any:
        return self.sync.request(method, path, headers=self.headers(who), json=body)


def test_every_answer_at_the_gateway_is_declared_and_none_is_a_server_error(
        databases: DatabaseFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    app = gateway_app(databases, keys)
    try:
        with asgi.get_client(app) as client:
            world = ThroughTheGateway(client, Tokens(keys), app.state.services)
            ids = asyncio.run(seed(world))
            known = {name: [value] for name, value in ids.items()}
            known["application_id"] = [ids["application_id"], ids["sandbox_application_id"]]
            callers = [world.headers(who)["Authorization"]
                       for who in [*CAST.values(), *OTHERS.values()]]
            callers += [None, "Bearer not-a-token"]
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            operations = [result.ok() for result in schema.get_all_operations()]
            examples = int(os.environ.get("OPENAPI_EXAMPLES", "0")) or max(
                2, min(15, BUDGET // (2 * len(operations))))
            failures: list[str] = []
            statuses: Counter[int] = Counter()
            started = time.monotonic()
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    try:
                        exercise(operation, mode, examples, client, callers, known, statuses)
                    except Unsatisfiable:
                        assert not mode.is_positive, operation.label
                    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - below
                        failures.append(f"{operation.label} ({mode.value}): {exc}")
    finally:
        asgi.shutdown_lifespans()
    print(f"\ngateway: {len(operations)} operations, {examples} examples each, "
          f"{statuses.total()} requests in {time.monotonic() - started:.1f} s, "
          f"by status {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
