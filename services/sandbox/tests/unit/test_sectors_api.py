"""GET /v1/sectors: the profiles in force, public, from the shipped file or the one the
settings name."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sandbox.app import create_app
from sandbox.settings import SandboxSettings


def app_client(tmp_path: Path, **settings) -> TestClient:
    return TestClient(create_app(SandboxSettings(
        database_url=f"sqlite:///{tmp_path / 'sandbox.db'}", dev_key_dir=tmp_path / "keys",
        **settings)))


@pytest.fixture
def client(tmp_path: Path):
    with app_client(tmp_path) as client:
        yield client


def test_the_sector_profiles_are_public(client: TestClient) -> None:
    response = client.get("/v1/sectors")
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None  # a list, shaped as every list
    sectors = {s["sector"]: s for s in response.json()["items"]}
    assert list(sectors) == ["fintech", "telecom", "ai", "health", "energy", "transport",
                             "other"]
    fintech = sectors["fintech"]
    assert (fintech["supervising_agency"], fintech["decision_register"]) == (
        "SBV", "QĐ-TNKS-SBV")
    assert (fintech["max_initial_months"], fintech["max_extensions"],
            fintech["max_extension_months"], fintech["decision_deadline_days"],
            fintech["start_deadline_days"]) == (24, 2, 12, 90, 90)
    assert sectors["telecom"]["ends_before"] == "2031-01-01"
    assert sectors["telecom"]["max_total_months"] == 60
    assert sectors["other"]["report_frequency"] == "quarterly"


def test_one_sector_and_an_unknown_one(client: TestClient) -> None:
    one = client.get("/v1/sectors", params={"sector": "ai"}).json()["items"]
    assert [s["sector"] for s in one] == ["ai"]
    unknown = client.get("/v1/sectors", params={"sector": "crypto"})
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    problem = unknown.json()
    assert problem["errors"][0]["loc"] == ["query", "sector"]
    assert "fintech" in problem["detail"] and "transport" in problem["detail"]


def test_the_settings_name_another_profiles_file(tmp_path: Path) -> None:
    path = tmp_path / "sectors.json"
    path.write_text(json.dumps({
        "defaults": {"max_initial_months": 12, "max_extensions": 0, "max_extension_months": 0,
                     "report_frequency": "monthly", "report_grace_days": 10,
                     "decision_deadline_days": 60, "start_deadline_days": 30,
                     "incident_deadline_hours": 12},
        "sectors": {"fintech": {"supervising_agency": "SBV"}}}))
    with app_client(tmp_path, sectors_file=path) as client:
        items = client.get("/v1/sectors").json()["items"]
    assert [(s["sector"], s["decision_deadline_days"]) for s in items] == [("fintech", 60)]


def test_a_malformed_profiles_file_stops_the_service_from_starting(tmp_path: Path) -> None:
    path = tmp_path / "sectors.json"
    path.write_text(json.dumps({"sectors": {"fintech": {"supervising_agency": "SBV"}}}))
    with pytest.raises(ValueError, match="max_initial_months"):
        app_client(tmp_path, sectors_file=path)


def test_the_sectors_are_paged_as_every_list(client: TestClient) -> None:
    pages, cursor = [], None
    while True:
        page = client.get("/v1/sectors", params={"limit": 3, **({"cursor": cursor} if cursor
                                                                 else {})}).json()
        pages.append([s["sector"] for s in page["items"]])
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages == [["fintech", "telecom", "ai"], ["health", "energy", "transport"],
                     ["other"]]
    for bad in ({"limit": 0}, {"cursor": "!!"}):
        refused = client.get("/v1/sectors", params=bad)
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"] == "application/problem+json"
