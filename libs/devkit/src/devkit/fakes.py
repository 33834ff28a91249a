"""A unit of work in memory, for handler unit tests: the kit's own ``record``, ``emit``,
``insert`` and ``commit`` (``servicekit.unit_of_work.AbstractUnitOfWork``), with every
row kept in a dict instead of a database."""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import Table
from sqlmodel import Session

from servicekit import cloudevent
from servicekit.auth import Principal
from servicekit.clock import BUSINESS_TIMEZONE, FixedClock
from servicekit.decisions import DecisionNumber
from servicekit.kit import Kit
from servicekit.unit_of_work import AbstractUnitOfWork


def stored(aggregate: Any) -> Any:
    """A copy as a row keeps it, for fake repositories: without the events it has staged
    (a handler publishes them to the unit of work)."""
    kept = copy.deepcopy(aggregate)
    kept.events.clear()
    return kept


class FakeUnitOfWork(AbstractUnitOfWork):
    """``rows`` holds what was written, by table name (``audit_log``, ``outbox``,
    ``idempotency_keys`` and the service's own); ``committed`` says whether a route
    would have committed it. An audit record always starts its chain (there is no
    stored head to read)."""

    def __init__(self, service: str, principal: Principal | None, now: datetime) -> None:
        kit = SimpleNamespace(
            name=service, clock=FixedClock(now), wake_relay=lambda: None,
            settings=SimpleNamespace(topic=f"{service}.events.v1",
                                     business_timezone=BUSINESS_TIMEZONE))
        super().__init__(cast(Kit, kit), principal)
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.registers: dict[tuple[str, int], int] = {}
        self.committed = False

    @property
    def audit(self) -> list[dict[str, Any]]:
        """The audit records, in order."""
        return self.rows["audit_log"]

    @property
    def events(self) -> list[CloudEvent]:
        """The CloudEvents staged in the outbox, in order."""
        return [cloudevent.decode(row["value"].encode()) for row in self.rows["outbox"]]

    def take_decision_number(self, register: str) -> DecisionNumber:
        """The register's next number for the year, counted in memory."""
        key = (register, self.today.year)
        self.registers[key] = self.registers.get(key, 0) + 1
        return DecisionNumber(self.registers[key], register, self.today.year)

    def _write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self.rows[table.name].extend(rows)

    def _chain_reader(self, new: bool) -> Session | None:
        return None

    def _commit(self) -> None:
        self.committed = True
