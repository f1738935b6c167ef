"""Blocking database work from async endpoints, with bounded concurrency.

Uvicorn serves on one event loop; database calls run in worker threads. Letting 40 threads at once
queue for the GIL and for pool connections costs more than it gains, so database work goes through
one limiter sized like the connection pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

T = TypeVar("T")


def limiter_for(concurrency: int) -> CapacityLimiter:
    return CapacityLimiter(concurrency)


async def in_db_thread(request: Request, function: Callable[..., T], *args: object) -> T:
    limiter: CapacityLimiter = request.app.state.db_limiter
    return await anyio.to_thread.run_sync(function, *args, limiter=limiter)
