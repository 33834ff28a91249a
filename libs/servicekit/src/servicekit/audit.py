"""Append-only, hash-chained audit trail, its ``/history`` view and its verification.

Each aggregate has its own chain: a record hashes its content together with the
previous record of the same aggregate, so appending rides on the row lock the command
already holds and unrelated writes never serialise on one service-wide chain. A
periodic checkpoint hashes every chain head (and the previous checkpoint), so deleting
a whole chain, or its tail, is detected too. The tables refuse UPDATE and DELETE by
trigger; :func:`verify` catches whoever bypasses that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Column,
    Index,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    select,
)
from sqlmodel import Field, Session, SQLModel

from servicekit.clock import as_utc
from servicekit.paging import position_cursor
from servicekit.types import BigIntPK, UtcDateTime


class AuditRecord(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("aggregate_type", "aggregate_id", "seq", name="uq_audit_chain_seq"),
        Index("ix_audit_at", "at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntPK, primary_key=True,
                                                          autoincrement=True))
    aggregate_type: str = Field(max_length=60)
    aggregate_id: str = Field(max_length=100)
    seq: int
    actor: str = Field(max_length=200)
    role: str = Field(max_length=60)
    org: str = Field(max_length=200)
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    action: str = Field(max_length=100)
    from_status: str | None = Field(default=None, max_length=60)
    to_status: str | None = Field(default=None, max_length=60)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str = Field(max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    __tablename__ = "audit_checkpoints"

    id: int | None = Field(default=None, sa_column=Column(BigIntPK, primary_key=True,
                                                          autoincrement=True))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    records: int
    heads: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str = Field(max_length=64)


AUDIT = AuditRecord.__table__
CHECKPOINTS = AuditCheckpoint.__table__
SYSTEM_ROLE = "system"

# Built once: every command appends a record, and building a statement (and keying
# ``.values()`` literals for the compiled cache) costs more than executing it.
_HEAD = (
    select(AUDIT.c.seq, AUDIT.c.hash)
    .where(AUDIT.c.aggregate_type == bindparam("head_type"),
           AUDIT.c.aggregate_id == bindparam("head_id"))
    .order_by(AUDIT.c.seq.desc())
    .limit(1)
)
_APPEND = insert(AUDIT)


@dataclass(frozen=True)
class Actor:
    """Who did it: a person from the token, or ``system:<component>``."""

    id: str
    role: str
    org: str = ""


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _record_hash(r: Any) -> str:
    return _digest(
        [
            r.aggregate_type, r.aggregate_id, r.seq, r.actor, r.role, r.org,
            as_utc(r.at).isoformat(timespec="microseconds"), r.action, r.from_status,
            r.to_status, r.reason, r.data, r.prev_hash,
        ]
    )


def append(
    session: Session,
    *,
    aggregate_type: str,
    aggregate_id: str,
    actor: Actor,
    action: str,
    at: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    new: bool = False,
) -> None:
    """Append one record to the aggregate's chain, in the caller's transaction.

    ``new=True`` starts the chain of an aggregate created in this transaction without
    looking for a head (the unique ``(type, id, seq)`` still refuses a second start).
    """
    session.execute(_APPEND, chained(
        session, aggregate_type=aggregate_type, aggregate_id=aggregate_id, actor=actor,
        action=action, at=at, from_status=from_status, to_status=to_status, reason=reason,
        data=data, new=new,
    ))


def chained(
    session: Session | None,
    *,
    aggregate_type: str,
    aggregate_id: str,
    actor: Actor,
    action: str,
    at: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    new: bool = False,
) -> dict[str, Any]:
    """The ``audit_log`` row :func:`append` writes, linked to the chain's head (read in
    ``session``; with ``new``, or no session, the chain starts with this row)."""
    head = None if new or session is None else session.execute(
        _HEAD, {"head_type": aggregate_type, "head_id": aggregate_id}
    ).first()
    values = dict(
        aggregate_type=aggregate_type, aggregate_id=aggregate_id,
        seq=(head.seq + 1) if head else 1, actor=actor.id, role=actor.role, org=actor.org,
        at=as_utc(at), action=action, from_status=from_status, to_status=to_status,
        reason=reason, data=data, prev_hash=head.hash if head else None,
    )
    values["hash"] = _record_hash(_Row(values))
    return values


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


class HistoryEntry(BaseModel):
    """One step of an aggregate's trail as ``GET .../{id}/history`` shows it (the
    contract's actor, role, time, action, from_status, to_status, reason)."""

    seq: int
    actor: str
    role: str
    org: str
    time: datetime
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    data: dict[str, Any] | None = None


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    next_cursor: str | None = None


