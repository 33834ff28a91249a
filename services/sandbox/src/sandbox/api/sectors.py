"""Sector profiles in force: ``GET /v1/sectors`` (public)."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox.api.deps import ProfilesDep, SectorQuery, sector_filter
from sandbox.domain.sectors import SectorProfile
from sandbox.schemas import SectorList, SectorRead
from servicekit.decisions import sandbox_register
from servicekit.paging import DEFAULT_LIMIT, Limit, position_cursor

router = APIRouter(prefix="/v1", tags=["sectors"])


def sector_read(p: SectorProfile) -> SectorRead:
    return SectorRead(
        sector=p.sector, name=p.name, supervising_agency=p.supervising_agency,
        decision_register=sandbox_register(p.supervising_agency), basis=p.basis,
        max_initial_months=p.max_initial_months, max_extensions=p.max_extensions,
        max_extension_months=p.max_extension_months, max_total_months=p.max_total_months,
        ends_before=p.ends_before, report_frequency=p.report_frequency.value,
        report_grace_days=p.report_grace_days,
        decision_deadline_days=p.decision_deadline_days,
        start_deadline_days=p.start_deadline_days,
        incident_deadline_hours=p.incident_deadline_hours,
        exemptible_provisions=list(p.exemptible_provisions))


@router.get("/sectors", response_model=SectorList,
            summary="The sector profiles in force (public): durations, extensions, report "
                    "frequency, deadlines, exemptible provisions, supervising agency")
def read_sectors(profiles: ProfilesDep, sector: SectorQuery = None,
                 limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> SectorList:
    """In the file's order; the cursor is the position of the next page's first profile."""
    one = sector_filter(profiles, sector)
    chosen = [one] if one else list(profiles)
    start = position_cursor(cursor)
    more = start + limit < len(chosen)
    return SectorList(items=[sector_read(p) for p in chosen[start:start + limit]],
                      next_cursor=str(start + limit) if more else None)
