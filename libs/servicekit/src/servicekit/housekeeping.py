"""Purging what the kit's tables keep only for a while.

- ``outbox``: a row stays until the broker has acknowledged it (an unsent row is never
  purged, however old), then ``outbox_retention_days`` (default 7) for looking into a
  delivery; the events themselves live on in Kafka and with their consumers.
- ``processed_events`` (the inbox): ``inbox_retention_days`` (default 120), longer than
  the topics' retention (90 days, docs/operations.md), so that an event delivered again
  from anywhere on its topic (a consumer group reset to the earliest offset, a dead
  letter republished) still finds its row and is not applied twice. Keep it above the
  topics' retention.
- ``idempotency_keys``: ``idempotency_retention_days`` (default 30). A retry with the same
  key within that replays the first answer; after it the request is handled afresh: the
  domain's own rules (one standing distribution per income reference, state transitions)
  refuse some duplicates, but a create without such a rule (a call, an application, a
  result) would be made again, hence a retention far beyond any client's retries.

The audit trail is append-only and never purged. Rows go in batches, one short
transaction each, so that a backlog does not hold locks or one long transaction. Several
processes may purge at once: a row deleted by one is skipped by the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Engine, Table, delete, select, tuple_

from servicekit.idempotency import IDEMPOTENCY
from servicekit.inbox import INBOX
from servicekit.outbox import OUTBOX
from servicekit.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    outbox_days: int
    inbox_days: int
    idempotency_days: int

    @classmethod
    def of(cls, settings: ServiceSettings) -> Retention:
        """The retention a service is configured with (its defaults are the settings')."""
        return cls(outbox_days=settings.outbox_retention_days,
                   inbox_days=settings.inbox_retention_days,
                   idempotency_days=settings.idempotency_retention_days)


def purge(engine: Engine, now: datetime, retention: Retention, *,
          batch: int = 5000) -> dict[str, int]:
    """Delete what is past its retention at ``now``; rows deleted per table."""
    targets: list[tuple[Table, Column, int]] = [
        (OUTBOX, OUTBOX.c.sent_at, retention.outbox_days),
        (INBOX, INBOX.c.processed_at, retention.inbox_days),
        (IDEMPOTENCY, IDEMPOTENCY.c.created_at, retention.idempotency_days),
    ]
    deleted = {}
    for table, stamp, days in targets:
        deleted[table.name] = _purge_table(engine, table, stamp, now - timedelta(days=days),
                                           batch)
    if any(deleted.values()):
        log.info("purged past retention: %s", deleted)
    return deleted


def _purge_table(engine: Engine, table: Table, stamp: Column, cutoff: datetime,
                 batch: int) -> int:
    key = tuple_(*table.primary_key.columns)
    # ``stamp < cutoff`` is never true of NULL: an unsent outbox row is kept.
    chosen = (select(*table.primary_key.columns).where(stamp < cutoff)
              .order_by(*table.primary_key.columns).limit(batch))
    statement = delete(table).where(key.in_(chosen))
    total = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(statement).rowcount
        total += count
        if count < batch:
            return total
