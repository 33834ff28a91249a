"""Test helpers shared by every member's suite: databases and clients for the kit.

Each test module that needs commits on several connections gets a fresh database,
cloned from a template database migrated once per session (a fraction of a second).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, create_engine

from servicekit.db import normalise_url
from servicekit.devtokens import DevIssuer


class _Serving(Protocol):
    def serve_forever(self) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


@contextmanager
def in_thread(server: _Serving) -> Iterator[Any]:
    """``server`` (a ``socketserver`` server) serving on a thread of its own for the
    block; shut down, closed and joined after it."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class DatabaseServer(Protocol):
    def url(self, dbname: str, driver: str = ...) -> str: ...
    def create_database(self, name: str, template: str | None = None) -> None: ...
    def drop_database(self, name: str) -> None: ...


class DatabaseFactory:
    """Makes fresh databases from templates migrated once per session."""

    def __init__(self, server: DatabaseServer) -> None:
        self.server = server
        self._templates: dict[str, str] = {}
        self._made: list[str] = []

    def template(self, name: str, migrate: Callable[[str], None]) -> str:
        if name not in self._templates:
            db = f"tpl_{name}_{uuid.uuid4().hex[:8]}"
            self.server.create_database(db)
            migrate(self.server.url(db))
            self._templates[name] = db
        return self._templates[name]

    def fresh(self, template_name: str, migrate: Callable[[str], None]) -> str:
        """A new database migrated like ``template_name``; returns its SQLAlchemy URL."""
        template = self.template(template_name, migrate)
        db = f"t_{template_name}_{uuid.uuid4().hex[:10]}"
        self.server.create_database(db, template=template)
        self._made.append(db)
        return self.server.url(db)

    def cleanup(self) -> None:
        for db in [*self._made, *self._templates.values()]:
            self.server.drop_database(db)
        self._made.clear()
        self._templates.clear()


def apply_operations(url: str, operations: Callable[[], None]) -> None:
    """Run migration operations (e.g. ``create_kit_tables_v1``) outside a service's
    Alembic tree, through Alembic's own ``Operations`` on a live connection."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            operations()
    finally:
        engine.dispose()


class Tokens:
    """Signs tokens with the dev key pair the app under test trusts."""

    def __init__(self, key_dir: Path) -> None:
        self.issuer = DevIssuer(key_dir)

    def __call__(self, sub: str, *roles: str, org: str = "", name: str = "",
                 ttl: timedelta | None = None) -> str:
        return self.issuer.issue(sub, name=name or sub, org=org, roles=list(roles), ttl=ttl)

    def headers(self, sub: str, *roles: str, org: str = "", **extra: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self(sub, *roles, org=org)}", **extra}



@dataclass(frozen=True)
class Read:
    partition: int
    offset: int
    key: str | None
    event: dict[str, Any]
    headers: dict[str, bytes]


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Read]:
    """Every message of ``topic`` until ``expected`` arrived (or the timeout passed)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Read] = []
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    out.append(Read(r.partition, r.offset, r.key.decode() if r.key else None,
                                    json.loads(r.value), dict(r.headers or [])))
        # Anything beyond ``expected`` would be a duplicate: give it a moment to show.
        for records in consumer.poll(timeout_ms=1000).values():
            for r in records:
                out.append(Read(r.partition, r.offset, r.key.decode() if r.key else None,
                                json.loads(r.value), dict(r.headers or [])))
        return out
    finally:
        consumer.close()


class Load:
    """Runs ``step()`` over and over on a thread of its own, ``pause`` seconds apart, from
    ``with Load(step):`` until the block ends (or ``step`` returns False). What the steps
    did is theirs to record; an exception in one ends the load and is raised again when
    the block ends."""

    def __init__(self, step: Callable[[], object], *, pause: float = 0.0,
                 name: str = "load") -> None:
        self.step, self.pause = step, pause
        self.steps = 0
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        if self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name}: a step did not end within 60 s")
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.step() is False:
                    return
                self.steps += 1
                self._stop.wait(self.pause)
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            self._failure = exc


