"""The edge: what every request meets before it reaches a service, in both modes.

One pure ASGI middleware in front of the gateway's routes and its mounts (the services
themselves under ``make run``, proxies to them otherwise), doing in order:

1. ``X-Request-Id``: the caller's when it looks like an id (up to 128 of
   ``[A-Za-z0-9._:-]``), else a new one; on the request the services see and on the
   answer. A client's ``X-Forwarded-Prefix`` is dropped (the services name the public
   path from it), and so is its ``X-Forwarded-For`` unless the peer is a trusted proxy.
2. The route table (``gateway.route_table``): a request it has no row for is a 404 (405
   when the path has other methods) and reaches no service; nor does a service's
   ``/metrics``, its own documents, or a path with ``.``/``..`` segments.
3. The rate limit of the client address, in the route's class.
4. The bearer token, when one is sent (401 if it does not verify, on public routes too);
   a route with roles needs a token holding one of them (401 without one, 403 with none
   of the roles).
5. The rate limit of the token's subject.
6. The route template on the request's span (FastAPI's, which continues the caller's
   trace), and one access-log line and the route's metrics once the answer is sent.

Every refusal is problem+json. The gateway's ``/metrics`` answers only the networks in
``GATEWAY_METRICS_NETWORKS`` (404 to others); probes are never rate limited.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import route_table
from gateway.access import AccessRecorder
from gateway.addresses import ClientAddresses, Networks
from gateway.authn import EdgeAuthenticator
from gateway.ratelimits import RateLimits
from gateway.routes import Route, RouteTable
from servicekit.auth import Principal
from servicekit.problems import Problem, problem_response

REQUEST_ID = b"x-request-id"
_FORWARDED_FOR = b"x-forwarded-for"
_FORWARDED_PREFIX = b"x-forwarded-prefix"
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


@dataclass(slots=True)
class Passage:
    """One request at the edge: what the edge settled on, and what its access line says."""

    method: str
    path: str
    rid: bytes
    client: str
    route: Route | None
    headers: list[tuple[bytes, bytes]]  # as the service sees them: the id set, spoofs gone
    fields: dict[str, Any]
    started: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the edge answers itself, as problem+json."""

    status: int
    detail: str
    kind: str | None = None
    headers: dict[str, str] | None = None

    def response(self, scope: Scope) -> Response:
        return problem_response(Request(scope), self.status, self.detail, kind=self.kind,
                                headers=self.headers)


