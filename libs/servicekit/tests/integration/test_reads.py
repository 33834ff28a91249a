"""Hot reads: ``Reads.load`` (one round trip on the event loop on PostgreSQL, a worker
thread on SQLite), read sessions without a transaction on PostgreSQL, and
``model_response`` answering exactly what FastAPI answers for a ``response_model``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from sqlalchemy import Engine, bindparam, insert, select, text
from sqlalchemy.exc import DBAPIError

from servicekit.audit import AUDIT
from servicekit.hotpath.reads import ReadsDep
from servicekit.hotpath.statements import Load
from servicekit.outbox import OUTBOX
from servicekit.responses import model_response
from servicekit.service import create_service_app
from servicekit.settings import ServiceSettings
from servicekit.unit_of_work import SessionDep

pytestmark = pytest.mark.postgres

KEY = {"key": "k-1"}
OUTBOX_OF = select(OUTBOX.c.id, OUTBOX.c.event_type, OUTBOX.c.headers).where(
    OUTBOX.c.key == bindparam("key")).order_by(OUTBOX.c.id)
COUNT = select(text("count(*) AS n")).select_from(OUTBOX).where(
    OUTBOX.c.key == bindparam("key"))
MISSING = select(text("no_such_column")).select_from(AUDIT)


def reads_app(engine: Engine, key_dir: Path) -> FastAPI:
    router = APIRouter()

    @router.get("/outbox")
    async def read_outbox(reads: ReadsDep):
        return await reads.load(Load([(OUTBOX_OF, KEY), (COUNT, KEY)], lambda rows, counted: {
            "rows": [r._asdict() for r in rows], "count": counted[0].n}))

    @router.get("/broken")
    async def broken(reads: ReadsDep):
        return await reads.fetch([(COUNT, KEY), (MISSING, {})])

    @router.get("/in-transaction")
    def in_transaction(session: SessionDep) -> bool:
        session.execute(COUNT, KEY)
        return session.connection().in_transaction() and session.connection(
            ).connection.driver_connection.info.transaction_status != 0

    url = engine.url.render_as_string(hide_password=False)
    settings = ServiceSettings(database_url=url, dev_key_dir=key_dir)
    return create_service_app(settings, title="reads", description="test",
                              routers=[router], background=False)


def stage(engine: Engine, n: int) -> None:
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        for i in range(n):
            conn.execute(insert(OUTBOX).values(
                event_id=f"e-{i}", topic="t", key="k-1", event_type=f"thing.v{i}",
                value="{}", headers={"n": str(i), "name": "Nguyễn"}, created_at=now))


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, kit_engine, sqlite_kit_engine) -> Engine:
    return kit_engine if request.param == "postgresql" else sqlite_kit_engine


def test_a_load_gets_every_statement_s_rows_in_order_on_either_path(engine, tmp_path):
    stage(engine, 3)
    app = reads_app(engine, tmp_path / "keys")
    with TestClient(app) as client:
        # PostgreSQL reads on the event loop through the lifespan's pool; SQLite does not.
        assert (app.state.kit.pipeline_pool is not None) == (engine.dialect.name
                                                             == "postgresql")
        body = client.get("/outbox").json()
    assert body["count"] == 3
    assert [r["event_type"] for r in body["rows"]] == ["thing.v0", "thing.v1", "thing.v2"]
    assert body["rows"][2]["headers"] == {"n": "2", "name": "Nguyễn"}  # JSON parsed


def test_a_failing_statement_is_a_database_error_naming_the_batch(kit_engine, tmp_path):
    app = reads_app(kit_engine, tmp_path / "keys")
    with TestClient(app) as client, pytest.raises(DBAPIError, match="no_such_column"):
        client.get("/broken")
    with TestClient(app) as client:  # the pool's connection is usable again
        assert client.get("/outbox").json()["count"] == 0


def test_a_read_session_holds_no_transaction_open_on_postgresql(kit_engine, tmp_path):
    with TestClient(reads_app(kit_engine, tmp_path / "keys")) as client:
        assert client.get("/in-transaction").json() is False


class Inner(BaseModel):
    name: str
    at: datetime | None = None


class Outer(BaseModel):
    id: str
    amount_vnd: int
    kind: str = Field(alias="type")
    items: list[Inner]
    note: str | None = None


def test_model_response_is_byte_for_byte_what_response_model_answers():
    model = Outer(id="d-1", amount_vnd=9_007_199_254_740_993, type="licence", items=[
        Inner(name="Trần Thị Bình", at=datetime(2026, 12, 6, 9, 30, 1, 123456, tzinfo=UTC)),
        Inner(name='quote " and \\ back')])
    app = FastAPI()

    @app.get("/framework", response_model=Outer)
    def framework():
        return model

    @app.get("/direct", response_model=Outer)
    def direct():
        return model_response(model)

    with TestClient(app) as client:
        a, b = client.get("/framework"), client.get("/direct")
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    assert a.headers["content-type"] == b.headers["content-type"]
    assert a.headers["content-length"] == b.headers["content-length"]
    assert b'"type":"licence"' in b.content
