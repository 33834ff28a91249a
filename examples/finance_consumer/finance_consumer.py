#!/usr/bin/env python3
"""Reference finance consumer: ipshare distribution events → payment batch files.

A starting point for a ministry (or institution) finance team. It reads
``ipshare.events.v1`` from Kafka as its own consumer group, validates every message as a
CloudEvents 1.0 structured event, and turns each run's new distributions into

- ``batch-<UTC timestamp>.csv``   cash payment instructions, one row per payee line
  (``payee_id,payee_kind,amount_vnd,reference,event_id,distribution_id``); a
  ``distribution.reversed`` becomes negative (claw-back) rows in the batch of the run that
  reads it;
- ``in-kind-register.csv``        entitlements of ``in_kind`` distributions (spin-offs:
  the researchers' share of a contributed result is not cash), reversals negative;
- ``rejects.jsonl``               messages that are not valid finance events — never paid;
- ``paid.db``                     the SQLite ledger of every event already paid.

It never pays an event twice: Kafka delivers at least once, and the ledger makes the
program idempotent by CloudEvent ``id``. The order of the steps in one run (see
``run_cycle`` and README.md) is what makes a crash at any point safe.

Usage::

    python finance_consumer.py --bootstrap localhost:9092 --out /srv/payments --once

Only ``kafka-python`` and the ``cloudevents`` SDK are needed besides the standard library.
Money is integer đồng throughout (signed 64 bits, as SQLite stores it); a float anywhere
in an amount rejects the event.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import hashlib
import json
import logging
import os
import reprlib
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudevents.core.bindings.kafka import KafkaMessage, from_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

log = logging.getLogger("finance_consumer")

TOPIC = "ipshare.events.v1"
DEFAULT_GROUP = "finance-payments"
SOURCE = "/ipshare"
POSTED = "vn.gov.most.ipshare.distribution.posted.v1"
REVERSED = "vn.gov.most.ipshare.distribution.reversed.v1"
PAYEE_KINDS = frozenset({"researcher", "institution"})

BATCH_HEADER = ("payee_id", "payee_kind", "amount_vnd", "reference", "event_id",
                "distribution_id")
REGISTER_HEADER = (*BATCH_HEADER, "run")
LEDGER_FILE = "paid.db"
REGISTER_FILE = "in-kind-register.csv"
REJECTS_FILE = "rejects.jsonl"
LOCK_FILE = ".lock"
# Amounts, and a run's cash total, are SQLite integers: signed 64 bits.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# --- what arrives and what it means --------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """One Kafka record, independent of the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (a record with a null value)
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Line:
    payee_id: str
    payee_kind: str
    amount_vnd: int


@dataclass(frozen=True)
class Distribution:
    """A validated ``distribution.posted`` or ``distribution.reversed`` event."""

    event_id: str
    kind: str  # "posted" | "reversed"
    distribution_id: str
    reference: str
    in_kind: bool
    gross_vnd: int
    lines: tuple[Line, ...]
    content_sha256: str = ""  # of the canonical event: tells a redelivery from a reused id


class Invalid(ValueError):
    """The message is not a finance event this program can pay; it goes to rejects."""


def _show(value: Any) -> str:
    """A short, bounded ``repr`` of foreign data for a reason (no deep recursion)."""
    return reprlib.repr(value)


def _int(data: dict[str, Any], name: str, where: str = "data") -> int:
    value = data.get(name)
    # bool is an int subclass in Python; 1.0 and "1" are not money here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{where}.{name} must be an integer number of đồng, got {_show(value)}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise Invalid(f"{where}.{name} is outside the signed 64-bit range, got {_show(value)}")
    return value


def _text(data: dict[str, Any], name: str, where: str = "data") -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{where}.{name} must be a non-empty string, got {_show(value)}")
    return value


