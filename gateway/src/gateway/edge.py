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
import re
from time import perf_counter
from typing import Any

from opentelemetry import trace
from starlette.requests import Request
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


class Edge:
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
        started = perf_counter()
        peer = scope["client"][0] if scope.get("client") else "-"
        given_id: bytes | None = None
        forwarded_for: list[bytes] = []
        for key, value in scope["headers"]:
            if key == REQUEST_ID:
                given_id = value
            elif key == _FORWARDED_FOR:
                forwarded_for.append(value)
        rid = given_id if given_id and _VALID_ID.fullmatch(given_id) else _new_id()
        client = self.addresses.client(peer, forwarded_for)
        drop = (_DROP_TRUSTED if forwarded_for and self.addresses.trusts(peer)
                else _DROP_UNTRUSTED)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in drop]
        scope["headers"].append((REQUEST_ID, rid))

        method, path = scope["method"], scope["path"]
        route = self.table.match(method, path)
        status = 500
        fields: dict[str, Any] = {"request_id": rid.decode("latin-1"), "method": method,
                                  "path": path, "subject": "-", "client": client}

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
            refusal = await self._admit(scope, route, client, fields)
            if refusal is not None:
                await refusal(scope, receive, send_observed)
            else:
                await self.app(scope, receive, send_observed)
        finally:
            self.recorder.record(route or self.recorder.unmatched, status,
                                 perf_counter() - started, fields)

    async def _admit(self, scope: Scope, route: Route | None, client: str,
                     fields: dict[str, Any]) -> Any:
        """None when the request may go on; otherwise the problem response to send."""
        if route is None:
            allowed = self.table.allowed_methods(scope["path"])
            if allowed:
                return _problem(scope, 405, f"{scope['method']} is not allowed on "
                                f"{scope['path']}", headers={"Allow": ", ".join(allowed)})
            return _problem(scope, 404, f"no resource at {scope['method']} {scope['path']}")
        if route.access == route_table.PROBE:
            return None
        if route.access == route_table.INTERNAL:
            if self.metrics_networks.contains(client):
                return None
            return _problem(scope, 404, f"no resource at {scope['method']} {scope['path']}")
        if (wait := await self.limits.over("address", route.rate_class, client)) is not None:
            return _too_many(scope, wait, "this client address")
        try:
            principal = await self.authenticator.principal(scope["headers"])
        except Problem as exc:
            return _problem(scope, exc.status, exc.detail, kind=exc.kind, headers=exc.headers)
        if principal is not None:
            fields["subject"] = principal.sub
        if not route.public and (refusal := _authorise(scope, route, principal)):
            return refusal
        if principal is not None and (
                wait := await self.limits.over("subject", route.rate_class,
                                               principal.sub)) is not None:
            return _too_many(scope, wait, "this caller")
        return None


# A client's X-Forwarded-Prefix never reaches a service; its X-Forwarded-For only from a
# trusted proxy; its X-Request-Id is replaced by the one the edge settled on.
_DROP_TRUSTED = frozenset({REQUEST_ID, _FORWARDED_PREFIX})
_DROP_UNTRUSTED = _DROP_TRUSTED | {_FORWARDED_FOR}


def _new_id() -> bytes:
    return os.urandom(16).hex().encode()


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


def _authorise(scope: Scope, route: Route, principal: Principal | None) -> Any:
    if principal is None:
        return _problem(scope, 401, "a valid bearer token is required", kind="unauthenticated",
                        headers={"WWW-Authenticate": "Bearer"})
    if principal.roles.isdisjoint(route.roles):
        return _problem(scope, 403, "this action needs one of the roles: "
                        + ", ".join(sorted(route.roles)), kind="forbidden")
    return None


def _too_many(scope: Scope, wait: int, who: str) -> Any:
    return _problem(scope, 429, f"too many requests from {who}; retry in {wait} s",
                    kind="rate-limited", headers={"Retry-After": str(wait)})


def _problem(scope: Scope, status: int, detail: str, *, kind: str | None = None,
             headers: dict[str, str] | None = None) -> Any:
    return problem_response(Request(scope), status, detail, kind=kind, headers=headers)
