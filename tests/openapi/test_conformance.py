"""Schemathesis against each service in-process on PostgreSQL, as a client generated
from the document would call it: every answer, errors included, has a declared status,
content type, headers and schema, and none is a server error.

Callers hold dev tokens of every role (and none, and a bad one); half the time a path
parameter names a resource seeded through the API, so requests reach past the 404s, and
a POST repeats an Idempotency-Key, so replays are checked too.
Schemathesis generates valid requests (positive) and invalid ones (negative).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from servicekit.devtokens import DevIssuer

pytestmark = pytest.mark.postgres

# Requests per service, spread over its operations in both generation modes (5 to 15
# examples each): about 20 s for grants on an idle machine, and bounded as routes are
# added. OPENAPI_EXAMPLES=80 searches deeper.
BUDGET = 1200


def examples_per_operation(operations: int) -> int:
    if "OPENAPI_EXAMPLES" in os.environ:
        return int(os.environ["OPENAPI_EXAMPLES"])
    return max(5, min(15, BUDGET // (2 * max(operations, 1))))


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
AGENCY, INSTITUTION = "MOST", "HUST"
# sub, roles, org: one caller per role (two programme managers: one without an org).
CAST = [("pm-1", ["program_manager"], AGENCY), ("pm-x", ["program_manager"], ""),
        ("r-lead", ["researcher"], INSTITUTION), ("r-member", ["researcher"], INSTITUTION),
        ("off-1", ["institution"], INSTITUTION), ("off-2", ["institution"], "VNU"),
        ("rev-1", ["reviewer"], "VAST"), ("rev-2", ["reviewer"], "NAFOSTED"),
        ("fin-1", ["finance"], "MOF"), ("aud-1", ["auditor"], "SAV"),
        ("adm-1", ["admin"], AGENCY), ("firm-1", ["sandbox_applicant"], "0101234567")]


class Api:
    """Requests to the app under test, as the seeding's callers."""

    def __init__(self, client: Any, bearer: dict[str, str], document: dict[str, Any]) -> None:
        self.client, self.bearer, self.document = client, bearer, document

    def example(self, schema: str) -> Any:
        return self.document["components"]["schemas"][schema]["examples"][0]

    def __call__(self, who: str, method: str, path: str, json: Any = None) -> dict[str, Any]:
        r = self.client.request(method, path, json=json,
                                headers={"Authorization": self.bearer[who]})
        assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
        return r.json()


def seed_grants(api: Api) -> dict[str, list[str]]:
    """An open call, a draft application, a submitted one and a grant from a third."""
    call = api("pm-1", "POST", "/v1/calls", {
        "title": "Rice", "budget_vnd": 9_000_000_000, "max_award_vnd": 3_000_000_000,
        "opens_at": "2026-01-01T00:00:00Z", "closes_at": "2099-01-01T00:00:00Z",
        "min_reviews": 2})
    api("pm-1", "POST", f"/v1/calls/{call['id']}/open")
    body = {"call_id": call["id"], "title": "Yields", "institution_id": INSTITUTION,
            "requested_vnd": 1_000_000_000, "risk_level": "high",
            "team": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
                     {"researcher_id": "r-member", "name": "Member",
                      "contribution_bp": 3000}],
            "milestones": [{"title": f"M{i}", "deliverable": "D", "due_date": "2030-01-15",
                            "tranche_bp": bp} for i, bp in enumerate([5000, 5000])]}
    apps = [api("r-lead", "POST", "/v1/applications", body) for _ in range(3)]
    for app in apps[1:]:
        api("r-lead", "POST", f"/v1/applications/{app['id']}/submit")
    for reviewer in ("rev-1", "rev-2"):
        api(reviewer, "POST", f"/v1/applications/{apps[2]['id']}/reviews", {
            "scores": {"novelty": 5}, "recommendation": "fund", "comment": "ok",
            "conflict_of_interest": False})
    decided = api("pm-1", "POST", f"/v1/applications/{apps[2]['id']}/decision",
                  {"decision": "approve", "awarded_vnd": 1_000_000_000})
    grant = api("pm-1", "GET", f"/v1/grants/{decided['grant_id']}")
    return {"call_id": [call["id"]], "application_id": [a["id"] for a in apps],
            "grant_id": [grant["id"]],
            "milestone_id": [m["id"] for m in grant["milestones"]],
            "institution_id": [INSTITUTION]}