def _json(value: bytes | None) -> Any:
    """The JSON of a message. Raises ``Invalid`` for anything parsing foreign bytes can
    fail on."""
    if value is None:
        raise Invalid("the record has no value (a tombstone)")
    try:
        return json.loads(value)
    except RecursionError as exc:
        raise Invalid("not JSON this program reads: nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"not JSON: {exc}") from exc


def _canonical(raw: Any) -> bytes:
    """One encoding of a JSON value (sorted keys, no spaces, UTF-8). Raises ``Invalid``
    when a string is not valid Unicode (a lone surrogate such as ``"\\ud800"``)."""
    try:
        return json.dumps(raw, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode("utf-8")
    except RecursionError as exc:
        raise Invalid("not JSON this program reads: nested too deeply") from exc
    except UnicodeEncodeError as exc:
        raise Invalid(f"a string is not valid Unicode: {exc}") from exc


def content_sha256(value: bytes | None) -> str | None:
    """SHA-256 of the canonical event, or of the bytes when they are not valid JSON."""
    if value is None:
        return None
    try:
        canonical = _canonical(_json(value))
    except Invalid:
        canonical = value
    return hashlib.sha256(canonical).hexdigest()


def event_id_of(value: bytes | None) -> str | None:
    """The ``id`` of a message that may not even be valid (for the rejects file); None
    when there is none or it is not valid Unicode."""
    with contextlib.suppress(Invalid):
        raw = _json(value)
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            _canonical(raw["id"])
            return raw["id"]
    return None


def parse(message: Message) -> Distribution | None:
    """Validate one message. ``None``: a valid CloudEvent that is not a payment event
    (``asset.registered``, ``agreement.signed``, …), skipped. Raises ``Invalid``."""
    raw = _json(message.value)
    canonical = _canonical(raw)  # every string valid Unicode, so every text can be stored
    if not isinstance(raw, dict):
        raise Invalid("not a structured CloudEvent: the value is not a JSON object")
    if raw.get("specversion") != "1.0":  # the SDK would assume 1.0 when it is missing
        raise Invalid(f"specversion must be '1.0', got {_show(raw.get('specversion'))}")
    try:
        event = from_structured(
            KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value),
            JSONFormat(), CloudEvent)
    except Exception as exc:  # the SDK raises several kinds; all mean "invalid"
        raise Invalid(f"not a valid CloudEvents 1.0 event: {exc}") from exc

    if event.get_type() == POSTED:
        kind = "posted"
    elif event.get_type() == REVERSED:
        kind = "reversed"
    else:
        return None
    if event.get_source() != SOURCE:
        raise Invalid(f"a distribution event must come from {SOURCE}, "
                      f"not {event.get_source()!r}")
    if event.get_datacontenttype() not in (None, "application/json"):
        raise Invalid(f"datacontenttype must be application/json, "
                      f"got {event.get_datacontenttype()!r}")
    data = event.get_data()
    if not isinstance(data, dict):
        raise Invalid("data must be a JSON object")

    distribution_id = _text(data, "distribution_id")
    if event.get_subject() != distribution_id:
        raise Invalid(f"subject {event.get_subject()!r} is not the distribution id "
                      f"{distribution_id!r}")
    reference = _text(data, "reference")
    in_kind = data.get("in_kind")
    if not isinstance(in_kind, bool):
        raise Invalid(f"data.in_kind must be true or false, got {_show(in_kind)}")
    gross = _int(data, "gross_vnd")
    pool = _int(data, "researcher_pool_vnd")
    institution = _int(data, "institution_vnd")
    raw_lines = data.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise Invalid("data.lines must be a non-empty list")
    lines = []
    for i, ln in enumerate(raw_lines):
        where = f"data.lines[{i}]"
        if not isinstance(ln, dict):
            raise Invalid(f"{where} must be an object")
        payee_kind = _text(ln, "payee_kind", where)
        if payee_kind not in PAYEE_KINDS:
            raise Invalid(f"{where}.payee_kind must be one of {sorted(PAYEE_KINDS)}")
        lines.append(Line(_text(ln, "payee_id", where), payee_kind,
                          _int(ln, "amount_vnd", where)))

    # The identities every distribution satisfies: lines are the income, exactly.
    if sum(ln.amount_vnd for ln in lines) != gross:
        raise Invalid(f"lines sum to {sum(ln.amount_vnd for ln in lines)}, "
                      f"not gross_vnd {gross}")
    if sum(ln.amount_vnd for ln in lines if ln.payee_kind == "researcher") != pool:
        raise Invalid("researcher lines do not sum to researcher_pool_vnd")
    if sum(ln.amount_vnd for ln in lines if ln.payee_kind == "institution") != institution:
        raise Invalid("institution lines do not sum to institution_vnd")
    if kind == "posted" and (gross <= 0 or any(ln.amount_vnd < 0 for ln in lines)):
        raise Invalid("a posted distribution has a positive gross and no negative line")
    if kind == "reversed":
        _text(data, "reversal_id")
        if gross >= 0 or any(ln.amount_vnd > 0 for ln in lines):
            raise Invalid("a reversal carries negated amounts: negative gross, no positive "
                          "line")
    return Distribution(event_id=event.get_id(), kind=kind, distribution_id=distribution_id,
                        reference=reference, in_kind=in_kind, gross_vnd=gross,
                        lines=tuple(lines),
                        content_sha256=hashlib.sha256(canonical).hexdigest())


# --- the ledger of what has been paid -----------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS paid (
    event_id        TEXT PRIMARY KEY,
    batch           TEXT NOT NULL,      -- the file its rows went to
    at              TEXT NOT NULL,
    run             TEXT NOT NULL REFERENCES runs(run),
    distribution_id TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('posted', 'reversed')),
    in_kind         INTEGER NOT NULL,
    gross_vnd       INTEGER NOT NULL,
    UNIQUE (distribution_id, kind)      -- a distribution is paid once, clawed back once
);
CREATE TABLE IF NOT EXISTS paid_lines (
    event_id        TEXT NOT NULL REFERENCES paid(event_id),
    seq             INTEGER NOT NULL,
    payee_id        TEXT NOT NULL,
    payee_kind      TEXT NOT NULL,
    amount_vnd      INTEGER NOT NULL,
    reference       TEXT NOT NULL,
    distribution_id TEXT NOT NULL,
    PRIMARY KEY (event_id, seq)
);
CREATE TABLE IF NOT EXISTS runs (
    run             TEXT PRIMARY KEY,   -- UTC timestamp, sorts in time order
    at              TEXT NOT NULL,
    batch_file      TEXT,               -- NULL when the run had no cash rows
    cash_rows       INTEGER NOT NULL,
    cash_total_vnd  INTEGER NOT NULL,
    in_kind_rows    INTEGER NOT NULL,
    written         INTEGER NOT NULL DEFAULT 0  -- 1 once all its files are in place
);
CREATE TABLE IF NOT EXISTS rejected (
    topic           TEXT NOT NULL,
    partition       INTEGER NOT NULL,
    "offset"        INTEGER NOT NULL,
    event_id        TEXT,
    reason          TEXT NOT NULL,
    at              TEXT NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
"""

# Columns added after the first version: a ledger written by it gains them on open (fresh
# ledgers too, so both end with the same schema). The UPDATE gives the old rows their value.
COLUMNS = (
    # SHA-256 of the canonical event that was paid or rejected under this id (NULL: paid or
    # rejected by the first version, which did not record it)
    ("paid", "content_sha256", "TEXT", None),
    ("rejected", "content_sha256", "TEXT", None),
    # the run's batch file: 'pending' (never renamed into place), 'staged' (the temp file
    # is complete and fsynced; the rename may have happened), 'done' (renamed, or collected
    # since), 'legacy' (unknown: the run was interrupted under the first version);
    # NULL when the run has no batch file
    ("runs", "batch_state",
     "TEXT CHECK (batch_state IN ('pending', 'staged', 'done', 'legacy'))",
     "UPDATE runs SET batch_state = CASE WHEN batch_file IS NULL THEN NULL "
     "WHEN written = 1 THEN 'done' ELSE 'legacy' END"),
    # 0 while the in-kind register may lack this run's rows
    ("runs", "register_written", "INTEGER NOT NULL DEFAULT 1",
     "UPDATE runs SET register_written = 0 WHERE written = 0 AND in_kind_rows > 0"),
)
INDEXES = "CREATE INDEX IF NOT EXISTS rejected_event_id ON rejected (event_id);"
# ``runs.written``: 1 once every file of the run is in place (kept for existing queries).
_WRITTEN = ("UPDATE runs SET written = 1 WHERE written = 0 AND register_written = 1 "
            "AND coalesce(batch_state, 'done') = 'done'")


@dataclass(frozen=True)
class Posting:
    event_id: str
    in_kind: bool
    lines: tuple[Line, ...]


class Ledger:
    """``paid.db``: the events already paid, their rows, and each run's files."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)  # explicit transactions
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        with self.transaction() as db:
            for table, column, definition, fill in COLUMNS:
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                    if fill:
                        db.execute(fill)
            db.execute(INDEXES)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def paid_content(self, event_id: str) -> tuple[bool, str | None]:
        """Whether ``event_id`` is paid, and the SHA-256 of the content paid under it."""
        row = self.db.execute("SELECT content_sha256 FROM paid WHERE event_id = ?",
                              (event_id,)).fetchone()
        return (row is not None, row[0] if row else None)

    def rejected_contents(self, event_id: str) -> set[str]:
        """The SHA-256s of the contents rejected under ``event_id``."""
        return {row[0] for row in self.db.execute(
            "SELECT content_sha256 FROM rejected WHERE event_id = ? "
            "AND content_sha256 IS NOT NULL", (event_id,))}

    def paid_event(self, distribution_id: str, kind: str) -> str | None:
        row = self.db.execute("SELECT event_id FROM paid WHERE distribution_id = ? AND kind = ?",
                              (distribution_id, kind)).fetchone()
        return row[0] if row else None

    def posting(self, distribution_id: str) -> Posting | None:
        row = self.db.execute(
            "SELECT event_id, in_kind FROM paid WHERE distribution_id = ? AND kind = 'posted'",
            (distribution_id,)).fetchone()
        if row is None:
            return None
        lines = self.db.execute(
            "SELECT payee_id, payee_kind, amount_vnd FROM paid_lines WHERE event_id = ? "
            "ORDER BY seq", (row[0],)).fetchall()
        return Posting(row[0], bool(row[1]), tuple(Line(*ln) for ln in lines))

    def was_rejected(self, message: Message) -> bool:
        return self.db.execute(
            'SELECT 1 FROM rejected WHERE topic = ? AND partition = ? AND "offset" = ?',
            (message.topic, message.partition, message.offset)).fetchone() is not None

    def batch_rows(self, run: str) -> list[tuple[Any, ...]]:
        """The cash rows of one run, in the order they were read."""
        return self.db.execute(
            "SELECT l.payee_id, l.payee_kind, l.amount_vnd, l.reference, l.event_id, "
            "l.distribution_id FROM paid_lines l JOIN paid p USING (event_id) "
            "WHERE p.run = ? AND p.in_kind = 0 AND l.amount_vnd <> 0 "
            "ORDER BY p.rowid, l.seq", (run,)).fetchall()

    def register_rows(self) -> list[tuple[Any, ...]]:
        """Every in-kind row ever recorded, oldest first."""
        return self.db.execute(
            "SELECT l.payee_id, l.payee_kind, l.amount_vnd, l.reference, l.event_id, "
            "l.distribution_id, p.run FROM paid_lines l JOIN paid p USING (event_id) "
            "WHERE p.in_kind = 1 AND l.amount_vnd <> 0 ORDER BY p.rowid, l.seq").fetchall()

    def unfinished_batches(self) -> list[tuple[str, str, str]]:
        return self.db.execute("SELECT run, batch_file, batch_state FROM runs "
                               "WHERE batch_state IN ('pending', 'staged', 'legacy') "
                               "ORDER BY run").fetchall()

    def register_stale(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT run FROM runs WHERE register_written = 0 ORDER BY run")]

    def set_batch_state(self, run: str, state: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET batch_state = ? WHERE run = ?", (state, run))
            db.execute(_WRITTEN)

    def register_done(self) -> None:
        """The register just written holds every in-kind row the ledger has."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET register_written = 1 WHERE register_written = 0")
            db.execute(_WRITTEN)


# --- files -------------------------------------------------------------------------------

def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_of(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (a dot file)."""
    return path.with_name(f".{path.name}.tmp")


def write_temp(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write the CSV to ``path``'s temp file, whole and durable (the file and its directory
    entry fsynced); return the temp file."""
    tmp = temp_of(path)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(path.parent)
    return tmp


def rename_into_place(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_atomically(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write a CSV whole or not at all: temp file, fsync, rename, fsync the directory."""
    rename_into_place(write_temp(path, header, rows), path)


def append_rejects(path: Path, entries: Sequence[dict[str, Any]]) -> None:
    """Append whole lines in one write. If an earlier append was cut short (kill -9, power
    cut) the file does not end with a newline: start on a new line, so that only the torn
    line is broken, never the next one."""
    data = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = "\n" + data
        view = memoryview(data.encode("utf-8"))
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


# --- Kafka -----------------------------------------------------------------------------

class KafkaSource:
    """``ipshare.events.v1`` as one consumer group; offsets committed only when told."""

    def __init__(self, bootstrap: str, topic: str = TOPIC, group: str = DEFAULT_GROUP, *,
                 replay: bool = False, client_id: str = "finance-consumer",
                 topic_timeout: float = 60.0) -> None:
        # Imported here so that parsing and the ledger need no Kafka client.
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        self.topic = topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
            enable_auto_commit=False,        # we commit after the ledger, never before
            auto_offset_reset="earliest",    # a new group starts from the first event
            max_poll_records=500,
        )
        consumer = self.consumer

        class FromTheBeginning(ConsumerRebalanceListener):
            """``--replay``: seek to the beginning on the first assignment only."""

            pending = replay

            def on_partitions_revoked(self, revoked):
                pass

            def on_partitions_assigned(self, assigned):
                if self.pending and assigned:
                    consumer.seek_to_beginning(*assigned)
                    self.pending = False

        # Know the topic's partitions before joining the group: a member that joins while
        # its client has no metadata for the topic can be left with no partitions.
        deadline = time.monotonic() + topic_timeout
        while not self.consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                self.consumer.close(autocommit=False)
                raise RuntimeError(f"topic {topic} not found on {bootstrap}")
            time.sleep(0.2)
        self.consumer.subscribe(topics=[topic], listener=FromTheBeginning())

    def poll_until_idle(self, *, idle_seconds: float, max_seconds: float,
                        join_timeout: float = 60.0,
                        stop: threading.Event | None = None) -> list[Message]:
        """Everything that arrives until nothing came for ``idle_seconds`` and every
        assigned partition is read to its end (or ``max_seconds`` passed)."""
        start = last = time.monotonic()
        out: dict[tuple[str, int, int], Message] = {}  # a rebalance may fetch twice
        while stop is None or not stop.is_set():
            polled = self.consumer.poll(timeout_ms=200)
            now = time.monotonic()
            records = [r for rs in polled.values() for r in rs]
            if records:
                for r in records:
                    out[(r.topic, r.partition, r.offset)] = Message(
                        r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                last = now
            elif not self.consumer.assignment():  # still joining the group
                if now - start > join_timeout:
                    raise RuntimeError(f"no partition of {self.topic} assigned after "
                                       f"{join_timeout:.0f}s")
                last = now
            elif now - last >= idle_seconds and self._caught_up():
                break
            if now - start >= max_seconds:
                break
        # Per partition in offset order: Kafka's order within a key (a distribution).
        return [out[k] for k in sorted(out)]

    def _caught_up(self) -> bool:
        assigned = list(self.consumer.assignment())
        ends = self.consumer.end_offsets(assigned)
        return all(self.consumer.position(tp) >= ends[tp] for tp in assigned)

    def commit(self, messages: Sequence[Message]) -> bool:
        """Commit the offsets past ``messages``. A failure (a rebalance) is harmless: the
        events come again and the ledger skips them."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        upto: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            upto[tp] = max(upto.get(tp, -1), m.offset + 1)
        if not upto:
            return True
        try:
            self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in upto.items()})
        except KafkaError as exc:
            log.warning("offset commit failed (%s); these events will be redelivered and "
                        "skipped as already paid", exc)
            return False
        return True

    def rewind(self, messages: Sequence[Message]) -> None:
        """Read ``messages`` again in the next run: seek each of their partitions back to
        the first of them (a partition no longer assigned restarts from its committed
        offset anyway)."""
        from kafka.structs import TopicPartition

        first: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            first[tp] = min(first.get(tp, m.offset), m.offset)
        assigned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    def close(self) -> None:
        self.consumer.close(autocommit=False)


# --- one run -------------------------------------------------------------------------------

@dataclass
class RunReport:
    run: str
    batch_file: str | None = None
    cash_rows: int = 0
    cash_total_vnd: int = 0
    in_kind_rows: int = 0
    paid_events: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0
    deferred: int = 0
    recovered_runs: list[str] = field(default_factory=list)
    offsets_committed: bool = False


def new_run_id(ledger: Ledger) -> str:
    """``20261123T090000.123456Z``: UTC, microseconds, sorts in time order, unique."""
    while True:
        run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        if ledger.db.execute("SELECT 1 FROM runs WHERE run = ?", (run,)).fetchone() is None:
            return run
        time.sleep(0.000_01)


@dataclass
class _Decisions:
    accepted: list[Distribution] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[Message] = field(default_factory=list)  # for the next run
    duplicates: int = 0
    ignored: int = 0


def _against_history(d: Distribution, ledger: Ledger,
                     run_postings: dict[str, Distribution],
                     run_reversals: set[str]) -> str | None:
    """Why ``d`` must not be paid given what was paid before, or None."""
    if d.kind == "posted":
        earlier = ledger.paid_event(d.distribution_id, "posted") or (
            run_postings[d.distribution_id].event_id
            if d.distribution_id in run_postings else None)
        if earlier:
            return (f"distribution {d.distribution_id} was already paid under event "
                    f"{earlier}; a second posting event for it is not paid")
        return None
    earlier = ledger.paid_event(d.distribution_id, "reversed")
    if earlier or d.distribution_id in run_reversals:
        return (f"distribution {d.distribution_id} was already clawed back"
                + (f" under event {earlier}" if earlier else ""))
    posting = ledger.posting(d.distribution_id)
    if posting is None and d.distribution_id in run_postings:
        p = run_postings[d.distribution_id]
        posting = Posting(p.event_id, p.in_kind, p.lines)
    if posting is None:
        return (f"reversal of distribution {d.distribution_id}, which this consumer never "
                f"paid: nothing to claw back")
    if posting.in_kind != d.in_kind:
        return "the reversal's in_kind differs from the posting's"
    negated = Counter(Line(ln.payee_id, ln.payee_kind, -ln.amount_vnd) for ln in posting.lines)
    if Counter(d.lines) != negated:
        return (f"the reversal's lines are not the negated lines of the posting "
                f"{posting.event_id}")
    return None


def _already_known(d: Distribution, ledger: Ledger, run_accepted: dict[str, str],
                   run_rejected: dict[str, set[str]]) -> bool:
    """True: ``d`` is a redelivery of an event already paid. Raises ``Invalid`` when its id
    was paid or rejected with other content: an id names one event, never two."""
    if d.event_id in run_accepted:
        paid, earlier = True, run_accepted[d.event_id]
    else:
        paid, earlier = ledger.paid_content(d.event_id)
    if paid:
        # ``earlier`` is None for an event paid by the first version (no hash recorded).
        if earlier is not None and earlier != d.content_sha256:
            raise Invalid(f"event id {d.event_id} reused with different content: an event "
                          f"with this id and other content was already paid")
        return True
    others = (run_rejected.get(d.event_id, set()) | ledger.rejected_contents(d.event_id))
    if others - {d.content_sha256}:
        raise Invalid(f"event id {d.event_id} reused with different content: a message "
                      f"with this id and other content was rejected")
    return False


def _safe(text: str) -> str:
    """Text that can be written as UTF-8 (a lone surrogate becomes ``\\udXXX``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def classify(messages: Sequence[Message], ledger: Ledger) -> _Decisions:
    out = _Decisions()
    run_accepted: dict[str, str] = {}  # event id → content hash
    run_rejected: dict[str, set[str]] = {}
    run_postings: dict[str, Distribution] = {}
    run_reversals: set[str] = set()
    run_cash_total = 0
    full: set[tuple[str, int]] = set()  # partitions whose remaining messages wait
    at = datetime.now(UTC).isoformat()
    for m in messages:
        if (m.topic, m.partition) in full:
            out.deferred.append(m)
            continue
        try:
            d = parse(m)
            if d is None:
                out.ignored += 1
                continue
            if _already_known(d, ledger, run_accepted, run_rejected):
                out.duplicates += 1  # at-least-once delivery: this event is already paid
                continue
            problem = _against_history(d, ledger, run_postings, run_reversals)
            if problem:
                raise Invalid(problem)
            if not d.in_kind and not INT64_MIN <= run_cash_total + d.gross_vnd <= INT64_MAX:
                # The run's total (runs.cash_total_vnd) would not fit: this event, and the
                # rest of its partition (Kafka's order), go to the next run's batch.
                full.add((m.topic, m.partition))
                out.deferred.append(m)
                continue
        except Invalid as exc:
            if ledger.was_rejected(m):  # a replayed offset is not a new reject
                out.duplicates += 1
            else:
                event_id = event_id_of(m.value)
                digest = content_sha256(m.value)
                if event_id is not None and digest is not None:
                    run_rejected.setdefault(event_id, set()).add(digest)
                out.rejects.append({
                    "at": at, "topic": m.topic, "partition": m.partition, "offset": m.offset,
                    "key": m.key.decode("utf-8", "replace") if m.key is not None else None,
                    "event_id": event_id, "reason": _safe(str(exc)),
                    "value": m.value.decode("utf-8", "replace") if m.value is not None
                    else None,
                    "content_sha256": digest})
            continue
        run_accepted[d.event_id] = d.content_sha256
        out.accepted.append(d)
        if not d.in_kind:
            run_cash_total += d.gross_vnd
        if d.kind == "posted":
            run_postings[d.distribution_id] = d
        else:
            run_reversals.add(d.distribution_id)
    return out


def _finish_batch(ledger: Ledger, out: Path, run: str, batch_file: str,
                  state: str) -> None:
    """Bring a run's batch file from ``state`` to 'done'. The file is (re)written only
    while the ledger says it was never renamed into place; once it may have been, it is at
    most renamed from its complete temp file, never written again: the finance side may
    already have collected it."""
    path = out / batch_file
    tmp = temp_of(path)
    if state == "legacy":  # interrupted under the first version, which recorded no stage
        if path.exists():  # it was renamed: nothing to write
            ledger.set_batch_state(run, "done")
            return
        if tmp.exists():
            state = "pending"  # its temp file may be partial, and was never renamed
        else:
            log.error("run %s: %s is missing and the ledger (written by an older version) "
                      "cannot tell whether it was ever renamed into place; it is NOT "
                      "written again, as it may have been collected. If it was never "
                      "paid, its rows are in paid.db (paid_lines of the run's events)",
                      run, batch_file)
            ledger.set_batch_state(run, "done")
            return
    if state == "pending":
        write_temp(path, BATCH_HEADER, ledger.batch_rows(run))
        ledger.set_batch_state(run, "staged")
    if tmp.exists():
        rename_into_place(tmp, path)
    # else: renamed before an interruption (and perhaps collected since)
    ledger.set_batch_state(run, "done")


def recover(ledger: Ledger, out: Path) -> list[str]:
    """Finish runs whose ledger commit happened but whose files may not be in place (an
    interruption between the two): finish each batch (see ``_finish_batch``) and
    regenerate the in-kind register if it may lack a run's rows."""
    done = []
    for run, batch_file, state in ledger.unfinished_batches():
        log.warning("run %s: finishing %s (%s) after an interrupted run", run, batch_file,
                    state)
        _finish_batch(ledger, out, run, batch_file, state)
        done.append(run)
    stale = ledger.register_stale()
    if stale:
        log.warning("runs %s: writing %s after an interrupted run", ", ".join(stale),
                    REGISTER_FILE)
        write_atomically(out / REGISTER_FILE, REGISTER_HEADER, ledger.register_rows())
        ledger.register_done()
    return sorted({*done, *stale})


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """One writer per output directory: the ledger is the only guard against paying twice."""
    with open(out / LOCK_FILE, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RuntimeError(f"another finance consumer is running on {out}") from exc
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_cycle(source: KafkaSource, out: Path, *, idle_seconds: float = 5.0,
              max_seconds: float = 300.0, stop: threading.Event | None = None) -> RunReport:
    """One run: read until idle, then pay what is new.

    The order is the safety argument (see README.md, "Never paid twice"):

    1. rejects are appended to ``rejects.jsonl`` (at worst a line appears twice);
    2. ONE SQLite transaction records every new event id in ``paid`` with its rows and the
       run (batch ``pending``) — this commit is the moment the events count as paid;
    3. the batch CSV is written from those rows to a temp file, fsynced, and only then
       marked ``staged`` in the ledger; then renamed into place and marked ``done``;
    4. the in-kind register is regenerated (temp file, rename) and marked written;
    5. only then are the Kafka offsets committed.

    A crash before 2 pays nothing and Kafka redelivers everything. A crash after 2 finds
    the ids in ``paid``: redelivered events are skipped, and ``recover`` finishes the run:
    a ``pending`` batch was never renamed into place, so it is written again from the
    ledger; a ``staged`` one is only renamed from its complete temp file, or left alone if
    that rename happened — a batch in place is never written a second time. A crash after
    4 only redelivers skipped events.
    """
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        ledger = Ledger(out / LEDGER_FILE)
        try:
            recovered = recover(ledger, out)
            messages = source.poll_until_idle(idle_seconds=idle_seconds,
                                              max_seconds=max_seconds, stop=stop)
            decided = classify(messages, ledger)
            run = new_run_id(ledger)
            report = RunReport(run=run, duplicates=decided.duplicates,
                               ignored=decided.ignored, rejected=len(decided.rejects),
                               deferred=len(decided.deferred), recovered_runs=recovered)
            if decided.rejects:  # step 1
                append_rejects(out / REJECTS_FILE, decided.rejects)
                for r in decided.rejects:
                    log.warning("rejected %s@%s/%s: %s", r["topic"], r["partition"],
                                r["offset"], r["reason"])
            cash = [d for d in decided.accepted if not d.in_kind]
            in_kind = [d for d in decided.accepted if d.in_kind]
            batch_file = f"batch-{run}.csv" if cash else None
            now = datetime.now(UTC).isoformat()
            if decided.accepted or decided.rejects:
                with ledger.transaction() as db:  # step 2
                    db.execute(
                        "INSERT INTO runs (run, at, batch_file, cash_rows, cash_total_vnd, "
                        "in_kind_rows, batch_state, register_written) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (run, now, batch_file,
                         sum(1 for d in cash for ln in d.lines if ln.amount_vnd),
                         sum(ln.amount_vnd for d in cash for ln in d.lines),
                         sum(1 for d in in_kind for ln in d.lines if ln.amount_vnd),
                         "pending" if batch_file else None, 0 if in_kind else 1))
                    for d in decided.accepted:
                        db.execute(
                            "INSERT INTO paid (event_id, batch, at, run, distribution_id, "
                            "kind, in_kind, gross_vnd, content_sha256) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (d.event_id, REGISTER_FILE if d.in_kind else batch_file, now,
                             run, d.distribution_id, d.kind, int(d.in_kind), d.gross_vnd,
                             d.content_sha256))
                        db.executemany(
                            "INSERT INTO paid_lines (event_id, seq, payee_id, payee_kind, "
                            "amount_vnd, reference, distribution_id) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [(d.event_id, i, ln.payee_id, ln.payee_kind, ln.amount_vnd,
                              d.reference, d.distribution_id) for i, ln in enumerate(d.lines)])
                    db.executemany(
                        'INSERT OR IGNORE INTO rejected (topic, partition, "offset", event_id, '
                        "reason, at, content_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(r["topic"], r["partition"], r["offset"], r["event_id"], r["reason"],
                          now, r["content_sha256"]) for r in decided.rejects])
                    db.execute(_WRITTEN)  # a run with nothing to write is complete
                if batch_file:  # step 3
                    _finish_batch(ledger, out, run, batch_file, "pending")
                    rows = ledger.batch_rows(run)
                    report.batch_file = batch_file
                    report.cash_rows = len(rows)
                    report.cash_total_vnd = sum(r[2] for r in rows)
                if in_kind:  # step 4
                    write_atomically(out / REGISTER_FILE, REGISTER_HEADER,
                                     ledger.register_rows())
                    ledger.register_done()
                    report.in_kind_rows = sum(1 for d in in_kind for ln in d.lines
                                              if ln.amount_vnd)
                report.paid_events = len(decided.accepted)
            if decided.deferred:
                log.warning("%d messages wait for the next run: this run's cash total "
                            "would leave the signed 64-bit range", len(decided.deferred))
                source.rewind(decided.deferred)
            deferred = {id(m) for m in decided.deferred}
            report.offsets_committed = source.commit(  # step 5
                [m for m in messages if id(m) not in deferred])
            return report
        finally:
            ledger.close()


