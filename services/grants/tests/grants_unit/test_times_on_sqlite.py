"""Times with an offset on SQLite (``make run``), which has no time zones: the instant is
kept, not the wall-clock digits (a call closing at 08:30+07:00 closes at 01:30 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from devkit.testing import Tokens
from grants.app import create_app
from grants.settings import GrantsSettings
from servicekit.clock import FixedClock

CALL = {"title": "AI for rice yields", "budget_vnd": 10_000_000_000,
        "max_award_vnd": 2_000_000_000, "min_reviews": 2,
        "opens_at": "2026-11-01T07:00:00+07:00", "closes_at": "2026-11-24T08:30:00+07:00"}


def test_a_call_closes_at_the_instant_it_was_given(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 11, 24, 1, 0, tzinfo=UTC))
    settings = GrantsSettings(database_url=f"sqlite:///{tmp_path / 'grants.db'}",
                              dev_key_dir=tmp_path / "keys")
    pm = Tokens(tmp_path / "keys").headers("pm-1", "program_manager", org="MOST")
    with TestClient(create_app(settings, clock=clock, background=False)) as c:
        created = c.post("/v1/calls", headers=pm, json=CALL)
        assert created.status_code == 201, created.text
        call_id = created.json()["id"]
        assert c.post(f"/v1/calls/{call_id}/open", headers=pm).status_code == 200

        clock.advance(timedelta(hours=1))  # 02:00 UTC: half an hour after it closed
        call = c.get(f"/v1/calls/{call_id}", headers=pm).json()
        assert call["closes_at"] == created.json()["closes_at"] == "2026-11-24T01:30:00Z"
        assert call["accepting_submissions"] is False

        # A portfolio bound with an offset means the same instant as in UTC.
        same = [c.get("/v1/portfolio", headers=pm, params={"from": bound}).json()
                for bound in ("2026-11-24T00:00:00Z", "2026-11-24T07:00:00+07:00")]
        assert same[0] == same[1]


def test_times_python_cannot_hold_in_utc_are_refused(tmp_path: Path) -> None:
    settings = GrantsSettings(database_url=f"sqlite:///{tmp_path / 'grants.db'}",
                              dev_key_dir=tmp_path / "keys")
    pm = Tokens(tmp_path / "keys").headers("pm-1", "program_manager", org="MOST")
    with TestClient(create_app(settings, background=False)) as c:
        for bounds in ({"opens_at": "0001-01-01T00:00:00+05:00"},
                       {"closes_at": "9999-12-31T23:59:59-05:00"},
                       {"opens_at": 1764547200}):  # seconds, not RFC 3339
            r = c.post("/v1/calls", headers=pm, json={**CALL, **bounds})
            assert r.status_code == 422, (bounds, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        assert c.get("/v1/calls", headers=pm).json()["items"] == []
