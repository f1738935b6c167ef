"""One error shape for every answer: ``{"error": {"code", "message", "details"}}``.

Codes are stable and documented in docs/api.md; clients branch on ``code``, people read ``message``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hub.api.threads import in_db_thread
from hub.intake import journal_refused

STATUS_CODES = {
    400: "malformed_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    500: "internal_error",
    503: "unavailable",
}


log = logging.getLogger("hub.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None, headers=None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers


def error_response(status: int, code: str, message: str, details: Any = None, headers=None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """pydantic errors as ``[{field: "citizen.birth_date", message: ...}]``."""
    details = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
        field = ".".join(loc).replace(".[", "[")
        details.append({"field": field or "(body)", "message": error.get("msg", "invalid")})
    return details


def operation_of(request: Request) -> str:
    """The journal's name of a call: its method and route (``GET /v1/citizens/{golden_id}``)."""
    route = request.scope.get("route")
    return f"{request.method} {route.path if route is not None else request.url.path}"


async def journal_refusal(request: Request, code: str, raw: bytes = b"") -> None:
    """Journal a refusal made before the route runs (FastAPI's parameter checks, a body refused by
    :mod:`hub.api.body`) as the authenticated caller's; an anonymous caller's is not journaled (anyone
    could fill the journal). A route that journals its own refusals (``POST /v1/requests``) does not
    come here for them."""
    principal = getattr(request.state, "principal", None)  # set by hub.api.security
    if principal is not None:
        hub = request.app.state.hub
        await in_db_thread(request, journal_refused, hub, principal.name, operation_of(request), code, raw)


def _routed_without_slash(request: Request) -> str | None:
    """The path without its trailing slash, when a route serves that one (the hint of a 404)."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": path.rstrip("/")}
    if any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes):
        return scope["path"]
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI validates parameters (a query, an Idempotency-Key over 200 characters) after the
        # authentication dependency and before the route runs: the route cannot journal the
        # refusal, so it is journaled here when the caller was authenticated (docs/api.md).
        await journal_refusal(request, "validation_failed")
        return error_response(
            422, "validation_failed", "the request is invalid", validation_details(list(exc.errors()))
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and request.scope.get("route") is None:
            message = f"no route {request.method} {request.url.path}"
            bare = _routed_without_slash(request)
            if bare is not None:
                message += f"; without the trailing slash: {bare}"
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    async def _database(_request: Request, exc: Exception) -> JSONResponse:
        # The hub's own database failed (restarted, unreachable, disk full, locked): nothing was
        # changed (the unit of work rolled back), and the same call will work once it is back.
        # Other driver errors (a constraint, a bad statement) are the hub's defects: 500, logged.
        orig = getattr(exc, "orig", None)
        log.warning("database error answered 503: %s", type(orig).__name__ if orig else exc)
        return error_response(
            503, "unavailable", "the database is unavailable; retry shortly", headers={"Retry-After": "5"}
        )

    for unavailable in (OperationalError, InterfaceError):
        app.add_exception_handler(unavailable, _database)

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold, from the client's own input: PostgreSQL's text has no
        # NUL, and the driver refuses one in a path or query parameter before sending it. Bad
        # input, answered as such (after authentication, which ran first); anything else is ours.
        if "NUL" in str(exc.orig):
            return error_response(400, "invalid_characters", "a parameter holds a NUL character")
        log.error("database refused a value: %s", exc.orig)
        return error_response(500, "internal_error", "an unexpected error occurred; it was logged")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "an unexpected error occurred; it was logged")
