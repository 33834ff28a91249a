"""A small world for the security suites: the three services on PostgreSQL, the gateway
in front of them, one caller per role and objects each of them owns.

Everything runs in-process on one event loop: each service is called directly (its own
ASGI app) and through the gateway (the edge, the route table and the proxy, whose
upstreams are the same apps). The services keep their own databases; the world reads
them only to prove that a refused request stored nothing.

The cast: one caller per platform role, each the natural owner of the seeded objects
(the researcher leads the application and authors the asset, the institution hosts
them, the firm owns the sandbox application...), and outsiders for object-level cases.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from psycopg import sql
from starlette.types import ASGIApp, Receive, Scope, Send

import grants.app
import ipshare.app
import sandbox.app
from devkit.jwt_attacks import revocation_file
from devkit.testing import DatabaseFactory, Tokens
from gateway import route_table
from gateway.app import build_gateway
from gateway.proxy import ProxyApp, Upstream
from gateway.settings import GatewaySettings
from grants.settings import GrantsSettings
from ipshare.settings import IpshareSettings
from sandbox.settings import SandboxSettings
from servicekit.clock import FixedClock, business_date

SERVICES = ("grants", "sandbox", "ipshare")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 09:00 in Hanoi
TODAY = business_date(NOW)
AGENCY, INSTITUTION, FIRM_ORG = "MOST", "HUST", "fintech-1"
NO_LIMITS = {f"rate_limit_{c}_per_{p}": "" for c in ("read", "write")
             for p in ("subject", "address")}


@dataclass(frozen=True)
class Caller:
    sub: str
    roles: tuple[str, ...]
    org: str


# One caller per role: the owners of everything seeded.
CAST: dict[str, Caller] = {
    "researcher": Caller("r-lead", ("researcher",), INSTITUTION),
    "institution": Caller("off-1", ("institution",), INSTITUTION),
    "program_manager": Caller("pm-1", ("program_manager",), AGENCY),
    "reviewer": Caller("rev-1", ("reviewer",), "VAST"),
    "sandbox_applicant": Caller("firm-1", ("sandbox_applicant",), FIRM_ORG),
    "finance": Caller("fin-1", ("finance",), "MOF"),
    "auditor": Caller("aud-1", ("auditor",), "SAV"),
    "admin": Caller("adm-1", ("admin",), AGENCY),
}
# Everyone else: team members, outsiders of the same role, a conflicted reviewer.
OTHERS: dict[str, Caller] = {
    "member": Caller("r-member", ("researcher",), INSTITUTION),
    "outsider": Caller("r-out", ("researcher",), "VNU"),
    "other_office": Caller("off-2", ("institution",), "VNU"),
    "other_pm": Caller("pm-2", ("program_manager",), "DOST-HN"),
    "rev_2": Caller("rev-2", ("reviewer",), "NAFOSTED"),
    "rev_3": Caller("rev-3", ("reviewer",), "SBV"),
    "rev_hust": Caller("rev-hust", ("reviewer",), INSTITUTION),
    "rev_firm": Caller("rev-firm", ("reviewer",), FIRM_ORG),
    "other_firm": Caller("firm-2", ("sandbox_applicant",), "fintech-2"),
}


# --- the bodies of every write, valid for the seeded objects --------------------------

def call_body(**change: Any) -> dict[str, Any]:
    return {"title": "Mekong salinity", "description": "sensors", "budget_vnd": 9_000_000_000,
            "max_award_vnd": 3_000_000_000, "opens_at": "2026-01-01T00:00:00Z",
            "closes_at": "2099-01-01T00:00:00Z", "min_reviews": 2, **change}


def application_body(call_id: str, **change: Any) -> dict[str, Any]:
    return {"call_id": call_id, "title": "Rice yield forecasting", "abstract": "ML",
            "institution_id": INSTITUTION, "requested_vnd": 1_000_000_000,
            "risk_level": "high",
            "team": [{"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                      "contribution_bp": 7000},
                     {"researcher_id": "r-member", "name": "Member", "role": "member",
                      "contribution_bp": 3000}],
            "milestones": [{"title": "M1", "deliverable": "D1", "verification": "demo",
                            "due_date": "2027-03-15", "tranche_bp": 5000},
                           {"title": "M2", "deliverable": "D2", "verification": "dataset",
                            "due_date": "2027-09-15", "tranche_bp": 5000}], **change}


REVIEW = {"scores": {"novelty": 5, "feasibility": 4}, "recommendation": "fund",
          "comment": "solid", "conflict_of_interest": False}
REASON = {"reason": "checked with the file"}
CRITERIA = ("in_scope", "genuine_innovation", "consumer_benefit", "need_for_sandbox",
            "readiness", "risk_controls")
ASSESSMENT = {"criteria": {c: {"pass": True, "note": "ok"} for c in CRITERIA},
              "summary": "fit for a pilot"}
PROPOSAL: dict[str, Any] = {
    "firm_name": "Công ty Cổ phần Tài chính Số", "enterprise_code": "0101234567",
    "sector": "fintech", "technology": "P2P lending platform",
    "description": "Peer-to-peer loans to small businesses",
    "exemptions": [{"provision": "p2p_lending", "justification": "no licence exists yet"}],
    "scope": {"regions": ["HN", "HCM"], "max_participants": 5000,
              "max_transaction_vnd": 50_000_000},
    "requested_months": 18, "safeguards": "escrow accounts",
    "risk_assessment": "credit and fraud risks", "exit_plan": "wind down over three months",
}


def approval(today: date = TODAY) -> dict[str, Any]:
    return {"decision": "approve", "conditions": ["monthly escrow audit"],
            "limits": {"regions": ["HN"], "max_participants": 1000,
                       "max_transaction_vnd": 10_000_000},
            "starts_on": today.isoformat(),  # the pilot is active at once
            "ends_on": (today + timedelta(days=365)).isoformat()}


def asset_body(**change: Any) -> dict[str, Any]:
    return {"kind": "patent", "title": "Salinity sensor", "source_grant_id": None,
            "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
                        {"researcher_id": "r-member", "name": "Member",
                         "contribution_bp": 3000}], **change}


AGREEMENT = {"kind": "licence", "counterparty": "Viettel", "signed_on": "2026-11-01",
             "terms": "5% royalty"}


def income_body(reference: str | None = None) -> dict[str, Any]:
    return {"period": "2026-Q4", "gross_vnd": 1_000_000_007, "costs_vnd": 0,
            "reference": reference or f"INV-{uuid.uuid4().hex[:8]}"}


def bodies(ids: dict[str, str]) -> dict[tuple[str, str], Any]:
    """A valid body for every write the route table names (service-relative paths),
    about the seeded objects ``ids``. Operations missing here are sent ``{}``."""
    later = (TODAY + timedelta(days=400)).isoformat()
    return {
        ("POST", "/grants/v1/calls"): call_body(),
        ("PUT", "/grants/v1/calls/{call_id}"): call_body(title="Mekong salinity, edited"),
        ("POST", "/grants/v1/calls/{call_id}/cancel"): REASON,
        ("POST", "/grants/v1/applications"): application_body(ids.get("call_id", "")),
        ("PUT", "/grants/v1/applications/{application_id}"):
            application_body(ids.get("call_id", ""), title="Rice yields, edited"),
        ("POST", "/grants/v1/applications/{application_id}/withdraw"): REASON,
        ("POST", "/grants/v1/applications/{application_id}/reviews"): REVIEW,
        ("POST", "/grants/v1/applications/{application_id}/assignments"): {
            "reviewer_id": "rev-1", "reviewer_org": "VAST", "name": "Reviewer One",
            "due_on": later},
        ("POST", "/grants/v1/applications/{application_id}/decision"): {
            "decision": "reject", "reason": "out of scope"},
        ("POST", "/grants/v1/assignments/{assignment_id}/declaration"): {
            "conflict_of_interest": False, "statement": "no ties to the applicants"},
        ("POST", "/grants/v1/assignments/{assignment_id}/decline"): REASON,
        ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/report"): {
            "summary": "done", "evidence": [{"kind": "url", "ref": "https://example.org/r"}]},
        ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/reject"): REASON,
        ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/reschedule"): {
            "due_date": later, "reason": "field season moved"},
        ("POST", "/grants/v1/grants/{grant_id}/results"): {
            "kind": "patent", "title": "Sensor",
            "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 10000}]},
        ("POST", "/grants/v1/grants/{grant_id}/breaches"): {
            "kind": "other", "description": "late reporting"},
        ("POST", "/grants/v1/grants/{grant_id}/close"): {
            "outcome": "completed", "justification": "all delivered"},
        ("POST", "/sandbox/v1/applications"): PROPOSAL,
        ("PUT", "/sandbox/v1/applications/{application_id}"): {**PROPOSAL,
                                                               "technology": "P2P lending v2"},
        ("POST", "/sandbox/v1/applications/{application_id}/withdraw"): REASON,
        ("POST", "/sandbox/v1/applications/{application_id}/assessments"): ASSESSMENT,
        ("POST", "/sandbox/v1/applications/{application_id}/request-changes"): {
            "reasons": ["name the escrow bank"]},
        ("POST", "/sandbox/v1/applications/{application_id}/decision"): {
            "decision": "reject", "reasons": ["not innovative"]},
        ("POST", "/sandbox/v1/pilots/{pilot_id}/reports"): {
            "period": f"{TODAY.year}-Q{(TODAY.month - 1) // 3 + 1}", "participants": 10,
            "transactions_vnd": 1_000_000, "kpis": {"loans": 3}, "complaints": 0},
        ("POST", "/sandbox/v1/pilots/{pilot_id}/incidents"): {
            "severity": "low", "description": "a delayed payout"},
        ("POST", "/sandbox/v1/pilots/{pilot_id}/suspend"): REASON,
        ("POST", "/sandbox/v1/pilots/{pilot_id}/resume"): REASON,
        ("POST", "/sandbox/v1/pilots/{pilot_id}/terminate"): REASON,
        ("POST", "/sandbox/v1/pilots/{pilot_id}/extend"): {"ends_on": later,
                                                           "reason": "more data"},
        ("POST", "/sandbox/v1/pilots/{pilot_id}/adjust"): {
            "conditions": ["weekly escrow audit"], "reason": "tighter control"},
        ("POST", "/sandbox/v1/pilots/{pilot_id}/exit"): {
            "outcome": "graduate", "final_report": "it worked", "lessons": "many",
            "recommendations": ["licence P2P lending"]},
        ("POST", "/sandbox/v1/pilots/{pilot_id}/exit/accept"): {"note": "accepted"},
        ("POST", "/ipshare/v1/assets"): asset_body(),
        ("POST", "/ipshare/v1/assets/{asset_id}/agreements"): AGREEMENT,
        ("POST", "/ipshare/v1/agreements/{agreement_id}/terminate"): REASON,
        ("POST", "/ipshare/v1/agreements/{agreement_id}/income"): income_body("INV-MATRIX"),
        ("POST", "/ipshare/v1/distributions/{distribution_id}/reverse"): REASON,
        ("PUT", "/ipshare/v1/institutions/{institution_id}/policy"): {
            "researcher_share_bp": 3000, "basis": "gross"},
    }


# --- the world ------------------------------------------------------------------------

class Reached:
    """ASGI wrapper that remembers every request reaching the service behind it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@dataclass
