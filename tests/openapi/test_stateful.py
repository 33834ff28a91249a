"""Schemathesis' stateful phase on each service: it follows the document's links
(``servicekit.openapi.add_links``) from a created resource to what can be done with it,
and must reach the write paths: each service's creating writes and a write past creation
answer 2xx (``REACHED``), so the test fails when the links that lead there break.

How the sequences get there, as a client of the API would:

- they start where a client starts, at the operations that need no id of an existing
  resource (the creating POSTs and the listings); schemathesis would also start at every
  POST, ``/calls/{call_id}/open`` with a made-up id included, and answer 404 most of
  its steps. Everything else is reached by a link.
- three bodies in four of the writes the security suites know a valid body for
  (``tests/security/world.py``) are that body, with the ids the link puts in it: the
  others are generated from the schema and mostly refused by validation.
- a write on the resource an answer is (its ``id``, a page's first item) is drawn five
  times as often as a read or a write on a resource it merely names, so a sequence goes
  on with what it created rather than cancelling its call from every answer that names it.
- each step is sent by the caller of the step it follows when the route table admits
  them (whoever created a resource reads it), else by the role that changes things.
- an answer that gives later steps nothing (an empty page) is not followed.

Hypothesis' seed is fixed, so a run reaches the same writes each time (on a fresh
database; the services' ids differ, their order does not). The database keeps what
earlier sequences did, so Hypothesis may find a sequence it cannot replay; the run then
goes on from the next seed. Every answer, errors included, is checked as in the stateless
tests, with schemathesis' stateful checks besides (a resource just created is there;
one deleted is gone; a required token is required). The writes reached are printed after
the run ("stateful fuzzing").

``OPENAPI_STATEFUL_EXAMPLES`` (default 48 sequences), ``OPENAPI_STATEFUL_STEPS``
(default 25 steps at most each) and ``OPENAPI_STATEFUL_SEED`` (default 0) search deeper
or elsewhere.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.stateful.state_machine import normalize_name
from schemathesis.specs.openapi import stateful as openapi_stateful
from schemathesis.specs.openapi.checks import (
    ensure_resource_availability,
    ignored_auth,
    use_after_free,
)

from gateway import route_table
from servicekit.devtokens import DevIssuer

from ..security.world import bodies
from .conftest import STATEFUL_FIGURES
from .test_conformance import CHECKS

pytestmark = pytest.mark.postgres

SEQUENCES = int(os.environ.get("OPENAPI_STATEFUL_EXAMPLES", "48"))
STEPS = int(os.environ.get("OPENAPI_STATEFUL_STEPS", "25"))
SEED = int(os.environ.get("OPENAPI_STATEFUL_SEED", "0"))
MAX_ROUNDS = 20  # seeds tried when sequences cannot be replayed
# The caller for each role: the owner of whatever the sequence creates.
OWNERS = {"program_manager": ("pm-1", "MOST"), "researcher": ("r-lead", "HUST"),
          "institution": ("off-1", "HUST"), "reviewer": ("rev-1", "VAST"),
          "sandbox_applicant": ("firm-1", "fintech-1"), "finance": ("fin-1", "MOF"),
          "auditor": ("aud-1", "SAV"), "admin": ("adm-1", "MOST")}
# Which owner acts when an operation admits several roles: the one that changes things.
PREFERENCE = ("sandbox_applicant", "program_manager", "researcher", "institution",
              "reviewer", "finance", "admin", "auditor")
# The stateless tests' checks (no server error; status, content type, headers and body
# as declared) and the stateful ones.
STATEFUL_CHECKS = [*CHECKS, ensure_resource_availability, use_after_free, ignored_auth]
# The bodies the domain accepts, and the odds that a write with one is sent it.
VALID = bodies({})
VALID_IN = 4  # 3 in 4
WRITES = ("POST", "PUT", "PATCH", "DELETE")
FORWARD_WEIGHT = 5
OWN = ("$response.body#/id", "$response.body#/items/0/id")
# What each run must reach with a 2xx: every write of the first list, and at least one of
# the second (writes past creation).
REACHED: dict[str, tuple[list[str], list[str]]] = {
    "grants": (["POST /v1/calls", "POST /v1/calls/{call_id}/open", "POST /v1/applications"],
               ["POST /v1/applications/{application_id}/submit",
                "POST /v1/applications/{application_id}/withdraw",
                "POST /v1/applications/{application_id}/endorse",
                "PUT /v1/applications/{application_id}"]),
    "ipshare": (["POST /v1/assets", "POST /v1/assets/{asset_id}/agreements",
                 "POST /v1/agreements/{agreement_id}/income"],
                ["POST /v1/distributions/{distribution_id}/reverse",
                 "POST /v1/agreements/{agreement_id}/terminate"]),
    "sandbox": (["POST /v1/applications", "POST /v1/applications/{application_id}/submit"],
                ["POST /v1/applications/{application_id}/withdraw",
                 "POST /v1/applications/{application_id}/decision",
                 "POST /v1/applications/{application_id}/request-changes",
                 "PUT /v1/applications/{application_id}"]),
}


def access_of(service: str, method: str, path: str) -> tuple[str, ...]:
    """The roles the route table admits to ``method path`` (admin where it names none)."""
    template = re.sub(r"\{[^}]+\}", "{}", f"/{service}{path}")
    for m, t, access in route_table.ROUTES:
        if m == method and re.sub(r"\{[^}]+\}", "{}", t) == template:
            return access if isinstance(access, tuple) else ("admin",)
    raise AssertionError(f"{method} /{service}{path} is not in the route table")


def takes_an_id(document: dict[str, Any], method: str, path: str) -> bool:
    """Whether ``method path`` needs the id of an existing resource: in its path, or as a
    required ``*_id`` of its body (``call_id`` of a new application)."""
    if "{" in path:
        return True
    body = document["paths"][path][method.lower()].get("requestBody", {})
    ref = body.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    schema = document["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    return any(name.endswith("_id") for name in schema.get("required", []))


def forward(link: Any) -> bool:
    """Whether ``link`` is a write on the resource its answer is (or one made from it)."""
    values = [p.expression for p in link.parameters]
    if isinstance(link.body, dict):
        values += link.body.values()
    return link.target.method.upper() in WRITES and any(v in OWN for v in values)


def test_the_stateful_phase_follows_links_to_the_writes(service, running, tmp_path: Path,
                                                        monkeypatch):
    app, _ = running
    issuer = DevIssuer(tmp_path / "keys")
    bearer = {role: "Bearer " + issuer.issue(sub, name=sub, org=org, roles=[role])
              for role, (sub, org) in OWNERS.items()}
    # Loaded from the app (not a dict): every request, the checks' probes too, goes to it.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    document = app.openapi()

    @schema.hook
    def before_generate_body(context: Any, strategy: Any) -> Any:
        op = context.operation
        valid = VALID.get((op.method.upper(), f"/{service.name}{op.path}"))
        if valid is None:
            return strategy
        return st.integers(1, VALID_IN).flatmap(
            lambda i: strategy if i == 1 else st.just(valid).map(copy.deepcopy))

    def roots(operations: Any, transitions: Any, graph: Any) -> Any:
        found = openapi_stateful.RootTransitions()
        found.reliable |= {op.label for op in operations
                           if op.label in transitions.operations
                           and transitions.operations[op.label].outgoing
                           and not takes_an_id(document, op.method, op.path)}
        return found

    # Schemathesis picks the roots with this function when it builds the machine.
    monkeypatch.setattr(openapi_stateful, "classify_root_transitions", roots)
    machine = schema.as_state_machine()
    weights = {normalize_name(link.full_name): FORWARD_WEIGHT
               for t in machine._transitions.operations.values() for link in t.incoming
               if forward(link)}
    weights.update(dict.fromkeys(machine.root_rules, FORWARD_WEIGHT))
    answered: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    role_of: dict[str, str] = {}  # case id -> the role that sent it
    sequences = 0

    class AsOwners(machine):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            # Hypothesis draws a rule uniformly among the valid ones: listing a rule k
            # times draws it k times as often (as schemathesis reorders its roots).
            rules = self._rules_strategy
            weighted = [r for r in rules.rules
                        for _ in range(weights.get(r.function.__name__, 1))]
            rules.rules_strategy = st.sampled_from(weighted)
            rules._enabled_rules_strategy = rules.rules_strategy.filter(
                rules._rule_is_enabled)

        def before_call(self, case: Any) -> None:
            access = access_of(service.name, case.method, case.path)
            node = self.recorder.cases.get(case.id)
            parent = role_of.get(node.parent_id) if node and node.parent_id else None
            role = parent if parent in access else next(r for r in PREFERENCE if r in access)
            role_of[case.id] = role
            headers = {k: v for k, v in (case.headers or {}).items()
                       if k.lower() != "authorization"}
            case.headers = {**headers, "Authorization": bearer[role]}
            # A real token, not a generated one: schemathesis then checks that the same
            # request without it, or with an invalid one, is refused.
            object.__setattr__(case, "_has_explicit_auth", True)

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            answered[(f"{case.method} {case.path}", response.status_code)] += 1

        def _add_results_to_targets(self, targets: Any, results: Any) -> None:
            super()._add_results_to_targets(
                targets, [r for r in results if r is not None and self._feeds_later_steps(r)])

        def validate_response(self, response: Any, case: Any,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            # Kept, not raised: Hypothesis would replay the sequence to shrink it, on a
            # database that has moved on since.
            try:
                case.validate_response(response, checks=STATEFUL_CHECKS,
                                       transport_kwargs=kwargs or None,
                                       recorder=self.recorder)
            except FailureGroup as exc:
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {exc}")

        def teardown(self) -> None:
            nonlocal sequences
            sequences += 1
            super().teardown()

    started = time.monotonic()
    restarts = 0
    for round_ in range(MAX_ROUNDS):
        if sequences >= SEQUENCES:
            break
        try:
            seed(SEED + round_)(AsOwners).run(settings=settings(
                max_examples=SEQUENCES - sequences, stateful_step_count=STEPS,
                deadline=None, database=None, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck)))
        except Flaky:
            # A sequence Hypothesis tried again did not draw as it did on the database
            # as it was (a list no longer empty): go on from the next seed.
            restarts += 1
    assert not failures, "\n\n".join(failures)
    reached = Counter({op: n for (op, status), n in answered.items()
                       if 200 <= status < 300 and op.split()[0] in WRITES})
    figures = ", ".join(f"{op} {n}" for op, n in sorted(reached.items()))
    STATEFUL_FIGURES[service.name] = (
        f"{answered.total()} requests in {sequences} sequences ({restarts} restarts); "
        f"writes answered 2xx: {figures or 'none'}")
    print(f"\n{service.name} stateful: {answered.total()} requests in "
          f"{time.monotonic() - started:.1f} s; writes answered 2xx: {figures}")
    every, some = REACHED[service.name]
    assert not [op for op in every if op not in reached], (every, figures)
    assert any(op in reached for op in some), (some, figures)
