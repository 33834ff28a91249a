"""The public register: ``GET /v1/register`` and ``GET /v1/register/{pilot_id}``.

Every pilot ever approved, whatever its status since, so that terminations are as public
as graduations: the firm and its enterprise code, sector, supervising agency,
technology, the limits in force, conditions, dates, status, decision numbers and the
certificate. Never the confidential parts: the risk assessment, reviewers' notes,
reports, incidents, the people involved: :class:`~sandbox.schemas.RegisterEntry` has
no field for them.

No token is needed. Each answer carries an ``ETag`` (a hash of its body) and
``Cache-Control``; a request whose ``If-None-Match`` names the current ETag gets 304.
"""

from __future__ import annotations

import hashlib

import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from sandbox.api.applications import scope_read
from sandbox.api.deps import ProfilesDep, SectorQuery, sector_filter
from sandbox.api.pilots import decisions_of
from sandbox.domain.pilots import PilotStatus
from sandbox.models import PilotRow
from sandbox.schemas import DecisionRead, RegisterEntry, RegisterPage
from servicekit.paging import DEFAULT_LIMIT, Limit, keyset_page
from servicekit.problems import NotFound
from servicekit.unit_of_work import SessionDep

router = APIRouter(prefix="/v1", tags=["register"])

CACHE_CONTROL = "public, max-age=60"


def register_entry(row: PilotRow, decisions: list[DecisionRead]) -> RegisterEntry:
    return RegisterEntry(
        pilot_id=row.id, firm_name=row.firm_name, enterprise_code=row.enterprise_code,
        sector=row.sector, supervising_agency=row.supervising_agency,
        technology=row.technology,
        scope=scope_read(row.limits_regions, row.limits_max_participants,
                         row.limits_max_transaction_vnd),
        conditions=list(row.conditions), approved_on=row.approved_on,
        starts_on=row.starts_on, ends_on=row.ends_on, status=row.status,
        decision_no=row.decision_no, decision_year=row.decision_year, decisions=decisions,
        certificate_no=row.certificate_no)


def cacheable(request: Request, body: RegisterPage | RegisterEntry) -> Response:
    """``body`` as JSON with its ETag and Cache-Control; 304 when the client has it."""
    content = orjson.dumps(body.model_dump(mode="json"))
    etag = f'"{hashlib.sha256(content).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    presented = request.headers.get("if-none-match", "")
    if etag in {tag.strip() for tag in presented.split(",")} or presented.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


@router.get("/register", response_model=RegisterPage,
            summary="The public register of pilots (no token): every pilot ever approved, "
                    "newest first; filter by sector and status. Cacheable (ETag)",
            responses={304: {"description": "Not modified (If-None-Match)"}})
def read_register(request: Request, session: SessionDep, profiles: ProfilesDep,
                  sector: SectorQuery = None, status: PilotStatus | None = None,
                  limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> Response:
    sector_filter(profiles, sector)
    stmt = select(PilotRow)
    if sector is not None:
        stmt = stmt.where(PilotRow.sector == sector)
    if status is not None:
        stmt = stmt.where(PilotRow.status == status.value)
    rows, next_cursor = keyset_page(session, stmt, PilotRow.created_at, PilotRow.id,
                                    limit=limit, cursor=cursor)
    decisions = decisions_of(session, [r.id for r in rows])
    page = RegisterPage(items=[register_entry(r, decisions[r.id]) for r in rows],
                        next_cursor=next_cursor)
    return cacheable(request, page)


@router.get("/register/{pilot_id}", response_model=RegisterEntry,
            summary="One pilot in the public register (no token). Cacheable (ETag)",
            responses={304: {"description": "Not modified (If-None-Match)"}})
def read_register_entry(pilot_id: str, request: Request, session: SessionDep) -> Response:
    row = session.get(PilotRow, pilot_id)
    if row is None:
        raise NotFound(f"pilot {pilot_id} is not in the register")
    return cacheable(request, register_entry(row, decisions_of(session, [row.id])[row.id]))
