"""Sector profiles: each sector's numbers for its pilots (domain.md §4).

The framework is the same for every sector; a sector's decree sets the numbers: the
longest first term, how many extensions of how many months, a maximum total duration
and an absolute end date where the law sets them, how often reports are due, the
decision and start deadlines, the incident reporting deadline, the provisions a pilot
may be exempted from and the agency that supervises it (whose sandbox register numbers
its decisions). Profiles are configuration: :func:`load_profiles` reads them from the
file the service ships (``sandbox/sectors.json``) or the one the settings name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from sandbox.domain.errors import InvalidInput

SHIPPED_PROFILES = Path(__file__).resolve().parents[1] / "sectors.json"


class ReportFrequency(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"


@dataclass(frozen=True)
class SectorProfile:
    sector: str
    name: str
    supervising_agency: str
    basis: str
    max_initial_months: int
    max_extensions: int
    max_extension_months: int
    max_total_months: int | None
    ends_before: date | None
    report_frequency: ReportFrequency
    report_grace_days: int
    decision_deadline_days: int
    start_deadline_days: int
    incident_deadline_hours: int
    exemptible_provisions: tuple[str, ...]

    def check_provision(self, provision: str) -> None:
        """A provision this sector may exempt from (any, when the profile lists none)."""
        if self.exemptible_provisions and provision not in self.exemptible_provisions:
            raise InvalidInput(
                f"provision '{provision}' is not exemptible in sector '{self.sector}' "
                f"(exemptible: {', '.join(self.exemptible_provisions)})",
                field="exemptions")


class SectorProfiles:
    """The profiles in force, by sector code."""

    def __init__(self, profiles: list[SectorProfile]) -> None:
        self._by_sector = {p.sector: p for p in profiles}

    def __iter__(self):
        return iter(self._by_sector.values())

    def __len__(self) -> int:
        return len(self._by_sector)

    def known(self) -> list[str]:
        return list(self._by_sector)

    def get(self, sector: str) -> SectorProfile:
        """The profile of ``sector``; an unknown sector is refused, naming the known."""
        profile = self._by_sector.get(sector)
        if profile is None:
            raise InvalidInput(f"unknown sector '{sector}'; known sectors: "
                               f"{', '.join(self._by_sector)}", field="sector")
        return profile


_INT_FIELDS = ("max_initial_months", "max_extensions", "max_extension_months",
               "report_grace_days", "decision_deadline_days", "start_deadline_days",
               "incident_deadline_hours")


def profiles_from_dict(data: dict[str, Any]) -> SectorProfiles:
    """Profiles from the file's content: ``{"defaults": {...}, "sectors": {code: {...}}}``;
    each sector takes the defaults for what it does not set. A malformed file is a
    ``ValueError`` naming the sector and field (the service refuses to start)."""
    defaults = data.get("defaults", {})
    sectors = data.get("sectors")
    if not isinstance(sectors, dict) or not sectors:
        raise ValueError("sector profiles: 'sectors' must name at least one sector")
    known = {f.name for f in fields(SectorProfile)} - {"sector"}
    profiles = []
    for code, own in sectors.items():
        merged = {**defaults, **own}
        unknown = set(merged) - known
        if unknown:
            raise ValueError(f"sector profile '{code}': unknown fields {sorted(unknown)}")
        profiles.append(_profile(code, merged))
    return SectorProfiles(profiles)


def _profile(code: str, v: dict[str, Any]) -> SectorProfile:
    def fail(field: str, why: str) -> ValueError:
        return ValueError(f"sector profile '{code}': {field} {why}")

    for name in _INT_FIELDS:
        value = v.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise fail(name, "must be a whole number ≥ 0")
    for name in ("max_initial_months", "decision_deadline_days", "start_deadline_days",
                 "incident_deadline_hours"):
        if v[name] < 1:
            raise fail(name, "must be at least 1")
    total = v.get("max_total_months")
    if total is not None and (not isinstance(total, int) or total < v["max_initial_months"]):
        raise fail("max_total_months", "must be a whole number ≥ max_initial_months")
    ends_before = v.get("ends_before")
    try:
        ends_before = date.fromisoformat(ends_before) if ends_before else None
    except (TypeError, ValueError) as exc:
        raise fail("ends_before", "must be a YYYY-MM-DD date") from exc
    try:
        frequency = ReportFrequency(v.get("report_frequency"))
    except ValueError as exc:
        raise fail("report_frequency", "must be monthly or quarterly") from exc
    agency = v.get("supervising_agency")
    if not isinstance(agency, str) or not agency.strip():
        raise fail("supervising_agency", "must name the agency")
    provisions = v.get("exemptible_provisions", [])
    if not isinstance(provisions, list) or not all(isinstance(p, str) for p in provisions):
        raise fail("exemptible_provisions", "must be a list of provisions")
    return SectorProfile(
        sector=code, name=str(v.get("name", code)), supervising_agency=agency,
        basis=str(v.get("basis", "")),
        max_initial_months=v["max_initial_months"], max_extensions=v["max_extensions"],
        max_extension_months=v["max_extension_months"], max_total_months=total,
        ends_before=ends_before, report_frequency=frequency,
        report_grace_days=v["report_grace_days"],
        decision_deadline_days=v["decision_deadline_days"],
        start_deadline_days=v["start_deadline_days"],
        incident_deadline_hours=v["incident_deadline_hours"],
        exemptible_provisions=tuple(provisions),
    )


def load_profiles(path: Path | None = None) -> SectorProfiles:
    """The profiles of ``path``, or of the file the service ships."""
    source = path or SHIPPED_PROFILES
    return profiles_from_dict(json.loads(Path(source).read_text(encoding="utf-8")))
