"""What the gateway does not let through from outside, in both modes.

- A service's ``/metrics``: per-route request counts are business volume, and the
  contract opens nothing but health, the public register and published calls without a
  token. Prometheus scrapes each service on its own port, not through the gateway.
- ``X-Forwarded-Prefix`` sent by a client: the services name the public path in problems
  from it. The proxy replaces it with its own; under ``make run`` nothing else would, so
  the gateway removes it before the mounted services see the request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from servicekit.problems import problem_response

_PREFIX_HEADER = b"x-forwarded-prefix"


class EdgeMiddleware:
    """Pure ASGI middleware in front of every mount (see the module's docstring)."""

    def __init__(self, app: ASGIApp, services: Iterable[str]) -> None:
        self.app = app
        names = "|".join(re.escape(s) for s in services)
        self._internal = re.compile(rf"/(?:{names})/metrics/?")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._internal.fullmatch(scope["path"]):
            request = Request(scope, receive)
            response = problem_response(request, 404,
                                        f"no resource at {scope['method']} {scope['path']}")
            await response(scope, receive, send)
            return
        if any(k == _PREFIX_HEADER for k, _ in scope["headers"]):
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k != _PREFIX_HEADER]}
        await self.app(scope, receive, send)
