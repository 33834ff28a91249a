"""Sector profiles: the shipped file's anchored numbers, defaults, and overrides."""

import json
from datetime import date
from pathlib import Path

import pytest

from sandbox.domain.errors import InvalidInput
from sandbox.domain.sectors import ReportFrequency, load_profiles, profiles_from_dict


@pytest.fixture(scope="module")
def profiles():
    return load_profiles()


def test_the_shipped_file_has_the_seven_sectors(profiles) -> None:
    assert profiles.known() == ["fintech", "telecom", "ai", "health", "energy", "transport",
                                "other"]


def test_fintech_follows_decree_94(profiles) -> None:
    fintech = profiles.get("fintech")
    assert fintech.supervising_agency == "SBV"
    assert (fintech.max_initial_months, fintech.max_extensions,
            fintech.max_extension_months) == (24, 2, 12)
    assert (fintech.decision_deadline_days, fintech.start_deadline_days) == (90, 90)


def test_low_orbit_satellites_run_five_years_at_most_and_end_before_2031(profiles) -> None:
    telecom = profiles.get("telecom")
    assert telecom.supervising_agency == "MIC"
    assert telecom.max_total_months == 60
    assert telecom.max_extensions == 1
    assert telecom.ends_before == date(2031, 1, 1)


def test_a_sector_without_its_own_numbers_takes_the_defaults(profiles) -> None:
    other = profiles.get("other")
    assert (other.max_initial_months, other.max_extensions, other.max_extension_months) == (
        24, 1, 12)
    assert other.report_frequency == ReportFrequency.QUARTERLY
    assert other.decision_deadline_days == 90
    assert profiles.get("ai").supervising_agency == "MOST"


def test_an_unknown_sector_is_refused_naming_the_known_ones(profiles) -> None:
    with pytest.raises(InvalidInput) as refused:
        profiles.get("crypto")
    assert refused.value.field == "sector"
    assert "fintech" in refused.value.message and "other" in refused.value.message


def test_a_profile_may_limit_the_exemptible_provisions(profiles) -> None:
    profiles.get("fintech").check_provision("p2p_lending")
    with pytest.raises(InvalidInput, match="not exemptible"):
        profiles.get("fintech").check_provision("anything else")
    profiles.get("other").check_provision("anything else")  # no list: any provision


def test_a_file_named_by_the_settings_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "sectors.json"
    path.write_text(json.dumps({
        "defaults": {"max_initial_months": 12, "max_extensions": 0,
                     "max_extension_months": 0, "report_frequency": "monthly",
                     "report_grace_days": 10, "decision_deadline_days": 60,
                     "start_deadline_days": 30, "incident_deadline_hours": 12},
        "sectors": {"fintech": {"supervising_agency": "SBV"}}}))
    profiles = load_profiles(path)
    assert profiles.known() == ["fintech"]
    assert profiles.get("fintech").report_frequency == ReportFrequency.MONTHLY


@pytest.mark.parametrize("change, field", [
    ({"max_initial_months": 0}, "max_initial_months"),
    ({"report_frequency": "yearly"}, "report_frequency"),
    ({"ends_before": "2031"}, "ends_before"),
    ({"max_total_months": 6}, "max_total_months"),
    ({"surprise": 1}, "surprise"),
])
def test_a_malformed_profile_is_refused_naming_the_field(change, field) -> None:
    data = json.loads(Path(load_profiles.__globals__["SHIPPED_PROFILES"]).read_text())
    data["sectors"]["ai"].update(change)
    with pytest.raises(ValueError, match=field):
        profiles_from_dict(data)