def history(
    session: Session, aggregate_type: str, aggregate_id: str, *, limit: int = 100,
    cursor: str | None = None,
) -> HistoryPage:
    """The aggregate's trail in order, paged by sequence number."""
    after = position_cursor(cursor)
    rows = session.execute(
        select(AUDIT)
        .where(AUDIT.c.aggregate_type == aggregate_type, AUDIT.c.aggregate_id == aggregate_id,
               AUDIT.c.seq > after)
        .order_by(AUDIT.c.seq)
        .limit(limit + 1)
    ).all()
    items = [
        HistoryEntry(
            seq=r.seq, actor=r.actor, role=r.role, org=r.org, time=as_utc(r.at), action=r.action,
            from_status=r.from_status, to_status=r.to_status, reason=r.reason, data=r.data,
        )
        for r in rows[:limit]
    ]
    next_cursor = str(items[-1].seq) if len(rows) > limit else None
    return HistoryPage(items=items, next_cursor=next_cursor)


def _heads(session: Session) -> dict[str, list[Any]]:
    latest = (
        select(AUDIT.c.aggregate_type, AUDIT.c.aggregate_id, func.max(AUDIT.c.seq).label("seq"))
        .group_by(AUDIT.c.aggregate_type, AUDIT.c.aggregate_id)
        .subquery()
    )
    rows = session.execute(
        select(AUDIT.c.aggregate_type, AUDIT.c.aggregate_id, AUDIT.c.seq, AUDIT.c.hash).join(
            latest,
            (AUDIT.c.aggregate_type == latest.c.aggregate_type)
            & (AUDIT.c.aggregate_id == latest.c.aggregate_id)
            & (AUDIT.c.seq == latest.c.seq),
        )
    ).all()
    return {f"{r.aggregate_type}/{r.aggregate_id}": [r.seq, r.hash] for r in rows}


def checkpoint(session: Session, at: datetime) -> str:
    """Record a hash over every chain head; returns the checkpoint hash."""
    heads = _heads(session)
    records = session.execute(select(func.count()).select_from(AUDIT)).scalar_one()
    prev = session.execute(
        select(CHECKPOINTS.c.hash).order_by(CHECKPOINTS.c.id.desc()).limit(1)
    ).scalar()
    at = as_utc(at)
    digest = _digest([at.isoformat(timespec="microseconds"), records, heads, prev])
    session.execute(
        insert(CHECKPOINTS).values(at=at, records=records, heads=heads, prev_hash=prev,
                                   hash=digest)
    )
    return digest


@dataclass(frozen=True)
class Coverage:
    """What the latest checkpoint covers: every chain's head as of ``at`` (``records``
    records in ``chains`` chains). A whole chain, or a chain's tail, deleted after it
    was covered is detected; what was appended since is covered by the next one."""

    id: int
    at: datetime
    records: int
    chains: int
    hash: str


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    records: int
    chains: int
    first_break: str | None = None
    checkpoint: Coverage | None = None


def latest_checkpoint(session: Session) -> Coverage | None:
    row = session.execute(
        select(CHECKPOINTS).order_by(CHECKPOINTS.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return Coverage(id=row.id, at=as_utc(row.at), records=row.records,
                    chains=len(row.heads), hash=row.hash)


def verify(session: Session) -> ChainReport:
    """Walk every chain and the checkpoints; name the first broken link and what the
    latest checkpoint covers."""
    coverage = latest_checkpoint(session)
    records = chains = 0

    def broken(where: str) -> ChainReport:
        return ChainReport(False, records, chains, where, coverage)

    seen: dict[str, dict[int, str]] = {}
    prev_key: str | None = None
    prev_hash: str | None = None
    expected_seq = 1
    result = session.execute(
        select(AUDIT).order_by(AUDIT.c.aggregate_type, AUDIT.c.aggregate_id, AUDIT.c.seq)
    )
    for r in result:
        key = f"{r.aggregate_type}/{r.aggregate_id}"
        if key != prev_key:
            chains += 1
            prev_key, prev_hash, expected_seq = key, None, 1
        records += 1
        where = f"audit record {key}#{r.seq} (id {r.id})"
        if r.seq != expected_seq:
            return broken(f"{where}: expected seq {expected_seq}")
        if r.prev_hash != prev_hash:
            return broken(f"{where}: prev_hash does not link")
        if _record_hash(r) != r.hash:
            return broken(f"{where}: content does not match hash")
        seen.setdefault(key, {})[r.seq] = r.hash
        prev_hash, expected_seq = r.hash, expected_seq + 1

    previous: str | None = None
    for c in session.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.id)):
        where = f"audit checkpoint {c.id}"
        if c.prev_hash != previous:
            return broken(f"{where}: prev_hash does not link")
        recomputed = _digest(
            [as_utc(c.at).isoformat(timespec="microseconds"), c.records, c.heads, c.prev_hash]
        )
        if recomputed != c.hash:
            return broken(f"{where}: content does not match hash")
        for key, (seq, head_hash) in c.heads.items():
            if seen.get(key, {}).get(seq) != head_hash:
                return broken(f"{where}: chain {key} lost or changed record {seq}")
        previous = c.hash
    return ChainReport(True, records, chains, None, coverage)
