"""Sandbox back-ends served over real loopback sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from starlette.types import ASGIApp

from sandbox.runner import ServerThread, bind_socket


@pytest.fixture
def serve_app() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve an ASGI app with uvicorn on a free loopback port; gives its base URL."""
    servers: list[ServerThread] = []

    def serve(app: ASGIApp) -> str:
        server = ServerThread("test", app, bind_socket("127.0.0.1", 0))
        servers.append(server)
        server.start()
        return f"http://127.0.0.1:{server.port}"

    yield serve
    for server in servers:
        server.stop()
