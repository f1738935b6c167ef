"""``hub serve``: uvicorn with the API and, by default, an embedded worker in each process.

One process is the embedded default. ``--processes N`` runs N uvicorn worker processes sharing the
port (production on several cores): each builds its own hub from the same configuration and
database, and each runs its own embedded worker; outbox claims keep them from stepping on each
other (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, one writer at a time on SQLite).
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from hub.api.app import create_app
from hub.runtime import Hub, build_hub

_WORKER_VARIABLE = "HUB_SERVE_EMBEDDED_WORKER"
_UVICORN = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 5}


def tune_for_serving() -> None:
    """Tune the interpreter for serving (the API, standalone workers): start-up objects (config,
    WSDLs, models) moved out of the garbage collector's way, young objects collected less often
    (full collections were the API's tail latency), and a shorter GIL switch interval."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    # The intake writer thread wakes from database I/O while the event loop computes; a shorter
    # switch interval hands it the GIL sooner (the default 5 ms showed in every batch's latency).
    sys.setswitchinterval(0.001)


def serve(
    hub: Hub,
    host: str,
    port: int,
    *,
    with_worker: bool = True,
    processes: int = 1,
    config_path: Path | None = None,
) -> None:
    base = f"http://{host}:{port}"
    print(f"hub: API on {base} (docs: {base}/docs, metrics: {base}/metrics)", flush=True)
    if processes == 1:
        app = create_app(hub, embedded_worker=with_worker)
        tune_for_serving()
        try:
            uvicorn.Server(uvicorn.Config(app, host=host, port=port, **_UVICORN)).run()
        finally:
            hub.close()
        return
    # Each process rebuilds the hub from the environment; the schema is already migrated.
    hub.close()
    os.environ[_WORKER_VARIABLE] = "1" if with_worker else "0"
    os.environ["HUB_DATABASE_URL"] = hub.db.url
    if config_path is not None:
        os.environ["HUB_CONFIG"] = str(config_path)
    uvicorn.run(
        "hub.server:app_from_environment", factory=True, host=host, port=port, workers=processes, **_UVICORN
    )


def app_from_environment() -> FastAPI:
    """The app of one ``--processes`` worker process (called by uvicorn in each process)."""
    hub = build_hub(migrate=False)
    app = create_app(hub, embedded_worker=os.environ.get(_WORKER_VARIABLE, "1") == "1")
    tune_for_serving()
    return app
