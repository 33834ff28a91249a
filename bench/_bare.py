"""The baseline of ``reads.py``: a bare FastAPI app on psycopg, no kit.

``/health`` as FastAPI's documentation writes it, and the two reads the services serve
(``GET /v1/distributions/{id}`` with its lines, ``GET /v1/grants/{id}`` with its team,
milestones and breaches), each from the same rows of the same databases, as plain
queries on an ``AsyncConnectionPool`` and a dict answered by FastAPI's default
``JSONResponse``. No token, no access rule, no middleware, no telemetry: what the
framework and the driver cost on their own. The JSON is the same as the service's
(``reads.py`` checks it before measuring).

Environment: ``BARE_IPSHARE_DSN``, ``BARE_GRANTS_DSN`` (libpq URLs).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI, HTTPException
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

HANOI = timezone(timedelta(hours=7))  # the business day (Vietnam keeps no summer time)

DIST = """SELECT id, agreement_id, asset_id, institution_id, source_grant_id, reference,
    period, gross_vnd, costs_vnd, basis_vnd, researcher_pool_vnd, institution_vnd,
    researcher_share_bp, basis, policy_version, in_kind, status, reversal_reason,
    created_at, reversed_at FROM distributions WHERE id = %s"""
LINES = """SELECT payee_id, payee_kind, amount_vnd FROM distribution_lines
    WHERE distribution_id = %s ORDER BY seq"""
GRANT = """SELECT g.*, a.title FROM grants g JOIN applications a ON a.id = g.application_id
    WHERE g.id = %s"""
TEAM = """SELECT researcher_id, name, role, contribution_bp FROM application_team
    WHERE application_id = %s ORDER BY position"""
MILESTONES = """SELECT id, seq, title, deliverable, verification, tranche_bp, tranche_vnd,
    released_vnd, cancelled_vnd, completion_bp, due_date, status, report, reject_reason
    FROM milestones WHERE grant_id = %s ORDER BY seq"""
BREACHES = """SELECT id, grant_id, kind, description, recorded_by, created_at
    FROM breaches WHERE grant_id = %s ORDER BY created_at"""


def _time(value: datetime | None) -> str | None:
    """As pydantic writes an aware UTC datetime."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _decision(name: str, g: dict[str, Any]) -> dict[str, Any]:
    """A decision's number and year, both or neither."""
    number, year = g[f"{name}_no"], g[f"{name}_year"]
    known = bool(number and year)
    return {f"{name}_no": number if known else None, f"{name}_year": year if known else None}


def create_app() -> FastAPI:
    pools: dict[str, AsyncConnectionPool] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for name in ("ipshare", "grants"):
            pool = AsyncConnectionPool(os.environ[f"BARE_{name.upper()}_DSN"], min_size=4,
                                       max_size=20, open=False,
                                       kwargs={"autocommit": True, "row_factory": dict_row})
            await pool.open(wait=True)
            pools[name] = pool
        yield
        for pool in pools.values():
            await pool.close()

    app = FastAPI(title="bare", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "bare"}

    @app.get("/v1/distributions/{distribution_id}")
    async def distribution(distribution_id: str) -> Any:
        async with pools["ipshare"].connection() as conn:
            d = await (await conn.execute(DIST, (distribution_id,))).fetchone()
            if d is None:
                raise HTTPException(404)
            lines = await (await conn.execute(LINES, (distribution_id,))).fetchall()
        return {
            "id": d["id"], "agreement_id": d["agreement_id"], "asset_id": d["asset_id"],
            "institution_id": d["institution_id"], "source_grant_id": d["source_grant_id"],
            "reference": d["reference"], "period": d["period"],
            "gross_vnd": d["gross_vnd"], "costs_vnd": d["costs_vnd"],
            "basis_vnd": d["basis_vnd"], "researcher_pool_vnd": d["researcher_pool_vnd"],
            "institution_vnd": d["institution_vnd"],
            "policy": {"researcher_share_bp": d["researcher_share_bp"], "basis": d["basis"],
                       "version": d["policy_version"]},
            "lines": lines, "in_kind": d["in_kind"], "status": d["status"],
            "reversal_reason": d["reversal_reason"], "created_at": _time(d["created_at"]),
            "reversed_at": _time(d["reversed_at"]),
        }

    @app.get("/v1/grants/{grant_id}")
    async def grant(grant_id: str) -> Any:
        async with pools["grants"].connection() as conn:
            g = await (await conn.execute(GRANT, (grant_id,))).fetchone()
            if g is None:
                raise HTTPException(404)
            team = await (await conn.execute(TEAM, (g["application_id"],))).fetchall()
            milestones = await (await conn.execute(MILESTONES, (grant_id,))).fetchall()
            breaches = await (await conn.execute(BREACHES, (grant_id,))).fetchall()
        today = datetime.now(HANOI).date()
        for m in milestones:
            m["overdue"] = m["status"] in ("pending", "rejected") and m["due_date"] < today
            m["due_date"] = date.isoformat(m["due_date"])
        for b in breaches:
            b["created_at"] = _time(b["created_at"])
        return {
            "id": g["id"], "application_id": g["application_id"], "call_id": g["call_id"],
            "agency_id": g["agency_id"], "institution_id": g["institution_id"],
            "title": g["title"], "awarded_vnd": g["awarded_vnd"],
            "disbursed_vnd": sum(m["released_vnd"] for m in milestones),
            "cancelled_vnd": sum(m["cancelled_vnd"] for m in milestones),
            "refund_due_vnd": g["refund_due_vnd"], "status": g["status"],
            "outcome": g["outcome"], "liability": g["liability"],
            "justification": g["justification"], "breach": g["breach_stated"],
            "procedures_followed": g["procedures_followed"],
            **_decision("award_decision", g), **_decision("decision", g), "team": team,
            "milestones": milestones, "breaches": breaches,
            "created_at": _time(g["created_at"]), "updated_at": _time(g["updated_at"]),
            "closed_at": _time(g["closed_at"]),
        }

    return app
