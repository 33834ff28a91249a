"""The acceptance tester's desk: the system as ``make run`` serves it (the embedded
gateway, its three services on SQLite, the in-process bus, dev tokens), callers with
their tokens, and the checks every answer of the contract gets.

Scenarios talk to the public paths only (``/sandbox/...``, ``/grants/...``), with the
contract's field names. Time is a fixed clock the scenario moves; the sandbox's
scheduler, whose periodic run ``SANDBOX_SCHEDULER_SECONDS=0`` turns off, runs when the
scenario says a day has come (:meth:`System.supervise`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from servicekit.clock import FixedClock, business_date

EVENT_TYPE = re.compile(r"^vn\.gov\.most\.(grants|sandbox|ipshare)\.[a-z_]+\.[a-z_]+\.v1$")
HISTORY_FIELDS = {"actor", "role", "time", "action", "from_status", "to_status", "reason"}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


# A command on a resource with a lifecycle: /<service>/v1/<collection>/<id>/<action>...
COMMAND = re.compile(r"^(/(?:grants|sandbox)/v1/(?:calls|applications|pilots|assignments|"
                     r"grants)/[^/]+)/(?!assignments$)[a-z-]+(?:/[a-z-]+)*$")


@dataclass
class Caller:
    """One person with a dev token: ``sub``, ``org`` and one role."""

    client: TestClient
    sub: str
    role: str
    org: str
    token: str = ""
    # Reads a resource's whole trail (the auditor's view): set by System.caller.
    trail: Any = None

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(), params=params or None)

    def post(self, path: str, body: Any = None, *, key: str | None = None
             ) -> httpx.Response:
        """POST ``body`` with an Idempotency-Key (``key``, else a new one): a successful
        answer is replayed at once (the same key and body) and must come back the same."""
        key = key or uuid.uuid4().hex
        command = COMMAND.match(path)
        before = len(self.trail(command[1])) if command and self.trail else None
        answer = self.client.post(path, json=body, headers=self.headers(key))
        if answer.is_success:
            replay = self.client.post(path, json=body, headers=self.headers(key))
            assert (replay.status_code, replay.json()) == (answer.status_code, answer.json())
            assert replay.headers.get("idempotent-replayed") == "true", path
        replayed = answer.headers.get("idempotent-replayed") == "true"
        if before is not None and answer.is_success:
            self._audited(command[1], before, body, replayed=replayed)
        return answer

    def _audited(self, resource: str, before: int, body: Any, *, replayed: bool) -> None:
        """The command added to ``resource``'s trail (once, the replay adding nothing) a
        step by this caller, in their role, with the body's reason; a replay, nothing."""
        added = self.trail(resource)[before:]
        if replayed:
            assert added == [], (resource, added)
            return
        mine = [e for e in added if (e["actor"], e["role"]) == (self.sub, self.role)]
        assert mine, (resource, self.sub, added)
        for entry in added:
            assert entry.keys() >= HISTORY_FIELDS, entry
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            assert body["reason"] in [e["reason"] for e in mine], (resource, added)

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.client.put(path, json=body, headers=self.headers())


