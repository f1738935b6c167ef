"""The FastAPI application: thin routers over the hub's services (OpenAPI at ``/docs``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from hub.api import body, citizens, documents, errors, journal, ops, requests, stewardship
from hub.api.threads import limiter_for
from hub.group_commit import GroupCommitter
from hub.runtime import Hub
from hub.worker import run_in_thread

DESCRIPTION = """
The hub between the citizen portal / business applications and the municipality's back-end
systems. File a démarche with `POST /v1/requests` and follow it at its status URL.
Every error answers `{"error": {"code", "message", "details"}}`; codes are listed in docs/api.md.
"""


def create_app(hub: Hub, *, embedded_worker: bool = False) -> FastAPI:
    """The API over ``hub``; with ``embedded_worker``, a worker runs in this process while it serves."""

    committer = GroupCommitter(hub)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        thread, stop = run_in_thread(hub) if embedded_worker else (None, None)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(committer.stop)
            if thread is not None and stop is not None:
                stop.set()
                await anyio.to_thread.run_sync(thread.join, 10)

    app = FastAPI(
        title="Municipal integration hub", version="0.1.0", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.hub = hub
    app.state.db_limiter = limiter_for(hub.config.api.db_concurrency)
    app.state.committer = committer
    errors.install(app)
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(body.SCHEMAS)  # the JSON bodies read by hub.api.body
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(requests.router)
    app.include_router(documents.router)
    app.include_router(ops.router)
    app.include_router(citizens.router)
    app.include_router(stewardship.router)
    app.include_router(journal.router)
    return app