# --- command line ----------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Turn ipshare distribution events into payment batch files.")
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    p.add_argument("--out", required=True, type=Path,
                   help="directory for batches, the in-kind register, rejects and paid.db")
    p.add_argument("--group", default=DEFAULT_GROUP,
                   help=f"Kafka consumer group (default {DEFAULT_GROUP})")
    p.add_argument("--topic", default=TOPIC, help=f"topic to read (default {TOPIC})")
    p.add_argument("--once", action="store_true",
                   help="one run: read until idle, write the batch, exit (for cron)")
    p.add_argument("--idle-seconds", type=float, default=5.0,
                   help="a run ends after this long without a new message (default 5)")
    p.add_argument("--max-run-seconds", type=float, default=300.0,
                   help="a run ends after this long even if events keep coming (default 300)")
    p.add_argument("--replay", action="store_true",
                   help="re-read the topic from its beginning (already paid events are "
                        "skipped by the ledger)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    if not args.once and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):  # finish the current run, then exit
            signal.signal(sig, lambda *_: stop.set())
    source = KafkaSource(args.bootstrap, args.topic, args.group, replay=args.replay)
    try:
        while True:
            report = run_cycle(source, args.out, idle_seconds=args.idle_seconds,
                               max_seconds=args.max_run_seconds, stop=stop)
            print(json.dumps(report.__dict__), flush=True)
            if args.once or stop.is_set():
                return 0
    finally:
        source.close()


if __name__ == "__main__":
    sys.exit(main())
