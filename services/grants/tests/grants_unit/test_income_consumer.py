"""ipshare's distribution events as the app's consumer records them (on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from grants.app import create_app
from grants.consumers import consumer_specs
from grants.events import DISTRIBUTION_POSTED
from grants.models import IncomeRow
from grants.settings import GrantsSettings
from servicekit import cloudevent
from servicekit.clock import FixedClock, as_utc


def test_income_is_stamped_received_by_the_services_own_clock(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    settings = GrantsSettings(database_url=f"sqlite:///{tmp_path / 'grants.db'}",
                              dev_key_dir=tmp_path / "keys")
    event = cloudevent.build(
        service="ipshare", type_=DISTRIBUTION_POSTED, subject="d-1",
        time=clock.now() - timedelta(minutes=5),
        data={"distribution_id": "d-1", "source_grant_id": "g-1",
              "gross_vnd": 1_000_000_007, "researcher_pool_vnd": 300_000_003})
    [spec] = consumer_specs()  # as the app wires it
    with TestClient(create_app(settings, clock=clock, background=False)) as c:
        kit = c.app.state.kit
        with kit.sessions() as session, session.begin():
            spec.handlers[DISTRIBUTION_POSTED](session, event)
        with kit.sessions() as session:
            income = session.get(IncomeRow, event.get_id())
    assert income is not None
    assert as_utc(income.received_at) == clock.now()
    assert as_utc(income.occurred_at) == clock.now() - timedelta(minutes=5)
    assert (income.gross_vnd, income.researchers_vnd) == (1_000_000_007, 300_000_003)
