"""Request bodies over the limit: 413 problem+json, before or while they are read.

A ``Content-Length`` above the limit is answered at once; a body sent without one (in
chunks) is stopped once it passes the limit, with an ``HTTPException`` that FastAPI
passes on from its body parsing and ``problems.install`` answers like any other. Used
instead of FastAPI's own ``max_body_size``, whose early answers are plain text.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.problems import problem_response


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the body is larger than this API takes ({max_bytes} bytes)")


class BodyLimit:
    """Pure ASGI middleware: at most ``max_bytes`` of request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                too_large = BodyTooLarge(self.max_bytes)
                response = problem_response(Request(scope, receive), 413, too_large.detail,
                                            kind="payload-too-large")
                await response(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)