def per_aggregate(reads: list[Read], value: Callable[[dict[str, Any]], Any]
                  ) -> tuple[dict[str, list[Any]], dict[str, set[int]]]:
    """Each aggregate's (Kafka key's) ``value(event)`` in the order a consumer that drops
    redeliveries (by CloudEvent id) applies them, and the partitions its events are on."""
    first_seen: dict[str, list[Any]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    seen: set[str] = set()
    for r in sorted(reads, key=lambda r: (r.partition, r.offset)):
        assert r.key is not None
        partitions[r.key].add(r.partition)
        if r.event["id"] not in seen:
            seen.add(r.event["id"])
            first_seen[r.key].append(value(r.event))
    return first_seen, partitions


def topic_size(bootstrap: str, topic: str) -> int:
    """How many messages ``topic`` holds (its partitions' end offsets), redeliveries
    included: the ``expected`` with which :func:`read_topic` reads all of it."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def wait_for(predicate: Callable[[], Any], timeout: float, pause: float = 0.2) -> Any:
    """``predicate()``'s first truthy value within ``timeout`` seconds, else its last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(pause)
    return predicate()


class GatewayUser:
    """Someone calling the platform through a gateway with a development token."""

    def __init__(self, client: Any, sub: str, role: str, org: str) -> None:
        issued = client.post("/dev/tokens", json={"sub": sub, "name": sub, "org": org,
                                                  "roles": [role]})
        assert issued.status_code == 201, issued.text
        self.client = client  # an httpx.Client on the gateway's URL
        self.auth = {"Authorization": f"Bearer {issued.json()['access_token']}"}

    def post(self, path: str, body: Any = None, expect: int = 200,
             **headers: str) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers={**self.auth, **headers})
        assert response.status_code == expect, f"POST {path}: {response.text}"
        return response.json()

    def get(self, path: str, **params: str) -> Any:
        """The answer, whatever its status."""
        return self.client.get(path, params=params, headers=self.auth)

    def read(self, path: str) -> dict[str, Any]:
        """The body of a 200 answer."""
        response = self.get(path)
        assert response.status_code == 200, f"GET {path}: {response.text}"
        return response.json()


