"""Schemathesis' stateful phase on each service: it follows the document's links
(``servicekit.openapi.add_links``) from a created resource to what can be done with it,
each step sent by the caller the route table admits for it (the programme manager for a
call, the researcher for an application, the firm for a sandbox application...), half
the time with a body the domain accepts, so sequences can reach the write paths past
creation (an application submitted, edited, withdrawn). Which writes they reached is
printed after the run ("stateful fuzzing"): Hypothesis' search decides, so it is
reported, not asserted (the links themselves are tested in
tests/openapi/test_links.py). Every answer, errors included, is checked as in the stateless
tests, with schemathesis' stateful checks besides (a resource just created is there;
one deleted is gone; a required token is required).

``OPENAPI_STATEFUL_EXAMPLES`` (default 40 sequences) and ``OPENAPI_STATEFUL_STEPS``
(default 8 steps each) search deeper.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis.core.failures import FailureGroup
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

SEQUENCES = int(os.environ.get("OPENAPI_STATEFUL_EXAMPLES", "40"))
STEPS = int(os.environ.get("OPENAPI_STATEFUL_STEPS", "8"))
# The caller for each role: the owner of whatever the sequence creates.
OWNERS = {"program_manager": ("pm-1", "MOST"), "researcher": ("r-lead", "HUST"),
          "institution": ("off-1", "HUST"), "reviewer": ("rev-1", "VAST"),
          "sandbox_applicant": ("firm-1", "fintech-1"), "finance": ("fin-1", "MOF"),
          "auditor": ("aud-1", "SAV"), "admin": ("adm-1", "MOST")}
# Which owner acts when an operation admits several roles: the one that changes things.
# The stateless tests' checks (no server error; status, content type, headers and body
# as declared) and the stateful ones.
STATEFUL_CHECKS = [*CHECKS, ensure_resource_availability, use_after_free, ignored_auth]
PREFERENCE = ("sandbox_applicant", "program_manager", "researcher", "institution",
              "reviewer", "finance", "admin", "auditor")


# Half the bodies of the writes the security suites know a valid body for are that body
# (with the ids the link chose), so sequences get past validation to the domain.
VALID = bodies({})
VALID_SHARE = 0.5
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def owner_role(service: str, method: str, path: str) -> str:
    template = re.sub(r"\{[^}]+\}", "{}", f"/{service}{path}")
    for m, t, access in route_table.ROUTES:
        if m == method and re.sub(r"\{[^}]+\}", "{}", t) == template:
            if isinstance(access, tuple):
                return next(r for r in PREFERENCE if r in access)
            return "admin"
    raise AssertionError(f"{method} /{service}{path} is not in the route table")


def test_the_stateful_phase_follows_links_to_the_writes(service, running, tmp_path: Path):
    app, _ = running
    issuer = DevIssuer(tmp_path / "keys")
    bearer = {role: "Bearer " + issuer.issue(sub, name=sub, org=org, roles=[role])
              for role, (sub, org) in OWNERS.items()}
    # Loaded from the app (not a dict): every request, the checks' probes too, goes to it.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    answered: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    machine = schema.as_state_machine()
    class AsOwners(machine):  # type: ignore[misc, valid-type]
        def before_call(self, case: Any) -> None:
            valid = VALID.get((case.method, f"/{service.name}{case.path}"))
            if valid is not None and isinstance(case.body, dict) and \
                    random.Random(case.id).random() < VALID_SHARE:
                # A body the domain accepts, keeping the ids a link put in the body.
                linked = {k: v for k, v in case.body.items()
                          if k.endswith("_id") and isinstance(v, str) and UUID.fullmatch(v)}
                case.body = {**valid, **linked}
            role = owner_role(service.name, case.method, case.path)
            headers = {k: v for k, v in (case.headers or {}).items()
                       if k.lower() != "authorization"}
            case.headers = {**headers, "Authorization": bearer[role]}
            # A real token, not a generated one: schemathesis then checks that the same
            # request without it, or with an invalid one, is refused.
            object.__setattr__(case, "_has_explicit_auth", True)

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            answered[(f"{case.method} {case.path}", response.status_code)] += 1

        def validate_response(self, response: Any, case: Any,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            # Kept, not raised: Hypothesis would replay the sequence to shrink it, on a
            # database that has moved on since (see below).
            try:
                case.validate_response(response, checks=STATEFUL_CHECKS,
                                       transport_kwargs=kwargs or None,
                                       recorder=self.recorder)
            except FailureGroup as exc:
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {exc}")

    started = time.monotonic()
    ended = "its budget"
    try:
        AsOwners.run(settings=settings(
            max_examples=SEQUENCES, stateful_step_count=STEPS, deadline=None, database=None,
            derandomize=True,  # the same sequences each run, on a fresh database
            phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    except Flaky:
        # The database keeps what earlier sequences did, so a sequence Hypothesis tries
        # again may not draw as it did (a list no longer empty): exploration ends there;
        # every request made so far was checked.
        ended = "a sequence that could not be replayed on the changed database"
    assert not failures, "\n\n".join(failures)
    succeeded = {op for (op, status), _ in answered.items() if 200 <= status < 300}
    # A write on an existing resource can only have been reached by following a link:
    # the ids it names were never made up.
    linked_writes = sorted(op for op in succeeded
                           if op.split()[0] in ("POST", "PUT") and "{" in op)
    STATEFUL_FIGURES[service.name] = (f"{answered.total()} requests, ended by {ended}; "
                             f"{len(succeeded)} operations answered 2xx; writes on a linked "
                             f"resource: {', '.join(linked_writes) or 'none'}")
    print(f"\n{service.name} stateful: {answered.total()} requests in "
          f"{time.monotonic() - started:.1f} s (ended by {ended}), {len(succeeded)} "
          f"operations answered 2xx, writes on a linked resource: {linked_writes}")


