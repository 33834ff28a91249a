"""The audit chain of each service, as the services wrote it, checked by the
``verify-audit`` command (its ``main``; for grants also the installed script in a
process of its own) after someone with direct database access changed it.

The world's objects (``world.seed``) leave each service a trail of several chains; a
checkpoint then covers them (as the kit's periodic job writes it), and one more chain
is appended after it. Each case runs on a copy of that database, bypassing the
append-only triggers as a superuser could:

- untouched: exit 0, and the line says what the checkpoint covers and how many records
  came after it;
- a row's content changed: exit 1, naming that record;
- a row deleted from the middle of a chain: exit 1, naming the record after the gap;
- a whole chain deleted once the checkpoint covers it: exit 1, naming the checkpoint
  and the chain.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

from devkit.testing import DatabaseFactory
from servicekit import audit
from servicekit import verify_audit as verify_audit_command
from servicekit.db import normalise_url

from .conftest import FIGURES
from .world import CAST, NOW, PROPOSAL, SERVICES, asset_body, call_body, running_world, seed

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

VERIFY_AUDIT = Path(sys.executable).with_name("verify-audit")
CHECKPOINT_AT = NOW + timedelta(hours=1)


@dataclass(frozen=True)
class Trail:
    database: str  # the seeded database, copied for each case
    checkpoint_records: int
    checkpoint_chains: int
    after: int  # records appended after the checkpoint


def conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def write_checkpoint(url: str) -> tuple[int, int]:
    engine = create_engine(normalise_url(url))
    try:
        with Session(engine) as session:
            audit.checkpoint(session, CHECKPOINT_AT)
            session.commit()
            covered = audit.latest_checkpoint(session)
    finally:
        engine.dispose()
    assert covered is not None
    return covered.records, covered.chains


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trails(databases: DatabaseFactory, key_dir: Path) -> AsyncIterator[dict[str, Trail]]:
    """Each service's trail: seeded, checkpointed, one more chain after; no connection
    left open on it (a database with sessions cannot be copied)."""
    covered: dict[str, tuple[int, int]] = {}
    async with running_world(databases, key_dir) as world:
        world.ids = await seed(world)
        # The institution changes its policy: ipshare's chains are one record long else.
        await world.ok(CAST["institution"], "PUT", "/ipshare/v1/institutions/HUST/policy",
                       {"researcher_share_bp": 3500, "basis": "net"})
        for name, service in world.services.items():
            covered[name] = write_checkpoint(service.url)
        # A chain the checkpoint does not cover, in each service.
        await world.ok(CAST["program_manager"], "POST", "/grants/v1/calls", call_body())
        await world.ok(CAST["sandbox_applicant"], "POST", "/sandbox/v1/applications",
                       PROPOSAL)
        await world.ok(CAST["institution"], "POST", "/ipshare/v1/assets", asset_body())
        urls = {name: s.url for name, s in world.services.items()}
    yield {name: Trail(make_url(url).database, *covered[name],
                       after=records(url) - covered[name][0])
           for name, url in urls.items()}


def records(url: str) -> int:
    with psycopg.connect(conninfo(url)) as conn:
        return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


@pytest.fixture
def copy(databases: DatabaseFactory, trails: dict[str, Trail]) -> Iterator[Any]:
    """``copy(service)``: the URL of a fresh copy of the service's trail."""
    made: list[str] = []

    def make(service: str) -> str:
        name = f"audit_{service}_{uuid.uuid4().hex[:8]}"
        databases.server.create_database(name, template=trails[service].database)
        made.append(name)
        return databases.server.url(name)

    yield make
    for name in made:
        databases.server.drop_database(name)


def tamper(url: str, sql: str, *params: Any) -> None:
    """As a superuser could: with the append-only triggers bypassed."""
    with psycopg.connect(conninfo(url)) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql, params)