@dataclass
class System:
    app: FastAPI
    client: TestClient
    clock: FixedClock
    callers: dict[str, Caller] = field(default_factory=dict)
    # Every (method, path, status) the scenarios were answered, for the OpenAPI check.
    answers: set[tuple[str, str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.client.event_hooks["response"].append(self._note)

    def _note(self, response: httpx.Response) -> None:
        """Every answer is noted, and checked against the contract's conventions: an
        error is problem+json, a created resource comes back whole."""
        path = response.request.url.path
        self.answers.add((response.request.method, path, response.status_code))
        if not path.startswith(("/grants/", "/sandbox/", "/ipshare/")):
            return
        response.read()
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json", path
            assert response.json().keys() >= PROBLEM_FIELDS, (path, response.text)
        elif response.status_code == 201:
            assert_created(response.json())

    def undeclared(self, *prefixes: str) -> list[tuple[str, str, int]]:
        """The answers under ``prefixes`` that the gateway's merged OpenAPI document
        does not declare for their operation (the contract: it tells the truth)."""
        document = self.client.get("/openapi.json").json()
        templates = [(re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path))
                                 + "$"), path) for path in document["paths"]]
        seen = [(m, p, s) for m, p, s in sorted(self.answers) if p.startswith(prefixes)]
        assert seen, "no answer to check"
        missing = []
        for method, path, status in seen:
            template = next((t for rx, t in templates if rx.match(path)), None)
            operation = document["paths"].get(template, {}).get(method.lower())
            if operation is None or str(status) not in operation["responses"]:
                missing.append((method, template or path, status))
        return sorted(set(missing))

    def caller(self, sub: str, role: str, org: str) -> Caller:
        """A caller with a token from ``POST /dev/tokens`` (the dev profile's issuer)."""
        if sub not in self.callers:
            answer = self.client.post("/dev/tokens", json={
                "sub": sub, "name": sub.title(), "org": org, "roles": [role]})
            assert answer.status_code == 201, answer.text
            self.callers[sub] = Caller(self.client, sub, role, org,
                                       answer.json()["access_token"], self.trail)
        return self.callers[sub]

    def trail(self, resource: str) -> list[dict[str, Any]]:
        """``resource``'s whole history (``/<service>/v1/<collection>/<id>``) as an
        auditor reads it, every page."""
        auditor = self.caller("acceptance-auditor", "auditor", "SAV")
        entries: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = auditor.client.get(f"{resource}/history", headers=auditor.headers(),
                                      params=params)
            assert page.status_code == 200, (resource, page.text)
            entries += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return entries

    @property
    def today(self):
        return business_date(self.clock.now())

    def travel_to(self, when: datetime) -> None:
        assert when >= self.clock.now()
        self.clock.set(when)

    def supervise(self) -> None:
        """One run of the sandbox's scheduler on the clock's day, as its periodic job
        would run it."""
        from sandbox.scheduler import Scheduler

        Scheduler(self.app.state.services["sandbox"].state.kit).run()

    def events(self, service: str, subject: str | None = None, *,
               expect: list[str] | None = None, seconds: float = 10.0
               ) -> list[dict[str, Any]]:
        """The CloudEvents the service published (about ``subject``), once the relay
        delivered at least the ``expect``ed short types (``pilot.started``)."""
        deadline = time.monotonic() + seconds
        while True:
            events = [json.loads(d.value) for d in
                      self.app.state.bus.messages(f"{service}.events.v1")]
            if subject is not None:
                events = [e for e in events if e["subject"] == subject]
            kinds = [short(e) for e in events]
            if expect is None or all(kinds.count(k) >= expect.count(k) for k in expect):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {expect}, the bus has {kinds}")
            time.sleep(0.05)


def undocumented_events(system: System, service: str) -> list[str]:
    """Every event ``service`` published so far that ``docs/asyncapi.yaml`` does not
    document or whose body its schema refuses, as ``type: why``."""
    from jsonschema import ValidationError

    from devkit.testing import AsyncApiMessages, repo_asyncapi

    messages = AsyncApiMessages(repo_asyncapi())
    events = system.events(service)
    assert events, f"{service} published nothing"
    wrong = []
    for event in events:
        try:
            messages.validate(event)
        except KeyError:
            wrong.append(f"{event['type']}: not documented")
        except ValidationError as exc:
            wrong.append(f"{event['type']}: {str(exc).splitlines()[0]}")
    return sorted(set(wrong))


def short(event: dict[str, Any]) -> str:
    """``vn.gov.most.sandbox.pilot.started.v1`` → ``pilot.started``."""
    return ".".join(event["type"].split(".")[4:6])


def key() -> str:
    return uuid.uuid4().hex


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert_times_are_utc(body)
    if isinstance(body, dict) and "items" in body:  # a list: {items, next_cursor}
        assert "next_cursor" in body, (response.request.url.path, list(body))
    return body


INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+]00:00)$")


def assert_times_are_utc(value: Any, where: str = "") -> None:
    """Every instant (a ``*_at`` or ``time`` field) is RFC 3339 in UTC."""
    if isinstance(value, dict):
        for name, item in value.items():
            if (name.endswith("_at") or name == "time") and item is not None:
                assert isinstance(item, str) and INSTANT.match(item), (f"{where}.{name}", item)
            assert_times_are_utc(item, f"{where}.{name}")
    elif isinstance(value, list):
        for item in value:
            assert_times_are_utc(item, where)


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """A refusal: problem+json with the RFC 9457 members, whose ``detail`` (or
    ``errors``) names the rule by ``words``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status
    said = (body["detail"] + " " + json.dumps(body.get("errors", []))).lower()
    for word in words:
        assert word.lower() in said, (word, body)
    return body


def assert_created(body: dict[str, Any], **parents: str) -> None:
    """A created resource comes back whole: its id (a UUID), created_at, its parents."""
    uuid.UUID(body["id"])
    datetime.fromisoformat(body["created_at"])
    for name, value in parents.items():
        assert body[name] == value, (name, body)


def assert_history(entries: list[dict[str, Any]], actions: list[tuple[str, str | None]]
                   ) -> None:
    """Each entry has the contract's fields; the trail's (action, to_status) pairs end
    with ``actions`` in order (earlier ones may precede)."""
    for entry in entries:
        assert entry.keys() >= HISTORY_FIELDS, entry
        datetime.fromisoformat(entry["time"])
    seen = [(e["action"], e["to_status"]) for e in entries]
    assert actions and seen[-len(actions):] == actions, seen


def days(n: int) -> timedelta:
    return timedelta(days=n)
