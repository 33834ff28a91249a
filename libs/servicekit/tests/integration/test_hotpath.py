"""A hot unit of work: its reads, its handler and its writes in one transaction, with the
same answers as an ordinary unit of work's (replays, refusals, conflicts), on
PostgreSQL's pipelined path and on the worker-thread path SQLite takes; and the same
handler writing the same rows on either kind of unit of work."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import PoolTimeout
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    select,
    text,
)

from devkit.testing import Tokens
from servicekit import audit, cloudevent, outbox
from servicekit.db import PING_AFTER_IDLE_SECONDS
from servicekit.hotpath.pipeline import HotPool
from servicekit.hotpath.statements import Load
from servicekit.hotpath.unit_of_work import HotUnitOfWork, hot_unit_of_work
from servicekit.idempotency import REPLAY_HEADER
from servicekit.problems import Conflict
from servicekit.responses import OrjsonResponse
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings
from servicekit.unit_of_work import AbstractUnitOfWork, SessionDep, UnitOfWorkDep

pytestmark = pytest.mark.postgres

EFFECTS = Table("effects", MetaData(), Column("id", Integer, primary_key=True),
                Column("event_id", String(64)))
_SEEN = select(func.count()).select_from(EFFECTS).where(EFFECTS.c.event_id == bindparam("name"))
ThingsUnitOfWork = Annotated[HotUnitOfWork, Depends(hot_unit_of_work("finance"))]


def seen(name: str) -> Load[int]:
    """How many things of this name there are (the hot path's read)."""
    return Load([(_SEEN, {"name": name})], lambda counted: counted[0][0])


def make_thing(uow: AbstractUnitOfWork, before: int, name: str,
               gate: threading.Barrier | None = None) -> OrjsonResponse:
    """The handler, written once for either kind of unit of work."""
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
    async def post_thing(name: str, uow: ThingsUnitOfWork):
        async with uow:
            before = await uow.load(seen(name))
            return make_thing(uow, before, name, gate)

    @router.post("/ordinary/things/{name}", status_code=201)
    def post_ordinary_thing(name: str, uow: UnitOfWorkDep):
        before = uow.session.execute(_SEEN, {"name": name}).scalar_one()
        return make_thing(uow, before, name)

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
        hot = client.post("/things/g", headers=finance)  # no pooled connection in time
        threaded = client.get("/things/g", headers=finance)  # the engine cannot connect

    for answer in (hot, threaded):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["type"].endswith("/unavailable")


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_hot_path_connections_are_reused_and_replaced_when_found_dead(engine, key_dir,
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


def test_a_database_down_refuses_hot_commands_at_once_and_they_are_served_once_it_is_back(
        restartable_kit_url, restartable_postgres, key_dir, finance):
    app = thing_app(restartable_kit_url, key_dir)  # a request may wait 10 s for a connection
    with TestClient(app) as client:
        assert client.post("/things/before", headers=finance).status_code == 201
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.1)  # the pooled sessions idle: pinged first
        restartable_postgres.kill()
        try:
            refused = []
            for i in range(4):
                started = time.monotonic()
                answer = client.post(f"/things/down-{i}", headers=finance)
                refused.append((answer.status_code, time.monotonic() - started))
        finally:
            restartable_postgres.restart()
        # Before the pool's own next attempt to reconnect (a second or more away).
        served = client.post("/things/after", headers=finance)

    assert [status for status, _ in refused] == [503] * 4
    assert max(seconds for _, seconds in refused) < 1.0
    assert served.status_code == 201, served.text
    with create_engine(restartable_kit_url).connect() as conn:
        assert conn.execute(select(EFFECTS.c.event_id).order_by(EFFECTS.c.id)
                            ).scalars().all() == ["before", "after"]


def test_one_handler_writes_the_same_rows_on_the_hot_path_and_an_ordinary_unit_of_work(
        client, engine, finance):
    hot = client.post("/things/i", headers={**finance, "Idempotency-Key": "k-i"})
    ordinary = client.post("/ordinary/things/j", headers={**finance, "Idempotency-Key": "k-j"})

    assert (hot.status_code, hot.json()) == (201, {"name": "i", "before": 0})
    assert (ordinary.status_code, ordinary.json()) == (201, {"name": "j", "before": 0})
    with engine.connect() as conn:
        trail = conn.execute(select(audit.AUDIT.c.aggregate_id, audit.AUDIT.c.seq,
                                    audit.AUDIT.c.actor, audit.AUDIT.c.action,
                                    audit.AUDIT.c.to_status)
                             .order_by(audit.AUDIT.c.aggregate_id)).all()
        events = [cloudevent.decode(v.encode()) for v in conn.execute(
            select(outbox.OUTBOX.c.value).order_by(outbox.OUTBOX.c.id)).scalars()]
    assert [tuple(r) for r in trail] == [("i", 1, "fin-1", "make", "made"),
                                         ("j", 1, "fin-1", "make", "made")]
    assert [(e.get_type(), e.get_subject(), e.get_data()) for e in events] == [
        ("vn.gov.most.service.thing.made.v1", "i", {"name": "i", "before": 0}),
        ("vn.gov.most.service.thing.made.v1", "j", {"name": "j", "before": 0})]
    assert count(engine, EFFECTS, event_id="i") == count(engine, EFFECTS, event_id="j") == 1
    replayed = client.post("/ordinary/things/j", headers={**finance, "Idempotency-Key": "k-j"})
    assert replayed.json() == ordinary.json() and replayed.headers[REPLAY_HEADER] == "true"


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_requests_connect_by_themselves_at_most_the_pool_size_at_a_time(engine):
    """After an outage, until the pool has reconnected, a burst of requests does not
    open a session each: past ``size`` of their own, a request waits, then gets a 503."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def burst() -> None:
        pool = HotPool(url, size=2, timeout=0.3, name="capped")
        await pool.open()
        held = [await pool.pool.getconn() for _ in range(2)]  # the pool has none free
        pool.unreachable = True  # as when its last attempt to connect failed
        try:
            own = [await pool.getconn() for _ in range(2)]
            assert not set(own) & set(held)
            started = time.monotonic()
            with pytest.raises(PoolTimeout):
                await pool.getconn()
            assert 0.25 < time.monotonic() - started < 2.0
            await pool.putconn(own.pop())  # one gives its own connection back...
            own.append(await pool.getconn())  # ...and the next request takes its place
            assert (await (await own[-1].execute("SELECT 1")).fetchone()) == (1,)
            for conn in own:
                await pool.putconn(conn)
        finally:
            for conn in held:
                await pool.pool.putconn(conn)
            await pool.close()

    asyncio.run(burst())
