"""Liveness and metrics for operators and their monitoring."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from hub.api.threads import in_db_thread

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness and database reachability")
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


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    body = await in_db_thread(request, request.app.state.hub.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