def seed_ipshare(api: Api) -> dict[str, list[str]]:
    """A policy, an asset, an agreement and one income posted on it."""
    api("off-1", "PUT", f"/v1/institutions/{INSTITUTION}/policy",
        {"researcher_share_bp": 3000, "basis": "gross"})
    asset = api("off-1", "POST", "/v1/assets", {
        "kind": "patent", "title": "Sensor", "source_grant_id": None,
        "authors": [{"researcher_id": "r-lead", "name": "A", "contribution_bp": 10000}]})
    agreement = api("off-1", "POST", f"/v1/assets/{asset['id']}/agreements", {
        "kind": "licence", "counterparty": "Viettel", "signed_on": "2026-11-01",
        "terms": "5%"})
    income = api("off-1", "POST", f"/v1/agreements/{agreement['id']}/income", {
        "period": "2026-Q4", "gross_vnd": 1_000_000_007, "costs_vnd": 0,
        "reference": "INV-1"})
    return {"asset_id": [asset["id"]], "agreement_id": [agreement["id"]],
            "distribution_id": [income["id"]], "institution_id": [INSTITUTION],
            "payee_id": ["r-lead", INSTITUTION]}


def seed_sandbox(api: Api) -> dict[str, list[str]]:
    """A draft application and a submitted one, from the documented example."""
    example = api.example("ApplicationCreate")
    apps = [api("firm-1", "POST", "/v1/applications", example) for _ in range(2)]
    api("firm-1", "POST", f"/v1/applications/{apps[1]['id']}/submit")
    return {"application_id": [a["id"] for a in apps]}


SEEDS: dict[str, Callable[[Api], dict[str, list[str]]]] = {
    "grants": seed_grants, "ipshare": seed_ipshare, "sandbox": seed_sandbox}


def test_every_answer_is_declared_and_none_is_a_server_error(service, running, tmp_path):
    app, client = running
    issuer = DevIssuer(tmp_path / "keys")
    bearer = {sub: "Bearer " + issuer.issue(sub, name=sub, org=org, roles=roles)
              for sub, roles, org in CAST}
    seed = SEEDS.get(service.name)
    known = seed(Api(client, bearer, app.openapi())) if seed else {}
    # Hypothesis draws the first elements most: the role tokens, then none and a bad one.
    callers = [*bearer.values(), None, "Bearer not-a-token"]
    schema = schemathesis.openapi.from_dict(app.openapi())

    failures: list[str] = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    examples = examples_per_operation(len(operations))
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                exercise(operation, mode, examples, client, callers, known, statuses)
            except Unsatisfiable:
                assert not mode.is_positive, operation.label  # nothing there to make invalid
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    print(f"{service.name}: {len(operations)} operations, {examples} examples each, "
          f"{statuses.total()} requests in {time.monotonic() - started:.1f} s, "
          f"by status {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)


def exercise(operation: Any, mode: GenerationMode, examples: int, client: Any,
             callers: list[str | None], known: dict[str, list[str]],
             statuses: Counter[int]) -> None:
    """``examples`` requests to ``operation``; raises on the first that fails a check."""
    security = operation.definition.raw.get("security", [])

    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), caller=st.sampled_from(callers),
           data=st.data())
    def call(case: Any, caller: str | None, data: st.DataObject) -> None:
        for name in case.path_parameters or {}:
            if known.get(name) and data.draw(st.booleans()):
                case.path_parameters[name] = data.draw(st.sampled_from(known[name]))
        # The caller's token in place of one schemathesis made up (or left out, when
        # negating the security): set on the case, the one place both modes send.
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        if case.method == "POST" and data.draw(st.booleans()):
            headers["Idempotency-Key"] = "same-key"  # replays, or a 422 for another body
        case.headers = {**headers, "Authorization": caller} if caller else headers
        response = case.call(session=client)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        # (An invalid request may be refused before its token is looked at.)
        if caller is None and security == [{"bearerAuth": []}] and mode.is_positive:
            assert response.status_code == 401, "a required token is not required"
        if not security:
            assert response.status_code != 401, "a public call asks for a token"

    call()
