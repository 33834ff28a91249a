"""The scheduler on PostgreSQL with a fake clock: a pilot's whole life (start, an overdue
report, expiry), an overdue decision, and replicas racing on one database: one effect,
one audit record and one event for each action."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from devkit.testing import outbox_rows
from sandbox.models import ApplicationRow, SchedulerRunRow
from sandbox.scheduler import JOBS, Scheduler, advisory_key
from servicekit.audit import AUDIT
from servicekit.clock import FixedClock

from .pilot_life import EXIT, morning, report, run_scheduler
from .world import World

pytestmark = pytest.mark.postgres

TODAY = date(2026, 11, 23)
START = TODAY + timedelta(days=30)  # World.approved's default start: 2026-12-23
JOB = {job.name: job for job in JOBS}


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


def events_of(db: str, subject: str) -> list[tuple[str, str]]:
    """(type without prefix, CloudEvent id) of every outbox row about ``subject``."""
    return [(row["event_type"].removeprefix("vn.gov.most.sandbox.").removesuffix(".v1"),
             row["event_id"]) for row in outbox_rows(db) if row["key"] == subject]


def audit_of(db: str, aggregate_id: str) -> list[tuple[str, str, str | None]]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(AUDIT.c.action, AUDIT.c.actor, AUDIT.c.to_status)
                                .where(AUDIT.c.aggregate_id == aggregate_id)
                                .order_by(AUDIT.c.seq)).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows]


def test_a_pilots_whole_life_runs_itself_on_the_clock(w: World, client: TestClient,
                                                      clock: FixedClock, sandbox_db) -> None:
    pilot_id = w.approved(TODAY)["pilot_id"]
    p = f"/v1/pilots/{pilot_id}"

    clock.set(morning(START - timedelta(days=1)))
    run_scheduler(client)
    assert w.call("GET", p, w.owner, 200)["status"] == "approved"  # not before its day

    clock.set(morning(START))
    run_scheduler(client)
    started = w.call("GET", p, w.owner, 200)
    assert (started["status"], started["started_on"]) == ("active", START.isoformat())
    assert started["next_report_due_on"] == "2027-01-15"  # 2026-Q4 plus 15 days

    clock.set(morning(date(2027, 1, 15)))
    run_scheduler(client)
    assert w.call("GET", p, w.owner, 200)["report_overdue"] is False  # due today
    clock.set(morning(date(2027, 1, 16)))
    run_scheduler(client)
    run_scheduler(client)  # flagged once
    overdue = w.call("GET", p, w.owner, 200)
    assert overdue["report_overdue"] is True and overdue["next_report_due_on"] == "2027-01-15"
    filed = w.call("POST", f"{p}/reports", w.owner, 201, report("2026-Q4"))
    assert filed["filed_late"] is True
    cleared = w.call("GET", p, w.owner, 200)
    assert cleared["report_overdue"] is False and cleared["next_report_due_on"] == "2027-04-15"

    ends_on = date.fromisoformat(cleared["ends_on"])
    clock.set(morning(ends_on))
    run_scheduler(client)
    assert w.call("GET", p, w.owner, 200)["status"] == "active"  # its last day
    clock.set(morning(ends_on + timedelta(days=1)))
    run_scheduler(client)
    expired = w.call("GET", p, w.owner, 200)
    assert (expired["status"], expired["expired_on"]) == (
        "expired", (ends_on + timedelta(days=1)).isoformat())
    assert client.get(f"/v1/register/{pilot_id}").json()["status"] == "expired"

    # The exit report can still be filed and accepted.
    w.call("POST", f"{p}/exit", w.owner, 201, EXIT)
    exited = w.call("POST", f"{p}/exit/accept", w.r1, 200, {"note": "late but complete"})
    assert exited["status"] == "exited" and exited["certificate_no"]
    run_scheduler(client)

    types = [t for t, _ in events_of(sandbox_db, pilot_id)]
    # The earliest report owed is flagged: 2026-Q4, then (once it is in) 2027-Q1.
    assert types == ["pilot.started", "pilot.report_overdue", "pilot.report_filed",
                     "pilot.report_overdue", "pilot.expired", "pilot.exited"]
    scheduled = [(a, s) for a, actor, s in audit_of(sandbox_db, pilot_id)
                 if actor == "system:scheduler"]
    assert scheduled[0] == ("start", "active") and scheduled[-1] == ("expire", "expired")
    assert Counter(a for a, _ in scheduled) == {"start": 1, "report_overdue": 2,
                                                "expire": 1}


def test_a_suspended_pilot_is_not_flagged_and_expires_past_its_end(
        w: World, client: TestClient, clock: FixedClock, sandbox_db) -> None:
    pilot_id = w.approved(TODAY, starts_on=TODAY.isoformat())["pilot_id"]
    w.call("POST", f"/v1/pilots/{pilot_id}/suspend", w.r1, 200, {"reason": "audit"})
    clock.set(morning(date(2027, 2, 1)))
    run_scheduler(client)
    assert w.call("GET", f"/v1/pilots/{pilot_id}", w.pm, 200)["report_overdue"] is False
    ends_on = date.fromisoformat(w.call("GET", f"/v1/pilots/{pilot_id}", w.pm, 200)["ends_on"])
    clock.set(morning(ends_on + timedelta(days=1)))
    run_scheduler(client)
    assert w.call("GET", f"/v1/pilots/{pilot_id}", w.pm, 200)["status"] == "expired"
    assert "pilot.report_overdue" not in [t for t, _ in events_of(sandbox_db, pilot_id)]


def test_an_overdue_decision_is_flagged_once(w: World, client: TestClient, clock: FixedClock,
                                             sandbox_db) -> None:
    app = w.submitted()
    due = date.fromisoformat(app["decision_due_on"])
    clock.set(morning(due + timedelta(days=1)))
    run_scheduler(client)
    run_scheduler(client)
    assert [t for t, _ in events_of(sandbox_db, app["id"])] == [
        "application.submitted", "application.decision_overdue"]
    assert audit_of(sandbox_db, app["id"])[-1] == ("decision_overdue", "system:scheduler",
                                                   "submitted")
    assert w.call("GET", f"/v1/applications/{app['id']}", w.owner, 200)["overdue"] is True


def test_an_application_a_reviewer_holds_is_flagged_at_the_next_run(
        w: World, client: TestClient, clock: FixedClock, sandbox_db) -> None:
    app = w.submitted()
    clock.set(morning(date.fromisoformat(app["decision_due_on"]) + timedelta(days=1)))
    scheduler = Scheduler(client.app.state.kit, runner="busy")
    engine = create_engine(sandbox_db)
    try:
        with engine.connect() as reviewer:  # a reviewer's command holds the row
            reviewer.execute(select(ApplicationRow.id).where(ApplicationRow.id == app["id"])
                             .with_for_update())
            with ThreadPoolExecutor(1) as pool:
                run = pool.submit(scheduler.run_job, JOB["flag_overdue_decisions"])
                try:
                    run.result(timeout=10)  # not held up behind the reviewer
                finally:
                    reviewer.rollback()
    finally:
        engine.dispose()
    assert "application.decision_overdue" not in [t for t, _ in events_of(sandbox_db,
                                                                          app["id"])]
    scheduler.run_job(JOB["flag_overdue_decisions"])
    assert [t for t, _ in events_of(sandbox_db, app["id"])][-1] == \
        "application.decision_overdue"


@pytest.mark.parametrize("exclusive", [True, False], ids=["advisory-lock", "row-locks-only"])
def test_two_replicas_racing_start_each_pilot_once(w: World, client: TestClient,
                                                   clock: FixedClock, sandbox_db,
                                                   exclusive: bool) -> None:
    pilots = [w.approved(TODAY)["pilot_id"] for _ in range(6)]
    clock.set(morning(START))
    kit = client.app.state.kit
    replicas = [Scheduler(kit, runner=f"replica-{i}", batch=2) for i in range(2)]
    gate = threading.Barrier(len(replicas))

    def run(replica: Scheduler) -> int | None:
        gate.wait()
        return replica.run_job(JOB["start_pilots"], exclusive=exclusive)

    with ThreadPoolExecutor(len(replicas)) as pool:
        results = list(pool.map(run, replicas))

    for pilot_id in pilots:
        started = [event_id for t, event_id in events_of(sandbox_db, pilot_id)
                   if t == "pilot.started"]
        assert len(started) == 1, (pilot_id, results)
        assert [a for a, _, _ in audit_of(sandbox_db, pilot_id)].count("start") == 1
        assert w.call("GET", f"/v1/pilots/{pilot_id}", w.pm, 200)["status"] == "active"
    assert sum(r or 0 for r in results) >= len(pilots)  # other tests' pilots may start too


def test_a_job_another_replica_holds_is_skipped(client: TestClient, sandbox_db) -> None:
    engine = create_engine(sandbox_db)
    try:
        with engine.connect() as holder:
            holder.execute(select(func.pg_advisory_lock(advisory_key("expire_pilots"))))
            scheduler = Scheduler(client.app.state.kit, runner="standby")
            assert scheduler.run_job(JOB["expire_pilots"]) is None
            assert scheduler.run_job(JOB["start_pilots"]) is not None  # other jobs run
            holder.execute(select(func.pg_advisory_unlock(advisory_key("expire_pilots"))))
            assert scheduler.run_job(JOB["expire_pilots"]) is not None
    finally:
        engine.dispose()


def test_each_run_is_in_the_days_ledger(w: World, client: TestClient, clock: FixedClock,
                                        sandbox_db) -> None:
    w.approved(TODAY)
    clock.set(morning(date(2027, 3, 1)))
    first = Scheduler(client.app.state.kit, runner="replica-a").run()
    Scheduler(client.app.state.kit, runner="replica-b").run()
    engine = create_engine(sandbox_db)
    try:
        with engine.connect() as conn:
            rows = {r.job: r for r in conn.execute(
                select(SchedulerRunRow.__table__)
                .where(SchedulerRunRow.run_on == date(2027, 3, 1))).all()}
    finally:
        engine.dispose()
    assert set(rows) == set(JOB)
    assert rows["start_pilots"].actions == first["start_pilots"] >= 1  # the second: none
    assert {r.runner for r in rows.values()} == {"replica-b"}
