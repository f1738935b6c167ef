"""``hub serve``: uvicorn with the API and, by default, an embedded worker in the same process."""

from __future__ import annotations

import uvicorn

from hub.api.app import create_app
from hub.runtime import Hub
from hub.worker import run_in_thread


def make_server(hub: Hub, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(hub),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def serve(hub: Hub, host: str, port: int, *, with_worker: bool = True) -> None:
    thread, stop = run_in_thread(hub) if with_worker else (None, None)
    base = f"http://{host}:{port}"
    print(f"hub: API on {base} (docs: {base}/docs, metrics: {base}/metrics)", flush=True)
    try:
        make_server(hub, host, port).run()
    finally:
        if stop is not None and thread is not None:
            stop.set()
            thread.join(timeout=10)
        hub.close()
