"""The embedded default's path: outbox → in-process bus → inbox, on SQLite."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from servicekit import cloudevent, outbox
from servicekit.bus import InProcessBus
from servicekit.cloudevent import Envelope
from servicekit.db import session_factory
from servicekit.inbox import EventConsumer

NOW = datetime(2026, 11, 23, tzinfo=UTC)
TYPE = "vn.gov.most.test.thing.happened.v1"


def record_effect(session: Session, event) -> None:
    session.execute(text("INSERT INTO effects (event_id) VALUES (:e)"), {"e": event.get_id()})


def test_a_new_subscription_resumes_from_the_groups_committed_offset():
    bus = InProcessBus()
    bus.publish([Envelope("t", "k", b"1"), Envelope("t", "k", b"2")])
    first = bus.subscribe(["t"], "g")
    got = first.poll(0.1)
    first.commit(got[0])  # only the first is committed
    first.close()
    again = bus.subscribe(["t"], "g").poll(0.1)
    assert [d.value for d in again] == [b"2"]
    assert [d.value for d in bus.subscribe(["t"], "other-group").poll(0.1)] == [b"1", b"2"]


def test_poll_wakes_when_a_message_is_published():
    bus = InProcessBus()
    sub = bus.subscribe(["t"], "g")
    threading.Timer(0.05, lambda: bus.publish([Envelope("t", "k", b"x")])).start()
    assert [d.value for d in sub.poll(5.0)] == [b"x"]


def test_outbox_to_inbox_on_sqlite_applies_each_event_once(sqlite_kit_engine):
    bus = InProcessBus()
    with Session(sqlite_kit_engine) as session:
        event = cloudevent.build(service="test", type_=TYPE, subject="a", data={}, time=NOW)
        outbox.stage(session, event, topic="test.events.v1", now=NOW)
        session.commit()
    relay = outbox.OutboxRelay(sqlite_kit_engine, bus, name="test")
    assert relay.publish_pending() == 1
    bus.publish([Envelope("test.events.v1", "a", bus.messages("test.events.v1")[0].value)])

    consumer = EventConsumer(name="effects", bus=bus, topics=["test.events.v1"], group_id="g",
                             sessions=session_factory(sqlite_kit_engine),
                             handlers={TYPE: record_effect})
    assert consumer.run_once(timeout=0.1) == 1
    with sqlite_kit_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM effects")).scalar_one() == 1
    assert relay.publish_pending() == 0


def test_an_event_met_by_a_database_outage_waits_for_it_instead_of_dead_lettering(
        sqlite_kit_engine):
    bus = InProcessBus()
    event = cloudevent.build(service="test", type_=TYPE, subject="a", data={}, time=NOW)
    bus.publish([Envelope("test.events.v1", "a", cloudevent.encode(event))])
    outage = {"failures_left": 2}

    def record_when_the_database_answers(session: Session, event) -> None:
        if outage["failures_left"]:
            outage["failures_left"] -= 1
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        record_effect(session, event)

    consumer = EventConsumer(name="effects", bus=bus, topics=["test.events.v1"], group_id="g",
                             sessions=session_factory(sqlite_kit_engine),
                             handlers={TYPE: record_when_the_database_answers},
                             dead_letter_topic="test.deadletter.v1", max_attempts=2)
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while not effects(sqlite_kit_engine) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        consumer.stop()
    assert effects(sqlite_kit_engine) == 1
    assert bus.messages("test.deadletter.v1") == []


def effects(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM effects")).scalar_one()


def test_concurrent_sqlite_writers_queue_instead_of_failing(sqlite_kit_engine):
    sessions = session_factory(sqlite_kit_engine)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(25):
                with sessions() as s:
                    s.execute(text("SELECT count(*) FROM effects")).scalar_one()
                    s.execute(text("INSERT INTO effects (event_id) VALUES (:e)"),
                              {"e": f"{n}-{i}"})
                    s.commit()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sqlite_kit_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM effects")).scalar_one() == 100
