"""The reference finance consumer against the real Kafka broker.

Each test gets its own topic (``kafka_topic``) and output directory; events are built the
way the ipshare service builds them (``servicekit.cloudevent``) and produced keyed by the
distribution id, as the outbox relay does.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from servicekit import cloudevent

pytestmark = pytest.mark.kafka

PROGRAM = Path(__file__).resolve().parents[1] / "finance_consumer.py"


def _load_program():
    name = "finance_consumer"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PROGRAM)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


fc = _load_program()

HEADER = ["payee_id", "payee_kind", "amount_vnd", "reference", "event_id", "distribution_id"]


# --- events --------------------------------------------------------------------------------

def posted_data(*, distribution_id: str | None = None, gross: int = 1_000_000_007,
                in_kind: bool = False, reference: str = "INV-2026-001") -> dict[str, Any]:
    """A ``distribution.posted`` payload as ipshare builds it: 30% (rounded up) to the
    researchers split 70/30, the rest to the institution."""
    pool = -(-gross * 3000 // 10000)
    a = pool * 7000 // 10000
    b = pool - a
    return {
        "distribution_id": distribution_id or str(uuid.uuid4()),
        "agreement_id": str(uuid.uuid4()), "asset_id": str(uuid.uuid4()),
        "institution_id": "HUST", "source_grant_id": str(uuid.uuid4()),
        "reference": reference, "period": "2026-Q3",
        "gross_vnd": gross, "costs_vnd": 0, "basis_vnd": gross,
        "researcher_pool_vnd": pool, "institution_vnd": gross - pool,
        "policy": {"researcher_share_bp": 3000, "basis": "net", "version": 1},
        "lines": [{"payee_id": "r-a", "payee_kind": "researcher", "amount_vnd": a},
                  {"payee_id": "r-b", "payee_kind": "researcher", "amount_vnd": b},
                  {"payee_id": "HUST", "payee_kind": "institution",
                   "amount_vnd": gross - pool}],
        "in_kind": in_kind, "posted_at": "2026-11-23T09:00:00Z",
    }


def reversed_data(posted: dict[str, Any]) -> dict[str, Any]:
    data = dict(posted)
    data.update(
        reversal_id=str(uuid.uuid4()), reason="invoice cancelled",
        reversed_at="2026-11-24T09:00:00Z",
        **{k: -posted[k] for k in ("gross_vnd", "costs_vnd", "basis_vnd",
                                   "researcher_pool_vnd", "institution_vnd")},
        lines=[{**ln, "amount_vnd": -ln["amount_vnd"]} for ln in posted["lines"]])
    return data


def event(verb: str, data: dict[str, Any], *, source: str = "ipshare",
          subject: str | None = None) -> bytes:
    return cloudevent.encode(cloudevent.build(
        service=source, type_=cloudevent.event_type("ipshare", verb),
        subject=subject or data.get("distribution_id") or "x", data=data,
        time=datetime.now(UTC)))


class Topic:
    def __init__(self, bootstrap: str, name: str) -> None:
        self.bootstrap = bootstrap
        self.name = name
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")

    def send(self, value: bytes, key: str = "k") -> None:
        self.producer.send(self.name, key=key.encode(), value=value).get(timeout=30)

    def send_event(self, verb: str, data: dict[str, Any]) -> bytes:
        value = event(verb, data)
        self.send(value, key=data["distribution_id"])
        return value

    def close(self) -> None:
        self.producer.close()


@pytest.fixture
def topic(kafka_server, kafka_topic):
    t = Topic(kafka_server.bootstrap, kafka_topic)
    yield t
    t.close()


def run(topic: Topic, out: Path, group: str = "finance-test", *extra: str) -> dict[str, Any]:
    """One ``--once`` run of the program, in process, as cron would start it."""
    source = fc.KafkaSource(topic.bootstrap, topic.name, group, replay="--replay" in extra)
    try:
        report = fc.run_cycle(source, out, idle_seconds=1.0, max_seconds=60)
    finally:
        source.close()
    return report.__dict__


def batches(out: Path) -> list[Path]:
    return sorted(out.glob("batch-*.csv"))


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def rows_of(path: Path) -> list[tuple[str, str, int, str, str, str]]:
    header, *rows = read_csv(path)
    assert header == HEADER
    return [(r[0], r[1], int(r[2]), r[3], r[4], r[5]) for r in rows]


def expected_rows(data: dict[str, Any], value: bytes) -> list[tuple]:
    event_id = json.loads(value)["id"]
    return [(ln["payee_id"], ln["payee_kind"], ln["amount_vnd"], data["reference"], event_id,
             data["distribution_id"]) for ln in data["lines"]]


def paid_ids(out: Path) -> list[str]:
    with sqlite3.connect(out / "paid.db") as db:
        return [r[0] for r in db.execute("SELECT event_id FROM paid ORDER BY rowid")]


# --- tests -------------------------------------------------------------------------------

def test_a_posted_cash_distribution_becomes_one_row_per_line(topic, tmp_path):
    data = posted_data()
    value = topic.send_event("distribution.posted", data)
    topic.send_event("asset.registered", {"distribution_id": "not-finance"})  # not payable

    report = run(topic, tmp_path)

    [batch] = batches(tmp_path)
    assert batch.name == report["batch_file"]
    assert rows_of(batch) == expected_rows(data, value)
    assert [r[:3] for r in rows_of(batch)] == [("r-a", "researcher", 210_000_002),
                                               ("r-b", "researcher", 90_000_001),
                                               ("HUST", "institution", 700_000_004)]
    assert sum(r[2] for r in rows_of(batch)) == data["gross_vnd"]  # exact to the đồng
    assert report["cash_total_vnd"] == data["gross_vnd"] and report["cash_rows"] == 3
    assert report["ignored"] == 1 and report["rejected"] == 0
    assert report["offsets_committed"] is True
    assert not (tmp_path / "in-kind-register.csv").exists()
    assert not (tmp_path / "rejects.jsonl").exists()


def test_an_in_kind_distribution_goes_to_the_register_not_the_batch(topic, tmp_path):
    cash = posted_data(gross=5_000_000, reference="LIC-1")
    spin_off = posted_data(gross=2_000_000_000, in_kind=True, reference="SPIN-1")
    cash_value = topic.send_event("distribution.posted", cash)
    spin_value = topic.send_event("distribution.posted", spin_off)

    report = run(topic, tmp_path)

    [batch] = batches(tmp_path)
    assert rows_of(batch) == expected_rows(cash, cash_value)  # the spin-off is not paid
    header, *register = read_csv(tmp_path / "in-kind-register.csv")
    assert header == [*HEADER, "run"]
    assert [tuple(r[:6]) for r in register] == [
        (p, k, str(a), ref, e, d) for p, k, a, ref, e, d in expected_rows(spin_off, spin_value)]
    assert {r[6] for r in register} == {report["run"]}
    assert report["in_kind_rows"] == 3

    # A run with only in-kind events writes no payment batch at all.
    topic.send_event("distribution.posted", posted_data(in_kind=True, reference="SPIN-2"))
    assert run(topic, tmp_path)["batch_file"] is None
    assert len(batches(tmp_path)) == 1
    assert len(read_csv(tmp_path / "in-kind-register.csv")) == 1 + 6  # appended


def test_a_reversal_becomes_claw_back_rows_in_the_next_batch(topic, tmp_path):
    data = posted_data()
    spin_off = posted_data(in_kind=True, reference="SPIN-1")
    topic.send_event("distribution.posted", data)
    topic.send_event("distribution.posted", spin_off)
    run(topic, tmp_path)
    [first] = batches(tmp_path)

    reversal = reversed_data(data)
    value = topic.send_event("distribution.reversed", reversal)
    topic.send_event("distribution.reversed", reversed_data(spin_off))
    report = run(topic, tmp_path)

    first_again, second = batches(tmp_path)
    assert first_again == first and second.name == report["batch_file"]
    assert rows_of(second) == expected_rows(reversal, value)
    assert all(r[2] < 0 for r in rows_of(second))
    assert sum(r[2] for r in rows_of(first) + rows_of(second)) == 0  # nets out
    assert report["cash_total_vnd"] == -data["gross_vnd"]
    _, *register = read_csv(tmp_path / "in-kind-register.csv")
    assert [int(r[2]) for r in register] == (
        [ln["amount_vnd"] for ln in spin_off["lines"]]
        + [-ln["amount_vnd"] for ln in spin_off["lines"]])


def test_the_same_event_is_paid_once_across_redelivery_restarts_and_offset_resets(
    topic, tmp_path
):
    data = posted_data()
    value = topic.send_event("distribution.posted", data)
    topic.send(value, key=data["distribution_id"])  # the relay republished it

    first = run(topic, tmp_path, "finance-a")
    assert first["paid_events"] == 1 and first["duplicates"] == 1
    assert rows_of(batches(tmp_path)[0]) == expected_rows(data, value)

    topic.send(value, key=data["distribution_id"])  # delivered a third time, later
    again = run(topic, tmp_path, "finance-a")  # a restart with the same group
    assert again["paid_events"] == 0 and again["duplicates"] == 1
    reset = run(topic, tmp_path, "finance-b")  # a new group: the offsets start over
    assert reset["paid_events"] == 0 and reset["duplicates"] == 3
    replay = run(topic, tmp_path, "finance-a", "--replay")  # the same group, rewound
    assert replay["paid_events"] == 0 and replay["duplicates"] == 3
    assert len(batches(tmp_path)) == 1
    assert paid_ids(tmp_path) == [json.loads(value)["id"]]


def test_a_second_posting_event_for_one_distribution_is_not_paid(topic, tmp_path):
    data = posted_data()
    topic.send_event("distribution.posted", data)
    run(topic, tmp_path)
    topic.send_event("distribution.posted", data)  # same distribution, a new event id
    report = run(topic, tmp_path)
    assert report["paid_events"] == 0 and report["rejected"] == 1
    assert len(batches(tmp_path)) == 1
    [reject] = [json.loads(ln) for ln in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert "already paid" in reject["reason"]


def test_invalid_messages_go_to_rejects_and_are_never_paid(topic, tmp_path):
    good = posted_data(reference="GOOD")
    # A non-integer amount as it arrives on the wire: the first line's amount written
    # with a decimal point in the event's JSON (no Python float involved).
    float_amount = posted_data(reference="FLOAT")
    first_amount = float_amount["lines"][0]["amount_vnd"]
    float_event = re.sub(rb'("amount_vnd":\s*)' + str(first_amount).encode() + rb"\b",
                         rb"\g<1>" + str(first_amount).encode() + rb".0",
                         event("distribution.posted", float_amount), count=1)
    short = posted_data(reference="SHORT")
    short["lines"][2]["amount_vnd"] -= 1  # lines no longer sum to the gross
    no_specversion = json.loads(event("distribution.posted", posted_data()))
    del no_specversion["specversion"]
    never_posted = reversed_data(posted_data())
    bad_kind = posted_data()
    bad_kind["lines"][0]["payee_kind"] = "friend"
    cases = {
        "not JSON": b"\x00garbage",
        "specversion": json.dumps(no_specversion).encode(),
        "CloudEvents": json.dumps({"specversion": "1.0", "id": "x", "source": "/ipshare",
                                   "type": fc.POSTED}).replace('"x"', '""').encode(),
        "integer number": float_event,
        "lines sum": event("distribution.posted", short),
        "must come from /ipshare": event("distribution.posted", posted_data(),
                                         source="grants"),
        "never paid": event("distribution.reversed", never_posted),
        "payee_kind": event("distribution.posted", bad_kind),
        "subject": event("distribution.posted", posted_data(), subject="other"),
    }
    for value in cases.values():
        topic.send(value)
    good_value = topic.send_event("distribution.posted", good)

    report = run(topic, tmp_path)

    assert report["rejected"] == len(cases) and report["paid_events"] == 1
    [batch] = batches(tmp_path)
    assert rows_of(batch) == expected_rows(good, good_value)  # only the valid one is paid
    rejects = [json.loads(ln) for ln in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == len(cases)
    # One key, one partition: the rejects are in the order the messages were sent.
    for (expected, value), reject in zip(cases.items(), rejects, strict=True):
        assert reject["value"].encode() == value or expected == "not JSON"
        assert expected in reject["reason"], (expected, reject["reason"])
        assert {"topic", "partition", "offset", "event_id", "at"} <= reject.keys()
    assert len(paid_ids(tmp_path)) == 1

    # Read again from the beginning: nothing new is paid and no reject is written twice.
    again = run(topic, tmp_path, "another-group")
    assert again["rejected"] == 0 and again["paid_events"] == 0
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == len(cases)


def test_a_crash_after_the_ledger_commit_is_recovered_without_paying_twice(
    topic, tmp_path, monkeypatch
):
    data = posted_data()
    value = topic.send_event("distribution.posted", data)

    def crash(*_args, **_kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(fc, "write_temp", crash)
        with pytest.raises(OSError):
            run(topic, tmp_path)  # the ledger committed; no file; offsets not committed
    assert batches(tmp_path) == [] and len(paid_ids(tmp_path)) == 1

    report = run(topic, tmp_path)  # the restart redelivers the event
    assert report["recovered_runs"] and report["duplicates"] == 1
    assert report["paid_events"] == 0 and report["batch_file"] is None
    [batch] = batches(tmp_path)  # written from the ledger by the recovery
    assert rows_of(batch) == expected_rows(data, value)


def test_the_program_runs_from_the_command_line(topic, tmp_path):
    data = posted_data()
    value = topic.send_event("distribution.posted", data)
    done = subprocess.run(
        [sys.executable, str(PROGRAM), "--bootstrap", topic.bootstrap, "--topic", topic.name,
         "--out", str(tmp_path / "out"), "--group", "finance-cli", "--once",
         "--idle-seconds", "1"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["paid_events"] == 1
    [batch] = batches(tmp_path / "out")
    assert rows_of(batch) == expected_rows(data, value)


# --- interruptions: a batch in place is never written again ---------------------------------

def fail_once(target, name: str, exc: BaseException, monkeypatch, when=None):
    """Make ``target.name`` raise ``exc`` the first time (``when(*args)`` is true)."""
    original = getattr(target, name)

    def patched(*args, **kwargs):
        if when is None or when(*args, **kwargs):
            monkeypatch.setattr(target, name, original)
            raise exc
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, patched)


def collect(out: Path) -> list[Path]:
    """The finance side picks the batches up, as the README allows: a plain ``mv``."""
    outbox = out.parent / "outbox"
    outbox.mkdir(exist_ok=True)
    for batch in batches(out):
        batch.rename(outbox / batch.name)
    return sorted(outbox.glob("batch-*.csv"))


def test_a_batch_collected_before_an_interrupted_run_finished_is_not_written_again(
    topic, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    cash = posted_data(reference="LIC-1")
    spin_off = posted_data(in_kind=True, reference="SPIN-1")
    cash_value = topic.send_event("distribution.posted", cash)
    spin_value = topic.send_event("distribution.posted", spin_off)

    # The batch is renamed into place, then writing the register fails (a full disk; a
    # kill -9 or a power cut at that moment leaves the same state behind).
    fail_once(fc, "write_atomically", OSError("disk full"), monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        run(topic, out)
    [batch] = batches(out)
    assert rows_of(batch) == expected_rows(cash, cash_value)
    assert not (out / "in-kind-register.csv").exists()
    [collected] = collect(out)  # the transfer job took it: it is being paid

    report = run(topic, out)  # the restart redelivers both events

    assert batches(out) == []  # NOT written a second time
    assert report["recovered_runs"] and report["duplicates"] == 2
    assert report["paid_events"] == 0 and report["batch_file"] is None
    assert rows_of(collected) == expected_rows(cash, cash_value)
    _, *register = read_csv(out / "in-kind-register.csv")  # the register is finished
    assert [tuple(r[:6]) for r in register] == [
        (p, k, str(a), ref, e, d) for p, k, a, ref, e, d in expected_rows(spin_off, spin_value)]
    with sqlite3.connect(out / "paid.db") as db:
        assert db.execute("SELECT batch_state, register_written, written FROM runs"
                          ).fetchall() == [("done", 1, 1)]
    assert run(topic, out)["recovered_runs"] == [] and batches(out) == []


@pytest.mark.parametrize("where", ["before the rename", "after the rename"])
def test_an_interrupted_batch_is_finished_from_its_temp_file_or_left_alone(
    topic, tmp_path, monkeypatch, where
):
    out = tmp_path / "out"
    data = posted_data()
    value = topic.send_event("distribution.posted", data)
    if where == "before the rename":  # staged: the temp file is whole, not renamed
        fail_once(fc, "rename_into_place", KeyboardInterrupt(), monkeypatch)
    else:  # renamed, but the process died before the ledger said so
        fail_once(fc.Ledger, "set_batch_state", KeyboardInterrupt(), monkeypatch,
                  when=lambda _self, _run, state: state == "done")
    with pytest.raises(KeyboardInterrupt):
        run(topic, out)
    with sqlite3.connect(out / "paid.db") as db:
        assert db.execute("SELECT batch_state FROM runs").fetchall() == [("staged",)]

    if where == "before the rename":
        assert batches(out) == []
        [temp] = out.glob(".batch-*.csv.tmp")
        assert rows_of(temp) == expected_rows(data, value)
        report = run(topic, out)
        [batch] = batches(out)  # renamed into place by the recovery
        assert rows_of(batch) == expected_rows(data, value)
        assert list(out.glob(".batch-*")) == []
    else:
        [collected] = collect(out)
        report = run(topic, out)
        assert batches(out) == []  # collected: not written again
        assert rows_of(collected) == expected_rows(data, value)
    assert report["recovered_runs"] and report["duplicates"] == 1
    assert report["paid_events"] == 0
    with sqlite3.connect(out / "paid.db") as db:
        assert db.execute("SELECT batch_state, written FROM runs").fetchall() == [("done", 1)]


# --- messages that used to stop every run -----------------------------------------------------

def with_json(value: bytes, change) -> bytes:
    """The event re-encoded after ``change(raw)`` (json.dumps escapes a lone surrogate)."""
    raw = json.loads(value)
    change(raw)
    return json.dumps(raw).encode()


def test_poison_messages_are_rejected_and_the_run_goes_on(topic, tmp_path):
    huge = posted_data(gross=10**19, reference="HUGE")  # sums add up; beyond 64 bits
    assert all(-(2**63) <= ln["amount_vnd"] < 2**63 for ln in huge["lines"])
    big = posted_data(gross=5 * 10**18, reference="BIG")  # fits in 64 bits
    cases: dict[str, bytes | None] = {
        "tombstone": None,  # a record with a null value
        "nested too deeply": b'{"specversion": "1.0", "data": ' + b"[" * 100_000
                             + b"]" * 100_000 + b"}",
        "gross_vnd is outside the signed 64-bit range": event("distribution.posted", huge),
        "not valid Unicode": with_json(  # "INV-\\ud800" on the wire
            event("distribution.posted", posted_data()),
            lambda raw: raw["data"].update(reference="INV-\ud800")),
        "not valid Unicode (the id)": with_json(
            event("distribution.posted", posted_data()), lambda raw: raw.update(id="\ud800")),
        "not valid Unicode (encoded)": (  # a surrogate encoded in the bytes, not escaped
            event("distribution.posted", posted_data(reference="INV-?"))
            .replace(b"INV-?", b"INV-\xed\xa0\x80")),
    }
    # One key, one partition: the messages are read in the order they are sent.
    big_value = event("distribution.posted", big)
    topic.send(big_value)
    for value in cases.values():
        topic.producer.send(topic.name, key=b"k", value=value).get(timeout=30)
    good = posted_data(reference="GOOD")
    good_value = event("distribution.posted", good)
    topic.send(good_value)

    report = run(topic, tmp_path)

    assert report["rejected"] == len(cases) and report["paid_events"] == 2
    assert report["offsets_committed"] is True
    [batch] = batches(tmp_path)
    assert rows_of(batch) == expected_rows(big, big_value) + expected_rows(good, good_value)
    rejects = [json.loads(ln) for ln in (tmp_path / "rejects.jsonl").read_text(
        encoding="utf-8").splitlines()]
    for expected, reject in zip(cases, rejects, strict=True):
        assert expected.split(" (")[0] in reject["reason"], (expected, reject["reason"])
    by_case = dict(zip(cases, rejects, strict=True))
    assert by_case["tombstone"]["value"] is None and by_case["tombstone"]["event_id"] is None
    assert by_case["not valid Unicode (the id)"]["event_id"] is None  # not an id
    assert by_case["not valid Unicode"]["event_id"] == json.loads(
        cases["not valid Unicode"])["id"]
    assert by_case["not valid Unicode"]["value"] == cases["not valid Unicode"].decode()
    with sqlite3.connect(tmp_path / "paid.db") as db:
        assert db.execute("SELECT count(*) FROM rejected").fetchone() == (len(cases),)

    again = run(topic, tmp_path, "another-group")  # read again: nothing new, no crash
    assert again["rejected"] == 0 and again["paid_events"] == 0
    assert again["duplicates"] == len(cases) + 2


def test_a_run_whose_cash_total_would_not_fit_64_bits_leaves_the_rest_to_the_next(
    topic, tmp_path
):
    sent = [posted_data(gross=4 * 10**18, reference=f"BIG-{i}") for i in range(3)]
    values = [event("distribution.posted", d) for d in sent]
    for value in values:  # one key, one partition, in this order
        topic.send(value)

    # Without --once: one consumer, one run after another.
    source = fc.KafkaSource(topic.bootstrap, topic.name, "finance-test")
    try:
        first = fc.run_cycle(source, tmp_path, idle_seconds=1.0, max_seconds=60).__dict__
        assert first["paid_events"] == 2 and first["deferred"] == 1
        assert first["rejected"] == 0
        assert rows_of(batches(tmp_path)[0]) == (expected_rows(sent[0], values[0])
                                                + expected_rows(sent[1], values[1]))
        # The consumer was sought back to the deferred event: the next run reads it.
        second = fc.run_cycle(source, tmp_path, idle_seconds=1.0, max_seconds=60).__dict__
    finally:
        source.close()
    assert second["paid_events"] == 1 and second["duplicates"] == 0
    assert rows_of(batches(tmp_path)[1]) == expected_rows(sent[2], values[2])
    with sqlite3.connect(tmp_path / "paid.db") as db:
        assert [r[0] for r in db.execute("SELECT cash_total_vnd FROM runs ORDER BY run")] == [
            8 * 10**18, 4 * 10**18]


def test_parsing_never_raises_anything_but_invalid_however_deep_the_nesting():
    base = json.loads(event("distribution.posted", posted_data()))
    for depth in [*range(1, 1200, 37), *range(950, 1050), 5000]:
        nested: Any = "x"
        for _ in range(depth):
            nested = [nested]
        for place in ("distribution_id", "reference", "gross_vnd", "lines"):
            raw = json.loads(json.dumps(base))
            raw["data"][place] = nested
            try:
                value = json.dumps(raw).encode()
            except RecursionError:
                continue  # too deep for the test's own encoder
            message = fc.Message("t", 0, 0, b"k", value)
            with pytest.raises(fc.Invalid):
                fc.parse(message)
            fc.content_sha256(value)
            fc.event_id_of(value)


# --- an event id names one event ------------------------------------------------------------

def test_an_event_id_reused_with_different_content_is_rejected_not_skipped(topic, tmp_path):
    paid = posted_data(reference="PAID")
    paid_value = topic.send_event("distribution.posted", paid)
    event_id = json.loads(paid_value)["id"]
    run(topic, tmp_path)

    def with_id(value: bytes, id_: str) -> bytes:
        return with_json(value, lambda raw: raw.update(id=id_))

    other = posted_data(reference="OTHER")  # another distribution under the paid id
    topic.send(with_id(event("distribution.posted", other), event_id), key="k")
    topic.send(paid_value, key=paid["distribution_id"])  # a plain redelivery
    # The same event encoded differently (keys reordered, spaces) is the same content.
    topic.send(json.dumps(dict(reversed(json.loads(paid_value).items())), indent=1).encode(),
               key=paid["distribution_id"])
    # In one run: an id first rejected (lines do not add up), then sent valid: rejected.
    bad = posted_data(reference="BAD")
    bad["lines"][0]["amount_vnd"] += 1
    bad_value = event("distribution.posted", bad)
    bad_id = json.loads(bad_value)["id"]
    topic.send(bad_value, key="k")
    topic.send(with_id(event("distribution.posted", posted_data(reference="FIXED")), bad_id),
               key="k")
    # ... and one first paid in this run, then reused in the same run.
    fresh = posted_data(reference="FRESH")
    fresh_value = event("distribution.posted", fresh)
    topic.send(fresh_value, key="k")
    topic.send(with_id(event("distribution.posted", posted_data(reference="AGAIN")),
                       json.loads(fresh_value)["id"]), key="k")

    report = run(topic, tmp_path)

    assert report["paid_events"] == 1 and report["duplicates"] == 2
    assert report["rejected"] == 4
    assert rows_of(batches(tmp_path)[1]) == expected_rows(fresh, fresh_value)
    rejects = [json.loads(ln) for ln in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["value"].split('"reference": "')[1].split('"')[0]: r["reason"]
               for r in rejects}
    assert "lines sum" in reasons.pop("BAD")
    assert reasons.keys() == {"OTHER", "FIXED", "AGAIN"}
    for reason in reasons.values():
        assert "reused with different content" in reason
    assert paid_ids(tmp_path) == [event_id, json.loads(fresh_value)["id"]]
    with sqlite3.connect(tmp_path / "paid.db") as db:
        assert db.execute("SELECT count(*) FROM paid WHERE content_sha256 IS NULL"
                          ).fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM rejected WHERE content_sha256 IS NULL"
                          ).fetchone() == (0,)

    again = run(topic, tmp_path, "another-group")  # everything again: nothing new
    assert again["paid_events"] == 0 and again["rejected"] == 0


# --- a ledger written by the first version ----------------------------------------------------

FIRST_SCHEMA = """
CREATE TABLE paid (
    event_id TEXT PRIMARY KEY, batch TEXT NOT NULL, at TEXT NOT NULL,
    run TEXT NOT NULL REFERENCES runs(run), distribution_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('posted', 'reversed')), in_kind INTEGER NOT NULL,
    gross_vnd INTEGER NOT NULL, UNIQUE (distribution_id, kind));
