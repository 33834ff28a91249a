"""RFC 9457 problem details for every error a service returns.

Raise :class:`Problem` (or one of its named subclasses) from a handler or the domain
adapter; :func:`install` turns it, FastAPI's validation errors, Starlette's 404/405 and
any unexpected exception into ``application/problem+json``. A database that cannot be
reached (or a pool with no connection free in time) is a 503 with ``Retry-After``, not
a 500: the request did nothing, and the caller may repeat it.

Two database refusals are the caller's, not the server's, wherever they surface: a value
the database cannot hold (``DataError``: a NUL character in text, a number or date out
of its range) is a 422, and a unique or foreign key the change collides with
(``IntegrityError``, e.g. two requests racing to make the same thing) is a 409. Either
way the transaction was rolled back: nothing was written. The services validate what
they can before that; these are the backstop.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import DataError as DriverDataError
from psycopg import OperationalError as DriverOperationalError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicekit.domain_errors import DomainError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://most.gov.vn/problems/"

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
_UNPARSEABLE_BODY = "There was an error parsing the body"  # fastapi.routing's detail
# The database is down or unreachable, a pool had no connection free in time, or the
# server gave up on the transaction (deadlock, serialisation): nothing was committed.
_UNAVAILABLE = (OperationalError, PoolTimeoutError, DriverOperationalError)

_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """An error meant for the caller. ``kind`` becomes the problem ``type`` URI."""

    status = 400
    kind = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        kind: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.title = title or _TITLES.get(self.status, "Error")
        self.errors = errors
        self.headers = headers
        self.extensions = extensions


class Unauthenticated(Problem):
    status, kind = 401, "unauthenticated"

    def __init__(self, detail: str = "a valid bearer token is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(Problem):
    status, kind = 403, "forbidden"


class NotFound(Problem):
    status, kind = 404, "not-found"


class Conflict(Problem):
    status, kind = 409, "conflict"


class Invalid(Problem):
    """A body that is well-formed JSON but breaks a rule (422), naming the field."""

    status, kind = 422, "invalid"

    def __init__(self, detail: str, *, loc: list[str | int] | None = None, **kw: Any) -> None:
        errors = [{"loc": loc, "msg": detail}] if loc else None
        super().__init__(detail, errors=errors, **kw)


def from_domain(error: DomainError) -> Problem:
    """The problem a domain error is answered with: its status and kind, the field it
    names as ``errors[0].loc`` (``["body", field]``)."""
    loc: list[str | int] | None = ["body", error.field] if error.field else None
    errors = [{"loc": loc, "msg": error.message}] if loc else None
    return Problem(error.message, status=error.status, kind=error.kind, errors=errors)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (kind or _default_kind(status)),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": _public_path(request),
    }
    if errors is not None:
        body["errors"] = errors
    if extensions:
        body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_PREFIX = re.compile(r"/[a-z][a-z0-9-]{0,30}")


def _public_path(request: Request) -> str:
    """The path the caller used: behind the gateway's proxy, with the prefix it removed
    (``X-Forwarded-Prefix``, e.g. ``/ipshare``), as the embedded gateway's mounts show it."""
    prefix = request.headers.get("x-forwarded-prefix", "")
    path = request.url.path
    if _PREFIX.fullmatch(prefix) and not path.startswith(prefix + "/"):
        return prefix + path
    return path


# One type for a 503, whatever is unavailable: a service, its database, its readiness.
_KINDS = {503: "unavailable"}


def _default_kind(status: int) -> str:
    return _KINDS.get(status) or _TITLES.get(status, "error").lower().replace(" ", "-")


def _driver_message(exc: Exception) -> str:
    """The database's own first line, without the SQL SQLAlchemy appends."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


# A field's name or an index; pydantic adds the tag of the union member that failed
# ("function-after[_utc(), ...]"), which names our code, not the caller's field.
_LOC_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if isinstance(p, int) or _LOC_PART.fullmatch(p)]
        out.append({"loc": loc, "msg": err.get("msg", "invalid")})
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that make every error a problem+json response."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request,
            exc.status,
            exc.detail,
            kind=exc.kind,
            title=exc.title,
            errors=exc.errors,
            headers=exc.headers,
            extensions=exc.extensions,
        )

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return await _problem(request, from_domain(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return problem_response(
            request, 422, f"{where}: {first['msg']}", kind="validation", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        if exc.status_code == 400 and detail == _UNPARSEABLE_BODY:
            # FastAPI's answer to a JSON body it could not read at all (not UTF-8, nested
            # too deeply); malformed JSON is already a 422: an invalid body, either way.
            return problem_response(
                request, 422, "the body is not JSON this API reads (not UTF-8, or nested "
                "too deeply)", kind="validation", errors=[{"loc": ["body"],
                                                          "msg": "unreadable JSON"}])
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.method} {_public_path(request)}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {_public_path(request)}"
        return problem_response(request, exc.status_code, detail, headers=exc.headers)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return problem_response(
            request, 503, "the database is unavailable; nothing was changed, retry later",
            kind="unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    for unavailable in _UNAVAILABLE:
        app.add_exception_handler(unavailable, _unavailable)

    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        reason = _driver_message(exc)
        # With the traceback: a value the server computed itself would be a bug to find.
        log.warning("value refused by the database on %s %s: %s", request.method,
                    request.url.path, reason, exc_info=exc)
        return problem_response(
            request, 422, f"a value in the request cannot be stored: {reason}",
            kind="invalid")

    for unstorable in (DataError, DriverDataError):
        app.add_exception_handler(unstorable, _unstorable)

    @app.exception_handler(IntegrityError)
    async def _collided(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("change refused by a constraint on %s %s: %s", request.method,
                    request.url.path, _driver_message(exc), exc_info=exc)
        return problem_response(
            request, 409, "the resource was changed concurrently; retry the request",
            kind="conflict")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "an unexpected error occurred; it has been logged")
