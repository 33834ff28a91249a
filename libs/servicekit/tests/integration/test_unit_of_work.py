"""A unit of work's answers when retries race: a refused retry replays the first
attempt's answer, and a collision the database refuses is a 409 that wrote nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select, update

from devkit.testing import Tokens
from servicekit.idempotency import REPLAY_HEADER
from servicekit.problems import Conflict
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings
from servicekit.unit_of_work import UnitOfWorkDep

pytestmark = pytest.mark.postgres

# The kit's test schema's business table; a row's event_id says whether it is closed.
EFFECTS = Table("effects", MetaData(), Column("id", Integer, primary_key=True),
                Column("event_id", String(64)))


def closing_app(url: str, key_dir: Path, gate: threading.Barrier | None = None) -> FastAPI:
    router = APIRouter()

    @router.post("/things/{thing_id}/close")
    def close_thing(thing_id: int, uow: UnitOfWorkDep) -> Any:
        if gate is not None:
            gate.wait(10)  # every request has looked its key up before any locks the row
        state = uow.session.execute(select(EFFECTS.c.event_id).where(EFFECTS.c.id == thing_id)
                                    .with_for_update()).scalar_one()
        if state == "closed":
            raise Conflict(f"thing {thing_id} is already closed")
        uow.session.execute(update(EFFECTS).where(EFFECTS.c.id == thing_id)
                            .values(event_id="closed"))
        uow.record("thing", str(thing_id), "close", from_status=state, to_status="closed")
        return uow.commit({"id": thing_id, "status": "closed"})

    @router.post("/things/{thing_id}/twin")
    def twin(thing_id: int, uow: UnitOfWorkDep) -> Any:
        # Reuses the primary key: the flush (before commit) collides with the row.
        uow.session.execute(insert(EFFECTS).values(id=thing_id, event_id="twin"))
        uow.session.flush()
        return uow.commit({"id": thing_id})

    settings = ServiceSettings(database_url=url, dev_key_dir=key_dir)
    return create_service_app(settings, title="things", description="test",
                              routers=[router], background=False)


@pytest.fixture
def thing_id(kit_engine: Engine) -> int:
    with kit_engine.begin() as conn:
        return conn.execute(insert(EFFECTS).values(event_id="open")
                            .returning(EFFECTS.c.id)).scalar_one()


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_retries_racing_on_a_row_lock_replay_the_first_answer(kit_engine, tmp_path,
                                                               thing_id):
    # Both retries look the key up before either has committed (the gate), then queue
    # on the row lock; the second finds the thing closed. It must replay, not 409.
    key_dir = tmp_path / "keys"
    finance = Tokens(key_dir).headers("fin-1", "finance", org="MOF")
    keyed = {**finance, "Idempotency-Key": "close-1"}
    gate = threading.Barrier(2)
    apps = [closing_app(_url(kit_engine), key_dir, gate) for _ in range(2)]
    with (TestClient(apps[0]) as one, TestClient(apps[1]) as two,
          ThreadPoolExecutor(2) as pool):
        answers = list(pool.map(lambda c: c.post(f"/things/{thing_id}/close", headers=keyed),
                                (one, two)))

    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json() == answers[1].json() == {"id": thing_id, "status": "closed"}
    assert sorted(a.headers.get(REPLAY_HEADER, "no") for a in answers) == ["no", "true"]


def test_without_a_key_the_loser_of_the_race_gets_the_409(kit_engine, tmp_path, thing_id):
    key_dir = tmp_path / "keys"
    finance = Tokens(key_dir).headers("fin-1", "finance", org="MOF")
    gate = threading.Barrier(2)
    apps = [closing_app(_url(kit_engine), key_dir, gate) for _ in range(2)]
    with (TestClient(apps[0]) as one, TestClient(apps[1]) as two,
          ThreadPoolExecutor(2) as pool):
        answers = list(pool.map(lambda c: c.post(f"/things/{thing_id}/close",
                                                 headers=finance), (one, two)))

    assert sorted(a.status_code for a in answers) == [200, 409]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.headers["content-type"] == "application/problem+json"
    assert "already closed" in refused.json()["detail"]


def test_a_collision_refused_before_the_commit_is_a_409_that_wrote_nothing(
        kit_engine, tmp_path, thing_id):
    key_dir = tmp_path / "keys"
    finance = Tokens(key_dir).headers("fin-1", "finance", org="MOF")
    with TestClient(closing_app(_url(kit_engine), key_dir)) as client:
        answer = client.post(f"/things/{thing_id}/twin",
                             headers={**finance, "Idempotency-Key": "twin-1"})

    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    with kit_engine.connect() as conn:
        assert conn.execute(select(EFFECTS.c.event_id)).scalars().all() == ["open"]