class Service:
    name: str
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    reached: Reached


@dataclass
class World:
    services: dict[str, Service]
    gateway: httpx.AsyncClient
    tokens: Tokens
    ids: dict[str, str] = field(default_factory=dict)
    _tokens: dict[Caller, str] = field(default_factory=dict)

    def headers(self, who: Caller | None, **extra: str) -> dict[str, str]:
        """``who``'s bearer token (one per caller, as a client keeps it) and ``extra``."""
        if who is None:
            return dict(extra)
        if who not in self._tokens:
            self._tokens[who] = self.tokens(who.sub, *who.roles, org=who.org)
        return {"Authorization": f"Bearer {self._tokens[who]}", **extra}

    def client(self, service: str, via_gateway: bool) -> tuple[httpx.AsyncClient, str]:
        """The client and path prefix reaching ``service`` directly or at the edge."""
        if via_gateway:
            return self.gateway, f"/{service}"
        return self.services[service].client, ""

    async def call(self, who: Caller | None, method: str, path: str, *,
                   body: Any = None, via_gateway: bool = False, **kw: Any) -> httpx.Response:
        """``path`` with its service prefix (``/grants/v1/calls``), as the table names it."""
        service, rest = split(path)
        client, prefix = self.client(service, via_gateway)
        headers = self.headers(who) | kw.pop("headers", {})
        return await client.request(method, prefix + rest, headers=headers,
                                    json=body, **kw)

    async def ok(self, who: Caller, method: str, path: str, body: Any = None,
                 status: int | tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        response = await self.call(who, method, path, body=body)
        expected = status if isinstance(status, tuple) else (status,)
        assert response.status_code in expected, (method, path, response.status_code,
                                                   response.text)
        return response.json()

    def operations(self, service: str) -> set[tuple[str, str]]:
        """``(method, /service/template)`` of every operation the service documents."""
        doc = self.services[service].app.openapi()
        return {(m.upper(), f"/{service}{p}") for p, item in doc["paths"].items()
                for m in item if m in ("get", "put", "post", "delete", "patch")}

    def concrete(self, template: str) -> tuple[str, list[str]]:
        """``template`` with the seeded ids; the parameters it had no id for."""
        unknown: list[str] = []
        ids = ids_for(split(template)[0], self.ids)

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in ids:
                unknown.append(name)
                return str(uuid.uuid4())
            return ids[name]

        return re.sub(r"\{([^}]+)\}", value, template), unknown

    def fingerprint(self, service: str) -> dict[str, str]:
        """Every table of ``service``'s database, as a digest of its rows."""
        return fingerprint(self.services[service].url)


def split(path: str) -> tuple[str, str]:
    _, service, rest = path.split("/", 2)
    return service, "/" + rest


def fingerprint(url: str) -> dict[str, str]:
    """``{table: md5 of its rows}`` for every table of the database at ``url``."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        parts = [sql.SQL("SELECT {name}, md5(coalesce(string_agg(t::text, '|' ORDER BY "
                         "t::text), '')) FROM {table} t").format(
                     name=sql.Literal(t), table=sql.Identifier(t)) for t in tables]
        rows = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    return dict(rows)


def table_roles(path: str, method: str) -> str | tuple[str, ...] | None:
    """The route table's access for ``method path`` (a template with its prefix)."""
    for m, template, access in route_table.ROUTES:
        if m == method and template == path:
            return access
    return None


FACTORIES: dict[str, tuple[Callable[..., FastAPI], type, Callable[[str], None]]] = {
    "grants": (grants.app.create_app, GrantsSettings, grants.app.migrate),
    "sandbox": (sandbox.app.create_app, SandboxSettings, sandbox.app.migrate),
    "ipshare": (ipshare.app.create_app, IpshareSettings, ipshare.app.migrate),
}


@asynccontextmanager
async def running_world(databases: DatabaseFactory, key_dir: Path,
                        **service_settings: Any) -> AsyncIterator[World]:
    """The three services on fresh databases and the gateway, their lifespans run; all
    of them read the revocation list ``devkit.jwt_attacks`` expects."""
    clock = FixedClock(NOW)
    revoked = revocation_file(key_dir.parent / f"revoked-{uuid.uuid4().hex[:8]}.json")
    service_settings.setdefault("revocation_file", revoked)
    async with AsyncExitStack() as stack:
        services: dict[str, Service] = {}
        for name, (create, settings_type, migrate) in FACTORIES.items():
            url = databases.fresh(name, migrate)
            app = create(settings_type(database_url=url, dev_key_dir=key_dir,
                                       migrate_on_start=False, **service_settings),
                         clock=clock, background=False)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                       base_url=f"http://{name}")
            stack.push_async_callback(client.aclose)
            services[name] = Service(name, app, url, client, Reached(app))
        settings = GatewaySettings(dev_key_dir=key_dir, revocation_file=revoked, **NO_LIMITS)
        upstreams = {name: Upstream.from_settings(
            name, f"http://{name}", settings, httpx.ASGITransport(app=s.reached))
            for name, s in services.items()}
        gateway = build_gateway(
            settings, mounts={n: ProxyApp(u) for n, u in upstreams.items()},
            probes={n: u.client(settings.ready_timeout_seconds) for n, u in upstreams.items()})
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        edge = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway),
                                 base_url="http://gateway")
        stack.push_async_callback(edge.aclose)
        yield World(services, edge, Tokens(key_dir))


