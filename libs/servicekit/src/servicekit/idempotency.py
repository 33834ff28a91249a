"""``Idempotency-Key`` on POST: replay the first response, refuse a changed body.

The key is scoped to the caller (``sub``) and the route (method and path). Its record
is written in the same transaction as the command's effects, so a command that fails
leaves no key behind, and a unique key settles races between concurrent retries.

Everything about the key is here, in the order a command meets it:

1. :func:`read_claim`: the request's key and a hash of its body (the *claim*);
2. :func:`lookup`: the answer stored for the claim, if any (422 when the key came with
   another body); a stored answer is raised as :class:`IdempotentReplay`, which
   :func:`install` answers with the stored response and ``Idempotent-Replayed: true``;
3. :func:`record`: the row that stores the command's answer, written with its effects;
4. :func:`replay_if_won`: after the command was refused (a 409, or a unique index at its
   commit), the answer of a concurrent request with the same key that won meanwhile;
   else the refusal stands (a 409: ``servicekit.problems``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from sqlalchemy import Column, Connection, Text, bindparam, select
from sqlmodel import Field, Session, SQLModel

from servicekit.problems import Invalid
from servicekit.responses import OrjsonResponse
from servicekit.types import UtcDateTime

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    principal: str = Field(primary_key=True, max_length=200)
    route: str = Field(primary_key=True, max_length=400)
    key: str = Field(primary_key=True, max_length=MAX_KEY_LENGTH)
    request_hash: str = Field(max_length=64)
    status_code: int
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


IDEMPOTENCY = IdempotencyRecord.__table__
# Built once (every POST with a key runs it).
_LOOKUP = select(IDEMPOTENCY.c.request_hash, IDEMPOTENCY.c.status_code, IDEMPOTENCY.c.body).where(
    IDEMPOTENCY.c.principal == bindparam("lookup_principal"),
    IDEMPOTENCY.c.route == bindparam("lookup_route"),
    IDEMPOTENCY.c.key == bindparam("lookup_key"),
)


@dataclass(frozen=True)
class IdempotencyClaim:
    key: str
    route: str
    request_hash: str


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


class IdempotentReplay(Exception):
    """Raised when a request repeats a stored one; rendered as the stored response."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("idempotent replay")
        self.stored = stored


# A header value is ASCII on the wire (RFC 9110 §5.5); the Idempotency-Key draft makes it
# a structured-field string: printable ASCII. The document says the same (KEY_PATTERN).
KEY_PATTERN = r"^[ -~]*[!-~][ -~]*$"


def valid_key(key: str) -> bool:
    """1..MAX_KEY_LENGTH printable ASCII characters, not all blank."""
    return (0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()
            and not key.isspace())


async def read_claim(request: Request) -> IdempotencyClaim | None:
    """The request's idempotency claim, if it sent a key (POST only)."""
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST":
        return None
    key = key.strip()
    if not valid_key(key):
        raise Invalid(f"{HEADER} must be 1..{MAX_KEY_LENGTH} printable ASCII characters",
                      loc=["header", HEADER])
    body = await request.body()
    digest = hashlib.sha256(_canonical_body(body)).hexdigest()
    return IdempotencyClaim(key=key, route=f"{request.method} {request.url.path}",
                            request_hash=digest)


def _canonical_body(body: bytes) -> bytes:
    """Hash JSON bodies by content, so whitespace and key order do not matter."""
    try:
        return json.dumps(json.loads(body or b"null"), sort_keys=True,
                          separators=(",", ":")).encode()
    except ValueError:
        return body


def lookup(db: Session | Connection, principal: str,
           claim: IdempotencyClaim) -> StoredResponse | None:
    """The stored response for this claim; 422 when the key was used with another body."""
    statement, params = lookup_query(principal, claim)
    return stored_response(db.execute(statement, params).all(), claim)


def lookup_query(principal: str, claim: IdempotencyClaim) -> tuple[Any, dict[str, Any]]:
    """The prebuilt SELECT of :func:`lookup` and its parameters, to run with others."""
    return _LOOKUP, {"lookup_principal": principal, "lookup_route": claim.route,
                     "lookup_key": claim.key}


def stored_response(rows: Sequence[Any], claim: IdempotencyClaim) -> StoredResponse | None:
    """:func:`lookup`'s answer from the rows of :func:`lookup_query`."""
    row = rows[0] if rows else None
    if row is None:
        return None
    if row.request_hash != claim.request_hash:
        raise Invalid(
            f"{HEADER} '{claim.key}' was already used with a different request body",
            loc=["header", HEADER], kind="idempotency-key-reused",
        )
    return StoredResponse(status_code=row.status_code, body=orjson.loads(row.body))


def record(
    principal: str, claim: IdempotencyClaim, response: StoredResponse, now: datetime
) -> dict[str, Any]:
    """The ``idempotency_keys`` row that stores ``response``, written with the command."""
    return {
        "principal": principal,
        "route": claim.route,
        "key": claim.key,
        "request_hash": claim.request_hash,
        "status_code": response.status_code,
        "body": orjson.dumps(response.body).decode(),
        "created_at": now,
    }


def replay_if_won(db: Session | Connection, principal: str, claim: IdempotencyClaim) -> None:
    """After a command keyed by ``claim`` was refused (a 409, or a unique index at its
    commit): if a concurrent request with the same key won meanwhile, raise its answer
    to be replayed; else return, and the caller lets the refusal stand.

    Rolls ``db`` back and looks in a new transaction, whose snapshot shows the winner's
    commit: a retry that raced its first attempt, and waited on the row lock that one
    held, finds the row changed by it (a distribution already reversed, say) and would
    otherwise get a 409 instead of the first answer.
    """
    db.rollback()
    stored = lookup(db, principal, claim)
    if stored is not None:
        raise IdempotentReplay(stored)


def replay_response(stored: StoredResponse) -> OrjsonResponse:
    """The stored answer, marked as a replay."""
    return OrjsonResponse(stored.body, status_code=stored.status_code,
                          headers={REPLAY_HEADER: "true"})


def install(app: FastAPI) -> None:
    """Answer :class:`IdempotentReplay` with the stored response."""

    @app.exception_handler(IdempotentReplay)
    async def _replay(_request: Request, exc: IdempotentReplay) -> OrjsonResponse:
        return replay_response(exc.stored)
