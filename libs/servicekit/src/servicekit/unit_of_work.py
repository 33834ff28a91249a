"""One transaction per command: state, audit record, outbox events and idempotency key.

A handler loads, calls the domain, then::

    uow.record("call", call.id, "open", from_status="draft", to_status="open")
    uow.emit("call.opened", call.id, {...})
    return uow.commit(CallRead.model_validate(call))

Everything commits together or not at all; the relay is woken after the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from servicekit import audit, cloudevent, idempotency, outbox
from servicekit.auth import OptionalPrincipal, Principal
from servicekit.problems import Conflict
from servicekit.telemetry import current_traceparent

if TYPE_CHECKING:
    from servicekit.service import Kit

REPLAY_HEADER = "Idempotent-Replayed"


class UnitOfWork:
    def __init__(
        self,
        kit: Kit,
        session: Session,
        principal: Principal | None,
        claim: idempotency.IdempotencyClaim | None,
        request_state: Any = None,
    ) -> None:
        self.kit = kit
        self.session = session
        self.principal = principal
        self.claim = claim
        self.now: datetime = kit.clock.now()
        self._request_state = request_state
        self._staged_events = 0

    @property
    def actor(self) -> audit.Actor:
        if self.principal is None:
            return audit.Actor(id="anonymous", role="anonymous")
        # The role the route admitted the caller under (set by require_roles).
        role = getattr(self._request_state, "acting_role", None) or self.principal.acting_role(
            sorted(self.principal.roles)
        )
        return audit.Actor(id=self.principal.sub, role=role, org=self.principal.org)

    def record(
        self,
        aggregate_type: str,
        aggregate_id: str,
        action: str,
        *,
        from_status: str | None = None,
        to_status: str | None = None,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        new: bool = False,
    ) -> None:
        """Append to the aggregate's audit chain (who, when, what, why)."""
        audit.append(
            self.session, aggregate_type=aggregate_type, aggregate_id=aggregate_id,
            actor=self.actor, action=action, at=self.now, from_status=from_status,
            to_status=to_status, reason=reason,
            data=jsonable_encoder(data) if data is not None else None, new=new,
        )

    def emit(self, name: str, subject: str, data: Any) -> str:
        """Stage ``vn.gov.most.<service>.<name>.v1`` in the outbox; returns the event id."""
        event = cloudevent.build(
            service=self.kit.name,
            type_=cloudevent.event_type(self.kit.name, name),
            subject=subject,
            data=jsonable_encoder(data),
            time=self.now,
            traceparent=current_traceparent(),
        )
        outbox.stage(self.session, event, topic=self.kit.settings.topic, now=self.now)
        self._staged_events += 1
        return event.get_id()

    def commit(self, body: Any, status_code: int = 200) -> JSONResponse:
        """Commit everything (with the idempotency record) and answer ``body``."""
        payload = jsonable_encoder(body)
        if self.claim is not None and self.principal is not None:
            idempotency.remember(
                self.session, self.principal.sub, self.claim,
                idempotency.StoredResponse(status_code, payload), self.now,
            )
        try:
            self.session.commit()
        except IntegrityError as exc:
            self.session.rollback()
            if self.claim is not None and self.principal is not None:
                stored = idempotency.lookup(self.session, self.principal.sub, self.claim)
                if stored is not None:  # a concurrent retry with the same key won
                    self.session.rollback()
                    return replay_response(stored)
            raise Conflict("the resource was changed concurrently; retry the request") from exc
        if self._staged_events:
            self.kit.wake_relay()
        return JSONResponse(payload, status_code=status_code)


def replay_response(stored: idempotency.StoredResponse) -> JSONResponse:
    return JSONResponse(stored.body, status_code=stored.status_code,
                        headers={REPLAY_HEADER: "true"})


def get_uow(
    request: Request,
    principal: OptionalPrincipal,
    claim: Annotated[idempotency.IdempotencyClaim | None, Depends(idempotency.read_claim)],
) -> Iterator[UnitOfWork]:
    kit: Kit = request.app.state.kit
    with kit.sessions() as session:
        if claim is not None and principal is not None:
            stored = idempotency.lookup(session, principal.sub, claim)
            if stored is not None:
                raise idempotency.IdempotentReplay(stored)
        yield UnitOfWork(kit, session, principal, claim, request.state)


def get_session(request: Request) -> Iterator[Session]:
    """A read-only session for queries."""
    with request.app.state.kit.sessions() as session:
        yield session


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_now(request: Request) -> datetime:
    """``now`` from the service's injectable clock."""
    return request.app.state.kit.clock.now()


NowDep = Annotated[datetime, Depends(get_now)]
