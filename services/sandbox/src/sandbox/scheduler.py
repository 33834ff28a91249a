"""Supervision that runs itself: the sandbox's scheduler.

Every ``scheduler_seconds`` (the kit runs it with its background work), on the kit's
clock and Vietnam's business days, four jobs in order:

1. ``start_pilots``: approved pilots whose start date has come start (``pilot.started``);
2. ``flag_overdue_reports``: an active pilot whose earliest owed report is past its
   due day is flagged, once for that period (``pilot.report_overdue``); once the report
   is in, the next owed one is flagged in its turn. A suspended pilot owes none;
3. ``flag_overdue_decisions``: an application whose decision clock ran out is flagged,
   once (``application.decision_overdue``);
4. ``expire_pilots``: pilots past their end date with no exit report filed are marked
   expired (``pilot.expired``).

**Several replicas.** A job runs in one replica at a time: it holds a PostgreSQL session
advisory lock for the job while it runs, and another replica finding it taken skips the
job this time. Each action is then its own transaction on one row locked ``FOR UPDATE
SKIP LOCKED`` and re-checked by the domain, so even two runs at the same moment act once:
one state change, one audit record, one event (one CloudEvent id). A failed action is
logged and retried at the next run; a crash loses nothing (nothing is claimed ahead).

Each run adds its action count to ``scheduler_runs`` (one row per job and business day,
naming the replica that last ran it). On SQLite (the embedded default, one process) no
lock is needed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite

from sandbox import handlers
from sandbox.domain.applications import AWAITING_DECISION
from sandbox.domain.pilots import PilotStatus
from sandbox.models import ApplicationRow, ExitRow, PilotRow, SchedulerRunRow
from sandbox.repository import Repository, SqlRepository
from servicekit.audit import SYSTEM_ROLE
from servicekit.auth import Principal
from servicekit.kit import Kit
from servicekit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

SCHEDULER = Principal(sub="system:scheduler", name="scheduler", org="",
                      roles=frozenset({SYSTEM_ROLE}))


@dataclass(frozen=True)
class Job:
    """``candidates(today)``: the ids (the column ``key``) a job may act on today, read
    in pages; ``act``: the action on one of them (False: nothing to do after all)."""

    name: str
    key: Any
    candidates: Callable[[date], Select]
    act: Callable[[UnitOfWork, Repository, str], bool]


def _pilots_starting(today: date) -> Select:
    return select(PilotRow.id).where(PilotRow.status == PilotStatus.APPROVED.value,
                                     PilotRow.starts_on <= today)


def _reports_overdue(today: date) -> Select:
    return select(PilotRow.id).where(PilotRow.status == PilotStatus.ACTIVE.value,
                                     PilotRow.next_report_due_on < today,
                                     PilotRow.report_overdue.is_(False))


def _decisions_overdue(today: date) -> Select:
    return select(ApplicationRow.id).where(
        ApplicationRow.status.in_([s.value for s in AWAITING_DECISION]),
        ApplicationRow.decision_due_on < today,
        ApplicationRow.decision_overdue_flagged_on.is_(None))


def _pilots_ended(today: date) -> Select:
    return select(PilotRow.id).where(
        PilotRow.status.in_([PilotStatus.ACTIVE.value, PilotStatus.SUSPENDED.value]),
        PilotRow.ends_on < today,
        ~exists().where(ExitRow.pilot_id == PilotRow.id))


JOBS = (
    Job("start_pilots", PilotRow.id, _pilots_starting, handlers.start_pilot),
    Job("flag_overdue_reports", PilotRow.id, _reports_overdue,
        handlers.flag_report_overdue),
    Job("flag_overdue_decisions", ApplicationRow.id, _decisions_overdue,
        handlers.flag_decision_overdue),
    Job("expire_pilots", PilotRow.id, _pilots_ended, handlers.expire_pilot),
)


def advisory_key(job: str) -> int:
    """A stable signed 64-bit advisory lock key for ``scheduler:sandbox:<job>``."""
    digest = hashlib.sha256(f"scheduler:sandbox:{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Scheduler:
    """Runs the jobs on ``kit``'s database and clock; ``runner`` names this replica."""

    def __init__(self, kit: Kit, *, runner: str | None = None, batch: int = 200) -> None:
        self.kit = kit
        self.runner = runner or f"{socket.gethostname()}:{os.getpid()}"
        self.batch = batch
        self._postgres = kit.engine.dialect.name == "postgresql"

    def run(self) -> dict[str, int | None]:
        """Every job, in order: actions taken per job (None: another replica runs it)."""
        return {job.name: self.run_job(job) for job in JOBS}

    def run_job(self, job: Job, *, exclusive: bool = True) -> int | None:
        """One job's run: how many actions it took, or None when another replica holds
        it. ``exclusive=False`` skips the lock (the row locks still act once)."""
        started_at = self.kit.clock.now()
        today = self.kit.today()
        with self._exclusively(job.name, exclusive) as mine:
            if not mine:
                return None
            actions, after = 0, ""
            while True:
                with self.kit.sessions() as session:
                    ids = list(session.execute(
                        job.candidates(today).where(job.key > after)
                        .order_by(job.key).limit(self.batch)).scalars())
                for item in ids:
                    actions += self._act(job, item)
                if len(ids) < self.batch:
                    break
                after = ids[-1]
            self._record_run(job.name, today, started_at, actions)
        if actions:
            log.info("scheduler %s: %s took %d action(s)", self.runner, job.name, actions)
        return actions

    def _act(self, job: Job, item: str) -> int:
        with self.kit.sessions() as session:
            uow = UnitOfWork(self.kit, session, SCHEDULER)
            try:
                if not job.act(uow, SqlRepository(session), item):
                    session.rollback()
                    return 0
                uow.commit(None)
            except Exception:
                session.rollback()
                log.exception("scheduler %s: %s failed on %s; retried at the next run",
                              self.runner, job.name, item)
                return 0
        return 1

    @contextmanager
    def _exclusively(self, job: str, exclusive: bool) -> Iterator[bool]:
        """Hold ``job``'s advisory lock (PostgreSQL) while the body runs; yields whether
        this replica has it."""
        if not (exclusive and self._postgres):
            yield True
            return
        key = advisory_key(job)
        conn = self.kit.engine.connect()
        try:
            got = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar())
            conn.commit()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        try:
            yield got
        finally:
            if got:
                try:
                    conn.execute(select(func.pg_advisory_unlock(key)))
                    conn.commit()
                except Exception:
                    # Ending the database session releases the lock.
                    log.warning("scheduler %s: unlocking %s failed", self.runner, job,
                                exc_info=True)
                    conn.invalidate()
            conn.close()

    def _record_run(self, job: str, today: date, started_at: datetime, actions: int
                    ) -> None:
        table = SchedulerRunRow.__table__
        with self.kit.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(table).values(
                job=job, run_on=today, runner=self.runner, started_at=started_at,
                finished_at=self.kit.clock.now(), actions=actions)
            conn.execute(statement.on_conflict_do_update(
                index_elements=[table.c.job, table.c.run_on],
                set_={"runner": statement.excluded.runner,
                      "started_at": statement.excluded.started_at,
                      "finished_at": statement.excluded.finished_at,
                      "actions": table.c.actions + statement.excluded.actions}))

