"""Liveness and metrics for operators and their monitoring."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from hub.api.openapi import error_responses
from hub.api.threads import in_db_thread

router = APIRouter(tags=["operations"])
_HEALTH = {
    "type": "object",
    "required": ["status", "database"],
    "properties": {
        "status": {"enum": ["ok", "unavailable"]},
        "database": {"type": "string", "description": "ok, or unreachable: <the driver's error class>"},
        "dialect": {"enum": ["sqlite", "postgresql"]},
    },
}


@router.get(
    "/health",
    summary="Liveness and database reachability",
    responses={
        200: {
            "description": "the hub and its database answer",
            "content": {"application/json": {"schema": _HEALTH}},
        },
        503: {
            "description": "the database is unreachable (this answer, not the Error shape)",
            "content": {"application/json": {"schema": _HEALTH}},
        },
        **error_responses(),
    },
)
def health(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    try:
        # The read engine: on SQLite a writer's transaction begins IMMEDIATE and would queue behind
        # a long write (an import), failing liveness for a healthy hub.
        with hub.db.reading() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, 503)
    return JSONResponse({"status": "ok", "database": "ok", "dialect": hub.db.dialect})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **error_responses("unavailable"),
    },
)
async def metrics(request: Request) -> Response:
    body = await in_db_thread(request, request.app.state.hub.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
