"""The FastAPI application: thin routers over the hub's services (OpenAPI at ``/docs``)."""

from __future__ import annotations

from fastapi import FastAPI

from hub.api import errors, ops, requests
from hub.runtime import Hub

DESCRIPTION = """
The hub between the citizen portal / business applications and the municipality's back-end
systems. File a démarche with `POST /v1/requests` and follow it at its status URL.
Every error answers `{"error": {"code", "message", "details"}}`; codes are listed in docs/api.md.
"""


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(title="Municipal integration hub", version="0.1.0", description=DESCRIPTION)
    app.state.hub = hub
    errors.install(app)
    app.include_router(requests.router)
    app.include_router(ops.router)
    return app
