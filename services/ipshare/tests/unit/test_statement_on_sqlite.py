"""A statement's window on SQLite (``make run``), which stores times without an offset:
a bound with an offset selects the same lines as the same instant in UTC, or as a date."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from devkit.testing import Tokens
from ipshare.app import create_app
from ipshare.settings import IpshareSettings
from servicekit.clock import FixedClock


def test_offsets_dates_and_utc_select_the_same_lines(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    settings = IpshareSettings(database_url=f"sqlite:///{tmp_path / 'ipshare.db'}",
                               dev_key_dir=tmp_path / "keys")
    tokens = Tokens(tmp_path / "keys")
    office = tokens.headers("off-1", "institution", org="HUST")
    finance = tokens.headers("fin-1", "finance", org="MOF")
    with TestClient(create_app(settings, clock=clock, background=False)) as c:
        asset = c.post("/v1/assets", headers=office, json={
            "kind": "patent", "title": "x", "source_grant_id": None,
            "authors": [{"researcher_id": "r-1", "name": "R", "contribution_bp": 10000}]})
        agreement = c.post(f"/v1/assets/{asset.json()['id']}/agreements", headers=office,
                           json={"kind": "licence", "counterparty": "X",
                                 "signed_on": "2026-11-01", "terms": "t"}).json()
        for gross in (1_000, 2_000, 4_000):  # 23, 24 and 25 November, 09:00 UTC
            r = c.post(f"/v1/agreements/{agreement['id']}/income", headers=office, json={
                "period": "p", "gross_vnd": gross, "costs_vnd": 0,
                "reference": uuid.uuid4().hex})
            assert r.status_code == 201, r.text
            clock.advance(timedelta(days=1))

        def lines(**window: str) -> list[int]:
            r = c.get("/v1/payees/r-1/statement", headers=finance, params=window)
            assert r.status_code == 200, r.text
            return [i["amount_vnd"] for i in r.json()["items"]]

        by_offset = lines(**{"from": "2026-11-24T15:00:00+07:00",
                             "to": "2026-11-25T15:00:00+07:00"})
        assert by_offset == lines(**{"from": "2026-11-24T08:00:00Z",
                                     "to": "2026-11-25T08:00:00Z"}) == [600]
        assert lines(**{"from": "2026-11-24", "to": "2026-11-24"}) == [600]