def chain(url: str) -> tuple[str, str, int, int]:
    """A chain of at least two records that the checkpoint covers: (type, id, length,
    id of its first row)."""
    with psycopg.connect(conninfo(url)) as conn:
        heads = conn.execute("SELECT heads FROM audit_checkpoints ORDER BY id DESC "
                             "LIMIT 1").fetchone()[0]
        for key, (seq, _) in sorted(heads.items()):
            if seq >= 2:
                kind, _, ident = key.partition("/")
                first = conn.execute(
                    "SELECT id FROM audit_log WHERE aggregate_type = %s AND aggregate_id = %s "
                    "AND seq = 1", (kind, ident)).fetchone()[0]
                return kind, ident, seq, first
    raise AssertionError("no chain of two records or more")


def verify_audit(url: str, *, process: bool = False) -> tuple[int, dict[str, Any]]:
    """The command's exit status and JSON line: run in this process (its ``main``), or
    as the installed ``verify-audit`` script in a process of its own."""
    if process:
        proc = subprocess.run([str(VERIFY_AUDIT), "--database-url", url],
                              capture_output=True, text=True, timeout=120, check=False)
        status, out = proc.returncode, proc.stdout
    else:
        with redirect_stdout(io.StringIO()) as buffer:
            status = verify_audit_command.main(["--database-url", url])
        out = buffer.getvalue()
    assert status in (0, 1), out
    return status, json.loads(out)


def checkpoint_id(url: str) -> int:
    with psycopg.connect(conninfo(url)) as conn:
        return conn.execute("SELECT max(id) FROM audit_checkpoints").fetchone()[0]


@pytest.mark.parametrize("service", SERVICES)
async def test_an_untouched_trail_verifies_and_says_what_its_checkpoint_covers(
        copy, trails: dict[str, Trail], service: str) -> None:
    trail = trails[service]
    status, line = verify_audit(copy(service), process=service == "grants")
    assert status == 0 and line["ok"] is True and line["first_break"] is None
    assert line["records"] == trail.checkpoint_records + trail.after
    assert line["checkpoint"]["records"] == trail.checkpoint_records
    assert line["checkpoint"]["chains"] == trail.checkpoint_chains
    assert line["checkpoint"]["at"] == CHECKPOINT_AT.isoformat()
    assert line["records_after_checkpoint"] == trail.after > 0
    FIGURES[f"audit chain {service}"] = (
        f"{line['records']} records in {line['chains']} chains; checkpoint covers "
        f"{trail.checkpoint_records} in {trail.checkpoint_chains}")


@pytest.mark.parametrize("service", SERVICES)
async def test_a_changed_row_is_named_as_the_first_broken_link(copy, service: str) -> None:
    url = copy(service)
    kind, ident, _, first = chain(url)
    tamper(url, "UPDATE audit_log SET reason = 'rewritten' WHERE id = %s", first)
    status, line = verify_audit(url, process=service == "grants")
    assert status == 1 and line["ok"] is False
    assert line["first_break"] == (f"audit record {kind}/{ident}#1 (id {first}): "
                                   "content does not match hash")
    assert line["checkpoint"]["id"] == checkpoint_id(url)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_deleted_row_is_named_by_the_gap_it_leaves(copy, service: str) -> None:
    url = copy(service)
    kind, ident, _, first = chain(url)
    tamper(url, "DELETE FROM audit_log WHERE id = %s", first)
    status, line = verify_audit(url)
    assert status == 1
    assert line["first_break"].startswith(f"audit record {kind}/{ident}#2 ")
    assert line["first_break"].endswith(": expected seq 1")


@pytest.mark.parametrize("service", SERVICES)
async def test_a_deleted_chain_the_checkpoint_covers_is_named_by_the_checkpoint(
        copy, service: str) -> None:
    url = copy(service)
    kind, ident, length, _ = chain(url)
    tamper(url, "DELETE FROM audit_log WHERE aggregate_type = %s AND aggregate_id = %s",
           kind, ident)
    status, line = verify_audit(url)
    assert status == 1
    assert line["first_break"] == (f"audit checkpoint {checkpoint_id(url)}: chain "
                                   f"{kind}/{ident} lost or changed record {length}")