class StackRun:
    """``make stack`` as a test runs it (``python -m devkit.stack up|status|down``) in a
    var directory of its own: :meth:`started` brings it up on free ports and stops it
    afterwards; :meth:`settings` is its ``stack.env``, :meth:`workers` what its
    supervisor last wrote about a program's workers."""

    PREFIXES = ("STACK_", "GATEWAY_", "GRANTS_", "SANDBOX_", "IPSHARE_")

    def __init__(self, var: Path, env: dict[str, str]) -> None:
        from devkit.stack import Layout

        self.var, self.env = var, env
        self.layout = Layout(var)

    @classmethod
    @contextmanager
    def started(cls, env: dict[str, str], up_timeout: float = 420.0) -> Iterator[StackRun]:
        """Up on free ports with ``env`` (over the caller's environment, less its own
        ``STACK_``/``GATEWAY_``/service settings), then down, leaving nothing behind."""
        from devkit.localservers import free_port

        ports = {"PORT": free_port(), **{f"STACK_{s.upper()}_PORT": free_port()
                                         for s in ("grants", "sandbox", "ipshare")}}
        full = {k: v for k, v in os.environ.items() if not k.startswith(cls.PREFIXES)}
        full.update({k: str(v) for k, v in ports.items()})
        full.update(env)
        # Not pytest's tmp_path: as root, PostgreSQL runs as an unprivileged user that
        # must traverse every parent of its data directory (mode 0700 under
        # /tmp/pytest-of-root).
        root = Path(tempfile.mkdtemp(prefix="most-stack-test-"))
        root.chmod(0o755)
        running = cls(root / "var", full)
        try:
            up = running.run("up", up_timeout)
            assert up.returncode == 0, up.stdout + up.stderr
            assert f"GATEWAY_URL=http://127.0.0.1:{ports['PORT']}" in up.stdout
            yield running
        finally:
            if running.layout.pids.exists():
                running.run("down", 120)
            shutil.rmtree(root, ignore_errors=True)

    def run(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devkit.stack", command, "--var-dir", str(self.var)],
            env=self.env, capture_output=True, text=True, timeout=timeout)

    def settings(self) -> dict[str, str]:
        lines = self.layout.env.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def workers(self, name: str) -> list[dict[str, Any]]:
        state = json.loads(self.layout.supervisor_state.read_text())
        return state["programs"][name]["workers"]

    def processes_left(self) -> list[int]:
        """Processes whose environment carries this stack's marker (the supervisor and
        every worker it started)."""
        from devkit.stack import STACK_MARKER_ENV, _alive

        marker = f"{STACK_MARKER_ENV}={self.var.resolve()}".encode()
        left = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if marker in environ.read_bytes().split(b"\0") and _alive(
                        int(environ.parent.name)):
                    left.append(int(environ.parent.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        return left


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def strict_formats() -> Any:
    """``date-time`` as RFC 3339 and ``date`` as YYYY-MM-DD, checked for real."""
    from datetime import date, datetime

    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def _rfc3339(value: object) -> bool:
        if not isinstance(value, str):
            return True
        datetime.fromisoformat(value)
        return RFC3339.fullmatch(value) is not None

    @checker.checks("date", raises=ValueError)
    def _date(value: object) -> bool:
        if not isinstance(value, str):
            return True
        date.fromisoformat(value)
        return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None

    return checker


def repo_asyncapi() -> Path:
    """``docs/asyncapi.yaml`` of this repository, found upwards from this module."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "docs" / "asyncapi.yaml").is_file():
            return parent / "docs" / "asyncapi.yaml"
    raise FileNotFoundError("no docs/asyncapi.yaml above " + __file__)


def outbox_rows(url: str, after: int = 0) -> list[dict[str, Any]]:
    """Every outbox row after row id ``after``, in order."""
    from sqlalchemy import select

    from servicekit.outbox import OUTBOX

    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(OUTBOX).where(OUTBOX.c.id > after)
                                .order_by(OUTBOX.c.id)).mappings().all()
    finally:
        engine.dispose()
    return [dict(r) for r in rows]


class AsyncApiMessages:
    """Validates emitted CloudEvents against the message schemas of ``docs/asyncapi.yaml``.

    Each message's payload is the whole structured CloudEvent; the message for an event
    is the one whose payload pins ``type`` to the event's type.
    """

    def __init__(self, path: Path) -> None:
        import yaml
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.document = yaml.safe_load(path.read_text())
        base = "urn:most:asyncapi"
        registry = Registry().with_resource(
            base, Resource.from_contents({"$id": base, **self.document}, DRAFT202012)
        )
        self.validators: dict[str, Any] = {}
        for name, message in self.document["components"]["messages"].items():
            payload = self._resolve(message["payload"])
            event_type = payload.get("properties", {}).get("type", {}).get("const")
            if event_type:
                ref = {"$ref": f"{base}#/components/messages/{name}/payload"}
                self.validators[event_type] = Draft202012Validator(
                    ref, registry=registry, format_checker=strict_formats())

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def validate(self, event: dict[str, Any]) -> None:
        """Raise ``jsonschema.ValidationError`` (or KeyError for an undocumented type)."""
        self.validators[event["type"]].validate(event)


def contract_problems(messages: AsyncApiMessages, topic: str, key: bytes | None,
                      value: bytes, headers: dict[str, bytes]) -> list[str]:
    """What is wrong with one message of ``<service>.events.v1`` (nothing: ``[]``): it
    must parse with the CloudEvents SDK as a 1.0 event, match its message schema in
    ``docs/asyncapi.yaml``, come from the topic's service, be keyed by its subject and
    carry its ``traceparent`` header as its extension attribute."""
    from cloudevents.core.formats.json import JSONFormat
    from jsonschema import ValidationError

    service = topic.split(".")[0]
    try:
        attributes = JSONFormat().read(None, value).get_attributes()
    except Exception as exc:  # noqa: BLE001 - any refusal by the SDK is the finding
        return [f"the CloudEvents SDK cannot read it: {exc!r}"]
    found: list[str] = []
    if attributes.get("specversion") != "1.0":
        found.append(f"specversion {attributes.get('specversion')!r}")
    try:
        messages.validate(json.loads(value))
    except KeyError:
        found.append(f"type {attributes.get('type')!r} is not in docs/asyncapi.yaml")
    except ValidationError as exc:
        found.append(f"{attributes.get('type')} does not match its message schema: "
                     f"{exc.message} at {'/'.join(map(str, exc.absolute_path))}")
    if attributes.get("source") != f"/{service}" or not str(
            attributes.get("type", "")).startswith(f"vn.gov.most.{service}."):
        found.append(f"{attributes.get('type')} from {attributes.get('source')} on {topic}")
    if (key.decode() if key else None) != attributes.get("subject"):
        found.append(f"key {key!r} is not the subject {attributes.get('subject')!r}")
    if "traceparent" in headers and \
            headers["traceparent"].decode() != attributes.get("traceparent"):
        found.append("traceparent header and attribute differ")
    return found


EVENTS_TOPIC = re.compile(r"(grants|sandbox|ipshare)\.events\.v1")
DEAD_LETTER_TOPIC = re.compile(r"(grants|sandbox|ipshare)\.deadletter\.v1")


def topic_ends(bootstrap: str, topics: re.Pattern[str] = EVENTS_TOPIC) -> dict[Any, int]:
    """The end offset of every partition of every topic whose whole name ``topics``
    matches, by ``TopicPartition``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for topic in sorted(consumer.topics())
                      if topics.fullmatch(topic)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return dict(consumer.end_offsets(partitions)) if partitions else {}
    finally:
        consumer.close()


def read_between(bootstrap: str, before: dict[Any, int], after: dict[Any, int],
                 timeout: float = 30.0) -> list[Any]:
    """Every record of the partitions of ``after`` from their offset in ``before`` (the
    beginning of the partition when absent) up to their offset in ``after``, read by a
    consumer of no group."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        starts = consumer.beginning_offsets(list(after)) if after else {}
        wanted = {tp: (before.get(tp, starts[tp]), end) for tp, end in after.items()
                  if end > before.get(tp, starts[tp])}
        if not wanted:
            return []
        consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, start)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        left = set(wanted)
        while left and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records += [r for r in batch if r.offset < wanted[tp][1]]
            left = {tp for tp in left if consumer.position(tp) < wanted[tp][1]}
        assert not left, f"could not read the records written to {sorted(map(str, left))}"
        return records
    finally:
        consumer.close()


def distinct(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` once per event id, in order. Delivery is at least once: a relay that
    dies between the broker's ack and marking its row sent publishes the row again,
    the same event with the same id, which consumers skip. A repeated id must be that
    same event; an effect published twice under two ids is not hidden here."""
    first: dict[str, dict[str, Any]] = {}
    for event in events:
        seen = first.setdefault(event["id"], event)
        assert seen == event, f"two different events share the id {event['id']}"
    return list(first.values())


class EventContract:
    """Reads what the services wrote to their events topics and checks every message
    with :func:`contract_problems`; counts the checked events by type in ``seen``."""

    def __init__(self, asyncapi: Path | None = None, *,
                 events: re.Pattern[str] = EVENTS_TOPIC,
                 dead_letters: re.Pattern[str] = DEAD_LETTER_TOPIC) -> None:
        self.asyncapi = asyncapi or repo_asyncapi()
        self.events, self.dead_letters = events, dead_letters
        self.seen: Counter[str] = Counter()
        self._messages: AsyncApiMessages | None = None

    @property
    def messages(self) -> AsyncApiMessages:
        if self._messages is None:
            self._messages = AsyncApiMessages(self.asyncapi)
        return self._messages

    def ends(self, bootstrap: str) -> dict[Any, int]:
        """Where each partition of the events topics ends now."""
        return topic_ends(bootstrap, self.events)

    def problems(self, records: list[Any]) -> list[str]:
        """What is wrong with each of ``records`` (Kafka records of events topics), each
        named by its topic, partition and offset; nothing: ``[]``."""
        found = []
        for record in records:
            wrong = contract_problems(self.messages, record.topic, record.key, record.value,
                                      dict(record.headers or []))
            where = f"{record.topic}/{record.partition}@{record.offset}"
            found += [f"{where}: {problem}" for problem in wrong]
        return found

    def check(self, bootstrap: str, before: dict[Any, int],
              after: dict[Any, int]) -> list[dict[str, Any]]:
        """The events written between the offsets ``before`` and ``after`` (see
        :func:`read_between`), in partition order; fails naming every one off the
        contract."""
        records = read_between(bootstrap, before, after)
        found = self.problems(records)
        assert not found, "events off the contract:\n" + "\n".join(found)
        events = [json.loads(record.value) for record in records]
        self.seen.update(event["type"] for event in events)
        return events

    def written(self, bootstrap: str, *, at_least: int, timeout: float = 90.0,
                quiet: float = 3.0) -> list[dict[str, Any]]:
        """Every event on the services' events topics, read from the beginning of each
        once at least ``at_least`` are there and no more arrived for ``quiet`` seconds,
        each checked as :meth:`check` does; fails if any message was dead-lettered."""
        deadline = time.monotonic() + timeout
        ends, since = self.ends(bootstrap), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.ends(bootstrap)
            if now != ends:
                ends, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet and len(
                    read_between(bootstrap, {}, ends)) >= at_least:
                break
        dead = read_between(bootstrap, {}, topic_ends(bootstrap, self.dead_letters))
        assert not dead, "dead letters: " + "; ".join(
            f"{r.topic}@{r.offset}: {dict(r.headers or []).get('x-dead-letter-reason')!r}"
            for r in dead)
        return self.check(bootstrap, {}, self.ends(bootstrap))


def kit_tables() -> set[str]:
    """The kit's own tables (on SQLModel's metadata), which every service's migrations make."""
    from sqlmodel import SQLModel

    from servicekit import migrations  # noqa: F401 - defines the kit's tables

    return set(SQLModel.metadata.tables)


def table_names(url: str) -> set[str]:
    from sqlalchemy import inspect

    engine = create_engine(normalise_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def assert_migrations_round_trip(service_dir: Path, url: str, metadata: MetaData) -> None:
    """Upgrade to head, downgrade to base (empty), upgrade again: head holds exactly the
    service's own tables (``metadata``) and the kit's."""
    from servicekit import migrations

    expected = {*metadata.tables, *kit_tables()}
    migrations.upgrade(service_dir, url)
    assert table_names(url) == expected
    migrations.downgrade(service_dir, url, "base")
    assert table_names(url) == set()
    migrations.upgrade(service_dir, url)
    assert table_names(url) == expected


def schema_drift(service_dir: Path, url: str, metadata: MetaData) -> list[Any]:
    """What autogenerate would change after migrating ``url`` to head, comparing the
    database with exactly the service's own tables (``metadata``) and the kit's."""
    from alembic.autogenerate import compare_metadata
    from sqlmodel import SQLModel

    from servicekit import migrations

    migrations.upgrade(service_dir, url)
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            return list(compare_metadata(context, [metadata, SQLModel.metadata]))
    finally:
        engine.dispose()
