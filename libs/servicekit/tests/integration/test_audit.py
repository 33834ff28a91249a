"""The hash-chained audit trail on PostgreSQL: tampering is refused and detected."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from servicekit import audit, verify_audit

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PM = audit.Actor(id="pm-1", role="program_manager", org="MOST")


def write_trail(engine) -> None:
    with Session(engine) as session:
        for i, agg in enumerate(["call-1", "call-2", "call-1", "call-1", "call-2"]):
            audit.append(session, aggregate_type="call", aggregate_id=agg, actor=PM,
                         action=f"step-{i}", at=T0 + timedelta(minutes=i),
                         from_status="draft", to_status="open", reason=f"because {i}",
                         data={"amount_vnd": 1_000_000_007 + i})
        audit.checkpoint(session, T0 + timedelta(hours=1))
        session.commit()


def tamper(engine, sql: str) -> None:
    """Bypass the append-only triggers as a superuser with direct access could."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql))


def verify(engine) -> audit.ChainReport:
    with Session(engine) as session:
        return audit.verify(session)


def test_an_untouched_trail_verifies(kit_engine):
    write_trail(kit_engine)
    report = verify(kit_engine)
    assert (report.ok, report.records, report.chains, report.first_break) == (True, 5, 2, None)
    assert report.checkpoint is not None
    assert (report.checkpoint.records, report.checkpoint.chains) == (5, 2)
    assert report.checkpoint.at == T0 + timedelta(hours=1)


def test_a_broken_trail_still_says_what_the_latest_checkpoint_covers(kit_engine):
    write_trail(kit_engine)
    with Session(kit_engine) as session:
        audit.append(session, aggregate_type="call", aggregate_id="call-3", actor=PM,
                     action="draft", at=T0 + timedelta(hours=2))
        audit.checkpoint(session, T0 + timedelta(hours=3))
        session.commit()
    tamper(kit_engine, "UPDATE audit_log SET reason = 'x' WHERE aggregate_id = 'call-1'")
    report = verify(kit_engine)
    assert not report.ok and report.first_break.startswith("audit record call/call-1#1")
    assert report.checkpoint is not None
    assert (report.checkpoint.records, report.checkpoint.chains) == (6, 3)
    assert report.checkpoint.at == T0 + timedelta(hours=3)


def test_a_trail_without_a_checkpoint_says_so(kit_engine):
    with Session(kit_engine) as session:
        audit.append(session, aggregate_type="call", aggregate_id="call-1", actor=PM,
                     action="draft", at=T0)
        session.commit()
    report = verify(kit_engine)
    assert report.ok and report.checkpoint is None


@pytest.mark.parametrize(
    "change",
    [
        "actor = 'someone-else'",
        "role = 'admin'",
        "at = at + interval '1 second'",
        "action = 'forged'",
        "from_status = 'closed'",
        "to_status = 'closed'",
        "reason = 'rewritten'",
        "data = '{\"amount_vnd\": 1}'",
        "aggregate_id = 'call-9'",
    ],
)
@pytest.mark.parametrize("seq", [1, 2, 3])
def test_altering_any_stored_audit_row_is_detected(kit_engine, change, seq):
    write_trail(kit_engine)
    tamper(kit_engine, f"UPDATE audit_log SET {change} "
                       f"WHERE aggregate_id = 'call-1' AND seq = {seq}")
    report = verify(kit_engine)
    assert not report.ok
    assert report.first_break is not None


def test_a_rehashed_forgery_breaks_the_next_link(kit_engine):
    write_trail(kit_engine)
    with Session(kit_engine) as session:
        row = session.execute(text(
            "SELECT * FROM audit_log WHERE aggregate_id='call-1' AND seq=2")).one()
        forged = dict(row._mapping, reason="forged")
        forged_hash = audit._record_hash(type("R", (), forged))
    tamper(kit_engine, f"UPDATE audit_log SET reason='forged', hash='{forged_hash}' "
                       "WHERE aggregate_id='call-1' AND seq=2")
    report = verify(kit_engine)
    assert not report.ok
    assert "call/call-1#3" in (report.first_break or "")


def test_deleting_a_whole_chain_is_detected_by_the_checkpoint(kit_engine):
    write_trail(kit_engine)
    tamper(kit_engine, "DELETE FROM audit_log WHERE aggregate_id = 'call-2'")
    report = verify(kit_engine)
    assert not report.ok
    assert "call/call-2" in (report.first_break or "")


def test_deleting_the_tail_of_a_chain_is_detected_by_the_checkpoint(kit_engine):
    write_trail(kit_engine)
    tamper(kit_engine, "DELETE FROM audit_log WHERE aggregate_id = 'call-1' AND seq = 3")
    assert not verify(kit_engine).ok


@pytest.mark.parametrize("sql", [
    "UPDATE audit_log SET reason = 'x'",
    "DELETE FROM audit_log",
    "UPDATE audit_checkpoints SET records = 0",
])
def test_the_database_refuses_updates_and_deletes_of_audit_rows(kit_engine, sql):
    write_trail(kit_engine)
    with pytest.raises(DBAPIError, match="append-only"), kit_engine.begin() as conn:
        conn.execute(text(sql))
    assert verify(kit_engine).ok


def test_history_pages_through_one_aggregate_in_order(kit_engine):
    write_trail(kit_engine)
    with Session(kit_engine) as session:
        first = audit.history(session, "call", "call-1", limit=2)
        second = audit.history(session, "call", "call-1", limit=2, cursor=first.next_cursor)
    assert [e.action for e in first.items] == ["step-0", "step-2"]
    assert [e.action for e in second.items] == ["step-3"]
    assert second.next_cursor is None
    assert first.items[0].actor == "pm-1" and first.items[0].reason == "because 0"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = verify_audit.main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_the_command_line_check_reports_and_exits_by_the_trail(kit_engine, capsys,
                                                               monkeypatch):
    url = kit_engine.url.render_as_string(hide_password=False)
    write_trail(kit_engine)
    monkeypatch.setenv("KIT_DATABASE_URL", url)

    status, out, _ = run_cli(capsys, "--service", "kit")
    assert status == 0
    line = json.loads(out)
    assert line | {"checked_at": None, "checkpoint": None} == {
        "ok": True, "records": 5, "chains": 2, "first_break": None, "checked_at": None,
        "checkpoint": None, "records_after_checkpoint": 0}
    assert line["checkpoint"] | {"id": None, "hash": None} == {
        "id": None, "at": "2026-11-23T10:00:00+00:00", "records": 5, "chains": 2,
        "hash": None}

    tamper(kit_engine, "UPDATE audit_log SET reason = 'rewritten' "
                       "WHERE aggregate_id = 'call-2' AND seq = 1")
    status, out, _ = run_cli(capsys, "--database-url", url)
    assert status == 1
    line = json.loads(out)
    assert line["ok"] is False and "call-2" in line["first_break"]
    assert line["checkpoint"]["records"] == 5 and line["records_after_checkpoint"] is None


def test_the_command_line_check_exits_2_when_it_cannot_read(capsys, monkeypatch):
    monkeypatch.delenv("NOWHERE_DATABASE_URL", raising=False)
    assert run_cli(capsys, "--service", "nowhere")[0] == 2

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, out, err = run_cli(capsys, "--database-url",
                               f"postgresql://auditor:secret@127.0.0.1:{port}/none")
    assert status == 2 and out == ""
    assert "cannot read" in err and "secret" not in err
