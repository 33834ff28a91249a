"""A pipelined command: its reads, its decision and its writes in one transaction, with
the same answers as a unit of work's (replays, refusals, conflicts), on PostgreSQL's
pipelined path and on the worker-thread path SQLite takes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import psycopg
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
)

from devkit.testing import Tokens
from servicekit import audit, outbox
from servicekit.db import PING_AFTER_IDLE_SECONDS
from servicekit.pipelined import PipelinedCommand, pipelined_command, sent_together
from servicekit.problems import Conflict
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings
from servicekit.unit_of_work import REPLAY_HEADER, SessionDep, UnitOfWork

pytestmark = pytest.mark.postgres

EFFECTS = Table("effects", MetaData(), Column("id", Integer, primary_key=True),
                Column("event_id", String(64)))
_SEEN = select(func.count()).select_from(EFFECTS).where(EFFECTS.c.event_id == bindparam("name"))
Command = Annotated[PipelinedCommand, Depends(pipelined_command("finance"))]


def _make(uow: UnitOfWork, rows: list[list[Any]], name: str,
          gate: threading.Barrier | None) -> Any:
    before = rows[0][0][0]
    if name == "refused":
        raise Conflict("refused by the decision")
    if gate is not None:
        gate.wait(10)  # every request has read before any writes
    uow.insert(EFFECTS, [{"event_id": name}])
    # A new chain: making the same thing twice violates the chain's unique seq.
    uow.record("thing", name, "make", to_status="made", new=True)
    uow.emit("thing.made", name, {"name": name, "before": before})
    return uow.commit({"name": name, "before": before}, status_code=201)


def thing_app(url: str, key_dir: Path, gate: threading.Barrier | None = None,
              **settings: Any) -> FastAPI:
    router = APIRouter()

    @router.post("/things/{name}", status_code=201)
    async def make_thing(name: str, command: Command):
        return await command.run([(_SEEN, {"name": name})], _make, name, gate)

    @router.get("/things/{name}")
    def count_things(name: str, session: SessionDep) -> int:
        return session.execute(_SEEN, {"name": name}).scalar_one()

    settings = ServiceSettings(database_url=url, dev_key_dir=key_dir, **settings)
    return create_service_app(settings, title="things", description="test",
                              routers=[router], background=False)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, kit_engine, sqlite_kit_engine) -> Engine:
    return kit_engine if request.param == "postgresql" else sqlite_kit_engine


@pytest.fixture
def key_dir(tmp_path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def finance(key_dir) -> dict[str, str]:
    return Tokens(key_dir).headers("fin-1", "finance", org="MOF")


@pytest.fixture
def client(engine, key_dir, finance):
    app = thing_app(url_of(engine), key_dir)
    with TestClient(app) as test_client:
        # PostgreSQL pipelines on the event loop; SQLite takes the worker thread.
        pipelined = app.state.kit.pipeline_pool is not None
        assert pipelined == (engine.dialect.name == "postgresql")
        yield test_client


def count(engine: Engine, table: Table, **where: str) -> int:
    stmt = select(func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def test_reads_decision_and_writes_commit_together(client, engine, finance):
    first = client.post("/things/a", headers=finance)
    second = client.post("/things/b", headers=finance)

    assert (first.status_code, first.json()) == (201, {"name": "a", "before": 0})
    assert second.status_code == 201
    assert count(engine, EFFECTS) == 2
    assert count(engine, outbox.OUTBOX) == 2
    assert count(engine, audit.AUDIT, aggregate_type="thing") == 2


def test_a_refused_command_writes_nothing_and_the_next_one_works(client, engine, finance):
    refused = client.post("/things/refused", headers=finance)
    after = client.post("/things/c", headers=finance)

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert after.status_code == 201  # the connection went back clean
    assert count(engine, EFFECTS) == 1 and count(engine, outbox.OUTBOX) == 1


def test_a_key_replays_its_answer_and_refuses_another_body(client, engine, finance):
    keyed = {**finance, "Idempotency-Key": "k-1"}
    first = client.post("/things/d", headers=keyed)
    again = client.post("/things/d", headers=keyed)
    other = client.post("/things/d", headers=keyed, json={"changed": True})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers[REPLAY_HEADER] == "true"
    assert REPLAY_HEADER not in first.headers
    assert other.status_code == 422 and "different request body" in other.json()["detail"]
    assert count(engine, EFFECTS, event_id="d") == 1


def test_a_unique_index_refusing_the_commit_is_a_409_and_writes_nothing(
        client, engine, finance):
    assert client.post("/things/e", headers=finance).status_code == 201
    again = client.post("/things/e", headers=finance)  # the audit chain already starts

    assert again.status_code == 409
    assert "concurrently" in again.json()["detail"]
    assert count(engine, EFFECTS, event_id="e") == 1 and count(engine, outbox.OUTBOX) == 1


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_concurrent_retries_with_one_key_get_the_winners_answer(engine, key_dir, finance):
    # Two servers, one database: both requests read (no key stored yet), then both
    # write; the loser's commit waits on the winner's key, fails, and replays it.
    gate = threading.Barrier(2)
    apps = [thing_app(url_of(engine), key_dir, gate) for _ in range(2)]
    keyed = {**finance, "Idempotency-Key": "k-race"}
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two, ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda c: c.post("/things/f", headers=keyed), (one, two)))

    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json() == answers[1].json() == {"name": "f", "before": 0}
    assert sorted(a.headers.get(REPLAY_HEADER, "no") for a in answers) == ["no", "true"]
    assert count(engine, EFFECTS, event_id="f") == 1 and count(engine, outbox.OUTBOX) == 1


def test_an_unreachable_database_is_a_503_to_retry_not_a_500(key_dir, finance):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = thing_app(f"postgresql://nobody@127.0.0.1:{port}/none", key_dir,
                    db_pool_timeout_seconds=0.5)
    with TestClient(app) as client:
        pipelined = client.post("/things/g", headers=finance)  # no pooled connection in time
        threaded = client.get("/things/g", headers=finance)  # the engine cannot connect

    for answer in (pipelined, threaded):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["type"].endswith("/unavailable")


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_pipelined_connections_are_reused_and_replaced_when_found_dead(engine, key_dir,
                                                                        finance):
    app = thing_app(url_of(engine), key_dir)
    with TestClient(app) as client:
        pool = app.state.kit.pipeline_pool
        assert client.post("/things/h-first", headers=finance).status_code == 201
        opened = pool.get_stats()["connections_num"]
        for i in range(10):
            assert client.post(f"/things/h{i}", headers=finance).status_code == 201
        stats = pool.get_stats()
        assert stats["connections_num"] == opened  # no new sessions: reused
        assert stats.get("returns_bad", 0) == 0 and stats.get("connections_lost", 0) == 0

        with engine.connect() as conn:  # what a database restart does to idle sessions
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() "
                              "AND pid <> pg_backend_pid()"))
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.1)  # idle long enough to be pinged

        assert client.post("/things/h-after", headers=finance).status_code == 201


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_pipeline_sends_its_statements_together_with_the_same_results(engine):
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def results() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            async with conn.pipeline() as pipeline:
                with sent_together(pipeline):
                    cursors = []
                    for i in range(3):
                        cursor = conn.cursor()
                        await cursor.execute("SELECT %s::int * 10", [i])
                        cursors.append(cursor)
                    # Queued, not yet handed to libpq: psycopg's internals are as relied on.
                    assert len(pipeline.command_queue) == 3
            return [await cursor.fetchall() for cursor in cursors]

    async def failure(batched: bool) -> tuple[str, str, Any]:
        """What a failing statement in the middle of a transaction's pipeline does."""
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as raised:
                async with conn.pipeline() as pipeline:
                    with sent_together(pipeline) if batched else nullcontext():
                        await conn.execute("BEGIN")
                        await conn.execute("SELECT 1 / %s::int", [0])
                        after = await conn.execute("SELECT 2")
            with pytest.raises(psycopg.Error) as later:
                await after.fetchall()  # aborted: never ran
            status = conn.info.transaction_status.name
            await conn.rollback()
            usable = await (await conn.execute("SELECT 3")).fetchall()
            return type(raised.value).__name__, f"{type(later.value).__name__} {status}", usable

    assert asyncio.run(results()) == [[(0,)], [(10,)], [(20,)]]
    unbatched, batched = asyncio.run(failure(False)), asyncio.run(failure(True))
    assert batched == unbatched
    assert batched[0] == "DivisionByZero" and batched[2] == [(3,)]
