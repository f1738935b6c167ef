"""The FastAPI application: thin routers over the hub's services (OpenAPI at ``/docs``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from hub.api import body, citizens, documents, errors, journal, openapi, ops, requests, stewardship
from hub.api.docs_policy import DocsPolicy
from hub.api.threads import limiter_for
from hub.group_commit import GroupCommitter
from hub.runtime import Hub
from hub.worker import run_in_thread

DESCRIPTION = """
The hub between the citizen portal / business applications and the municipality's back-end
systems. File a démarche with `POST /v1/requests` and follow it at its status URL.
Every error answers `{"error": {"code", "message", "details"}}` (schema `Error`); each operation
lists the codes it can answer, and docs/api.md explains them all. Two answers belong to no
operation: a path the hub does not serve is a 404 `not_found` (a trailing slash is not stripped:
`/v1/requests/` is no route), a method a path does not take a 405 `method_not_allowed`.
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

    # /docs and /redoc load their scripts from the hub (fastapi-offline), never from a CDN: the
    # documentation works on a municipal network without Internet access.
    app = FastAPIOffline(
        title="Municipal integration hub",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url="/docs/assets",
        # No redirect to the path without its slash: a bare 307 (a POST re-sent elsewhere) where
        # the caller needs the hub's JSON 404.
        redirect_slashes=False,
        swagger_ui_parameters={"validatorUrl": None},  # else a badge image from swagger.io
    )
    app.state.hub = hub
    app.state.db_limiter = limiter_for(hub.config.api.db_concurrency)
    app.state.committer = committer
    errors.install(app)
    # ... and the pages' own scripts reach no other origin either (ReDoc's CDN logo, for one).
    app.add_middleware(DocsPolicy, paths=("/docs", "/redoc"))
    generate = app.openapi

    def completed_openapi() -> dict:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in body.SCHEMAS.items():  # the JSON bodies read by hub.api.body
                # one name, two models (an answer's and a body's): one would silently replace the other
                if schemas.setdefault(name, schema) != schema:
                    raise RuntimeError(f"two OpenAPI schemas named {name!r}: rename one model")
            # RequestBody becomes one variant per loaded flow there
            app.openapi_schema = openapi.complete(document, hub)
        return app.openapi_schema

    app.openapi = completed_openapi  # type: ignore[method-assign]
    app.include_router(requests.router)
    app.include_router(documents.router)
    app.include_router(ops.router)
    app.include_router(citizens.router)
    app.include_router(stewardship.router)
    app.include_router(journal.router)
    return app