CREATE TABLE paid_lines (
    event_id TEXT NOT NULL REFERENCES paid(event_id), seq INTEGER NOT NULL,
    payee_id TEXT NOT NULL, payee_kind TEXT NOT NULL, amount_vnd INTEGER NOT NULL,
    reference TEXT NOT NULL, distribution_id TEXT NOT NULL, PRIMARY KEY (event_id, seq));
CREATE TABLE runs (
    run TEXT PRIMARY KEY, at TEXT NOT NULL, batch_file TEXT, cash_rows INTEGER NOT NULL,
    cash_total_vnd INTEGER NOT NULL, in_kind_rows INTEGER NOT NULL,
    written INTEGER NOT NULL DEFAULT 0);
CREATE TABLE rejected (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    event_id TEXT, reason TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (topic, partition, "offset"));
"""


def first_version_ledger(out: Path, runs: list[tuple[str, bytes, int]]) -> None:
    """``paid.db`` as the first version left it: ``(run, event value, written)``."""
    out.mkdir()
    with sqlite3.connect(out / "paid.db") as db:
        db.executescript(FIRST_SCHEMA)
        for run_id, value, written in runs:
            raw = json.loads(value)
            data = raw["data"]
            in_kind = data["in_kind"]
            batch_file = None if in_kind else f"batch-{run_id}.csv"
            db.execute("INSERT INTO runs VALUES (?, '2026-11-23', ?, 3, ?, ?, ?)",
                       (run_id, batch_file, 0 if in_kind else data["gross_vnd"],
                        3 if in_kind else 0, written))
            db.execute("INSERT INTO paid VALUES (?, ?, '2026-11-23', ?, ?, 'posted', ?, ?)",
                       (raw["id"], "in-kind-register.csv" if in_kind else batch_file, run_id,
                        data["distribution_id"], int(in_kind), data["gross_vnd"]))
            db.executemany(
                "INSERT INTO paid_lines VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(raw["id"], i, ln["payee_id"], ln["payee_kind"], ln["amount_vnd"],
                  data["reference"], data["distribution_id"])
                 for i, ln in enumerate(data["lines"])])
        db.execute("INSERT INTO rejected VALUES ('t', 0, 0, 'old-reject', 'lines sum', 'x')")


def test_a_ledger_written_by_the_first_version_keeps_working(topic, tmp_path, caplog):
    out = tmp_path / "out"
    done, collected, partial, in_place, spin = (posted_data(reference=r) for r in (
        "DONE", "COLLECTED", "PARTIAL", "IN-PLACE", "SPIN"))
    spin["in_kind"] = True
    values = {name: event("distribution.posted", d) for name, d in (
        ("done", done), ("collected", collected), ("partial", partial),
        ("in_place", in_place), ("spin", spin))}
    runs = [("20261123T090000.000001Z", values["done"], 1),
            # interrupted: its batch is gone (collected, or never written: unknown)
            ("20261123T090000.000002Z", values["collected"], 0),
            # interrupted while writing its temp file: never renamed into place
            ("20261123T090000.000003Z", values["partial"], 0),
            # interrupted after the rename
            ("20261123T090000.000004Z", values["in_place"], 0),
            # interrupted before the register was written
            ("20261123T090000.000005Z", values["spin"], 0)]
    first_version_ledger(out, runs)
    (out / ".batch-20261123T090000.000003Z.csv.tmp").write_text("payee_id,pay")
    in_place_file = out / "batch-20261123T090000.000004Z.csv"
    in_place_file.write_text("as the first version wrote it\n")

    fresh = posted_data(reference="FRESH")
    fresh_value = topic.send_event("distribution.posted", fresh)
    for value in values.values():  # redelivered: all already paid
        topic.send(value)
    report = run(topic, out)

    assert report["paid_events"] == 1 and report["duplicates"] == len(values)
    assert report["recovered_runs"] == [r[0] for r in runs[1:]]
    assert "20261123T090000.000002Z" in caplog.text and "NOT written again" in caplog.text
    assert not (out / "batch-20261123T090000.000002Z.csv").exists()
    assert rows_of(out / "batch-20261123T090000.000003Z.csv") == expected_rows(
        partial, values["partial"])
    assert in_place_file.read_text() == "as the first version wrote it\n"  # untouched
    _, *register = read_csv(out / "in-kind-register.csv")
    assert [r[3] for r in register] == ["SPIN"] * 3
    assert rows_of(out / f"batch-{report['run']}.csv") == expected_rows(fresh, fresh_value)
    with sqlite3.connect(out / "paid.db") as db:
        assert db.execute("SELECT count(*) FROM runs WHERE written = 0").fetchone() == (0,)
        assert db.execute("SELECT batch_state FROM runs ORDER BY run").fetchall() == [
            ("done",), ("done",), ("done",), ("done",), (None,), ("done",)]
        assert db.execute("SELECT content_sha256 IS NULL FROM paid ORDER BY rowid"
                          ).fetchall() == [(1,)] * 5 + [(0,)]

    # A first-version reject's id is known without a hash: no conflict either way.
    ledger = fc.Ledger(out / "paid.db")
    try:
        assert ledger.rejected_contents("old-reject") == set()
    finally:
        ledger.close()


def test_opening_the_ledger_twice_migrates_once(tmp_path):
    for _ in range(2):
        ledger = fc.Ledger(tmp_path / "paid.db")
        ledger.close()
    with sqlite3.connect(tmp_path / "paid.db") as db:
        columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    assert {"batch_state", "register_written", "written"} <= columns


# --- rejects.jsonl --------------------------------------------------------------------------

def test_a_torn_rejects_line_does_not_swallow_the_next_one(tmp_path):
    path = tmp_path / "rejects.jsonl"
    fc.append_rejects(path, [{"n": 1}])
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"n": 2, "reason": "cut sh')  # kill -9 in the middle of an append
    fc.append_rejects(path, [{"n": 3, "id": "\u0111\u1ed3ng"}, {"n": 4}])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"n": 2, "reason": "cut sh'
    assert [json.loads(ln)["n"] for ln in (lines[0], *lines[2:])] == [1, 3, 4]