class Edge:
    """The edge's steps, for the ASGI middleware (``__call__``) and the gateway's own
    HTTP protocol (``gateway.server``) alike: ``enter``, ``admit``, ``leave``."""

    def __init__(self, app: ASGIApp, *, table: RouteTable, authenticator: EdgeAuthenticator,
                 limits: RateLimits, addresses: ClientAddresses, metrics_networks: Networks,
                 recorder: AccessRecorder) -> None:
        self.app = app
        self.table = table
        self.authenticator = authenticator
        self.limits = limits
        self.addresses = addresses
        self.metrics_networks = metrics_networks
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        passage = self.enter(scope["method"], scope["path"], scope["headers"],
                             scope["client"][0] if scope.get("client") else "-")
        scope["headers"] = passage.headers
        rid, route = passage.rid, passage.route
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if route is not None:
                    _name_span(scope, route)
                headers = [(k, v) for k, v in message.get("headers", ()) if k != REQUEST_ID]
                headers.append((REQUEST_ID, rid))
                message = {**message, "headers": headers}
            await send(message)

        try:
            refusal = await self.admit(passage)
            if refusal is not None:
                await refusal.response(scope)(scope, receive, send_observed)
            else:
                await self.app(scope, receive, send_observed)
        finally:
            self.leave(passage, status)

    def enter(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
              peer: str, started: float | None = None) -> Passage:
        """The request's id, client address, route and the headers a service may see;
        its latency is timed from ``started`` (``perf_counter``; by default, now)."""
        if started is None:
            started = perf_counter()
        given_id: bytes | None = None
        forwarded_for: list[bytes] = []
        for key, value in headers:
            if key == REQUEST_ID:
                given_id = value
            elif key == _FORWARDED_FOR:
                forwarded_for.append(value)
        rid = given_id if given_id and _VALID_ID.fullmatch(given_id) else new_request_id()
        client = self.addresses.client(peer, forwarded_for)
        drop = (_DROP_TRUSTED if forwarded_for and self.addresses.trusts(peer)
                else _DROP_UNTRUSTED)
        kept = [(k, v) for k, v in headers if k not in drop]
        kept.append((REQUEST_ID, rid))
        fields: dict[str, Any] = {"request_id": rid.decode("latin-1"), "method": method,
                                  "path": path, "subject": "-", "client": client}
        return Passage(method, path, rid, client, self.table.match(method, path), kept,
                       fields, started)

    def immediate(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether ``admit_now`` can decide: counters in memory, no key to fetch."""
        return self.limits.immediate and self.authenticator.immediate(headers)

    async def admit(self, passage: Passage) -> Refusal | None:
        """None when the request may go on; otherwise how the edge refuses it."""
        if self.immediate(passage.headers):
            return self.admit_now(passage)
        decided, refusal = self._by_route(passage)
        if decided:
            return refusal
        rate_class = passage.route.rate_class  # type: ignore[union-attr]
        if (wait := await self.limits.over("address", rate_class, passage.client)) is not None:
            return _too_many(wait, "this client address")
        try:
            principal = await self.authenticator.principal(passage.headers)
        except Problem as exc:
            return Refusal(exc.status, exc.detail, exc.kind, exc.headers)
        if refusal := self._by_caller(passage, principal):
            return refusal
        if principal is not None and (
                wait := await self.limits.over("subject", rate_class, principal.sub)):
            return _too_many(wait, "this caller")
        return None

    def admit_now(self, passage: Passage) -> Refusal | None:
        """``admit`` when ``immediate``: the same steps, in the same order, none waiting."""
        decided, refusal = self._by_route(passage)
        if decided:
            return refusal
        rate_class = passage.route.rate_class  # type: ignore[union-attr]
        if (wait := self.limits.over_now("address", rate_class, passage.client)) is not None:
            return _too_many(wait, "this client address")
        try:
            principal = self.authenticator.principal_now(passage.headers)
        except Problem as exc:
            return Refusal(exc.status, exc.detail, exc.kind, exc.headers)
        if refusal := self._by_caller(passage, principal):
            return refusal
        if principal is not None and (
                wait := self.limits.over_now("subject", rate_class, principal.sub)):
            return _too_many(wait, "this caller")
        return None

    def _by_route(self, passage: Passage) -> tuple[bool, Refusal | None]:
        """Whether the route alone decides (no row: 404 or 405; probes and the metrics),
        and how."""
        route, method, path = passage.route, passage.method, passage.path
        if route is None:
            allowed = self.table.allowed_methods(path)
            if allowed:
                return True, Refusal(405, f"{method} is not allowed on {path}",
                                     headers={"Allow": ", ".join(allowed)})
            return True, Refusal(404, f"no resource at {method} {path}")
        if route.access == route_table.PROBE:
            return True, None
        if route.access == route_table.INTERNAL:
            if self.metrics_networks.contains(passage.client):
                return True, None
            return True, Refusal(404, f"no resource at {method} {path}")
        return False, None

    def _by_caller(self, passage: Passage, principal: Principal | None) -> Refusal | None:
        """The caller named on the access line, and refused without one of the roles."""
        if principal is not None:
            passage.fields["subject"] = principal.sub
        route = passage.route
        assert route is not None
        return None if route.public else _authorise(route, principal)

    def leave(self, passage: Passage, status: int, ids: tuple[int, int] | None = None,
              ) -> None:
        """The request's access line and metrics, once its answer is sent (trace ids:
        ``ids``, its span's trace and span ids, else the current span's)."""
        self.recorder.record(passage.route or self.recorder.unmatched, status,
                             perf_counter() - passage.started, passage.fields, ids)


# A client's X-Forwarded-Prefix never reaches a service; its X-Forwarded-For only from a
# trusted proxy; its X-Request-Id is replaced by the one the edge settled on.
_DROP_TRUSTED = frozenset({REQUEST_ID, _FORWARDED_PREFIX})
_DROP_UNTRUSTED = _DROP_TRUSTED | {_FORWARDED_FOR}


def new_request_id() -> bytes:
    """A fresh request id: 32 hex digits (an id, not a secret: no ``getrandom`` call per
    request), from a generator of its own, so that the ids a client sees tell nothing of
    the trace ids OpenTelemetry draws from ``random``'s."""
    return b"%032x" % _ids.getrandbits(128)


_ids = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_ids.seed)  # a forked worker draws its own


def _name_span(scope: Scope, route: Route) -> None:
    """The request's span (FastAPI's) named by the table's template: routing only saw
    the mount (``/grants/{path}``) where the service runs behind the proxy."""
    telemetry = scope.get("fastapi.telemetry")
    if telemetry is not None and hasattr(telemetry, "route"):
        telemetry.route = route.template  # what FastAPI puts in http.route at the end
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{route.method} {route.template}")
        span.set_attribute("http.route", route.template)


def _authorise(route: Route, principal: Principal | None) -> Refusal | None:
    if principal is None:
        return Refusal(401, "a valid bearer token is required", "unauthenticated",
                       {"WWW-Authenticate": "Bearer"})
    if principal.roles.isdisjoint(route.roles):
        return Refusal(403, "this action needs one of the roles: "
                       + ", ".join(sorted(route.roles)), "forbidden")
    return None


def _too_many(wait: int, who: str) -> Refusal:
    return Refusal(429, f"too many requests from {who}; retry in {wait} s", "rate-limited",
                   {"Retry-After": str(wait)})