def gateway_app(databases: DatabaseFactory, key_dir: Path) -> FastAPI:
    """The gateway and, behind its proxy, the three services on fresh databases, as one
    ASGI app whose lifespan runs theirs (for a client that runs one app, such as
    schemathesis')."""
    services = {}
    for name, (create, settings_type, migrate) in FACTORIES.items():
        services[name] = create(settings_type(
            database_url=databases.fresh(name, migrate), dev_key_dir=key_dir,
            migrate_on_start=False), clock=FixedClock(NOW), background=False)
    settings = GatewaySettings(dev_key_dir=key_dir, **NO_LIMITS)
    upstreams = {name: Upstream.from_settings(name, f"http://{name}", settings,
                                              httpx.ASGITransport(app=app))
                 for name, app in services.items()}

    @asynccontextmanager
    async def run_services(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for app in services.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    gateway = build_gateway(
        settings, mounts={n: ProxyApp(u) for n, u in upstreams.items()},
        probes={n: u.client(settings.ready_timeout_seconds) for n, u in upstreams.items()},
        lifespan=run_services)
    gateway.state.services = services
    return gateway


async def seed(world: World) -> dict[str, str]:
    """Objects owned by the cast, through the services' own APIs; their ids by the name
    of the path parameter that takes them."""
    c = CAST
    ids: dict[str, str] = {"institution_id": INSTITUTION, "payee_id": c["researcher"].sub}
    # grants: an open call; a draft, a submitted application; a grant from a third.
    call = await world.ok(c["program_manager"], "POST", "/grants/v1/calls", call_body())
    await world.ok(c["program_manager"], "POST", f"/grants/v1/calls/{call['id']}/open")
    ids["call_id"] = call["id"]
    apps = [await world.ok(c["researcher"], "POST", "/grants/v1/applications",
                           application_body(call["id"])) for _ in range(3)]
    for app in apps[1:]:
        await world.ok(c["researcher"], "POST",
                       f"/grants/v1/applications/{app['id']}/submit")
    for reviewer in (OTHERS["rev_2"], OTHERS["rev_3"]):
        await world.ok(reviewer, "POST", f"/grants/v1/applications/{apps[2]['id']}/reviews",
                       REVIEW)
    decided = await world.ok(c["program_manager"], "POST",
                             f"/grants/v1/applications/{apps[2]['id']}/decision",
                             {"decision": "approve", "awarded_vnd": 1_000_000_000})
    grant = await world.ok(c["program_manager"], "GET",
                           f"/grants/v1/grants/{decided['grant_id']}")
    ids.update(draft_application_id=apps[0]["id"], application_id=apps[1]["id"],
               grant_id=grant["id"], milestone_id=grant["milestones"][0]["id"])
    assign = ("POST", "/grants/v1/applications/{application_id}/assignments")
    if assign in world.operations("grants"):  # the reviewer's, in a call of assigned review
        assigned = await world.ok(c["program_manager"], "POST", "/grants/v1/calls",
                                  call_body(review_mode="assigned"))
        await world.ok(c["program_manager"], "POST",
                       f"/grants/v1/calls/{assigned['id']}/open")
        app = await world.ok(c["researcher"], "POST", "/grants/v1/applications",
                             application_body(assigned["id"]))
        await world.ok(c["researcher"], "POST", f"/grants/v1/applications/{app['id']}/submit")
        assignment = await world.ok(c["program_manager"], "POST",
                                    f"/grants/v1/applications/{app['id']}/assignments",
                                    bodies(ids)[assign])
        ids["assignment_id"] = assignment["id"]
    # sandbox: a submitted application; a pilot from another, assessed and approved.
    firm = c["sandbox_applicant"]
    drafts = [await world.ok(firm, "POST", "/sandbox/v1/applications", PROPOSAL)
              for _ in range(2)]
    for app in drafts:
        await world.ok(firm, "POST", f"/sandbox/v1/applications/{app['id']}/submit")
    for reviewer in (OTHERS["rev_2"], OTHERS["rev_3"]):
        await world.ok(reviewer, "POST",
                       f"/sandbox/v1/applications/{drafts[1]['id']}/assessments", ASSESSMENT)
    approved = await world.ok(c["reviewer"], "POST",
                              f"/sandbox/v1/applications/{drafts[1]['id']}/decision",
                              approval())
    ids["sandbox_application_id"] = drafts[0]["id"]
    ids["pilot_id"] = approved["pilot_id"]
    # ipshare: the institution's policy, an asset, a licence and one income on it.
    office = c["institution"]
    await world.ok(office, "PUT", f"/ipshare/v1/institutions/{INSTITUTION}/policy",
                   {"researcher_share_bp": 3000, "basis": "gross"})
    asset = await world.ok(office, "POST", "/ipshare/v1/assets", asset_body())
    agreement = await world.ok(office, "POST", f"/ipshare/v1/assets/{asset['id']}/agreements",
                               AGREEMENT)
    income = await world.ok(office, "POST",
                            f"/ipshare/v1/agreements/{agreement['id']}/income",
                            income_body("INV-SEED"))
    ids.update(asset_id=asset["id"], agreement_id=agreement["id"],
               distribution_id=income["id"])
    return ids


def ids_for(service: str, ids: dict[str, str]) -> dict[str, str]:
    """The ids by parameter name as ``service``'s paths take them (``application_id``
    names a grants application in grants and a sandbox one in the sandbox)."""
    out = dict(ids)
    if service == "sandbox":
        out["application_id"] = ids["sandbox_application_id"]
    return out
