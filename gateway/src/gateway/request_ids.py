"""``X-Request-ID`` on every request through the gateway, and echoed on its response.

A caller's own id is kept when it looks like an id (up to 128 of ``[A-Za-z0-9._:-]``);
otherwise the gateway makes one. Services behind the gateway, forwarded or mounted,
see the header on the request.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def request_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == HEADER:
            return value.decode("latin-1")
    return None


class RequestIdMiddleware:
    """Pure ASGI middleware: cheaper than ``BaseHTTPMiddleware`` on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != HEADER]
        given = [v for k, v in scope["headers"] if k == HEADER]
        rid = given[0] if given and _VALID.fullmatch(given[0]) else uuid.uuid4().hex.encode()
        headers.append((HEADER, rid))
        scope = {**scope, "headers": headers}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                out.append((HEADER, rid))
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_id)
