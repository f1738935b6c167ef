"""Group commit for the intake: requests arriving together are written in one transaction.

Each accepted request must be durable before its ``202``; committing them one by one spends a
commit (a WAL flush) and a thread hand-off per request. The API hands prepared requests to one
writer thread, which takes whatever has queued up (up to ``max_batch``), writes it in a single
transaction and answers every waiting request once the commit returned: the same durability, with
commits shared. If the batch fails, each request is retried alone, so one bad row cannot fail the
others. Idempotency is unchanged: each request still meets earlier ones at the unique index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass

from hub.db.batched import next_batch
from hub.intake import Accepted, Prepared, record_many, recorded
from hub.runtime import Hub

log = logging.getLogger("hub.group_commit")
WRITE_TIMEOUT_S = 30.0


@dataclass
class _Pending:
    prepared: Prepared
    future: asyncio.Future[Accepted]
    loop: asyncio.AbstractEventLoop


class GroupCommitter:
    def __init__(self, hub: Hub, *, max_batch: int = 128) -> None:
        self.hub = hub
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hub-intake-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.written = 0
        self._stopped = False

    async def record(self, prepared: Prepared) -> Accepted:
        """Wait until ``prepared`` is committed; :class:`Unavailable` if it cannot be written now."""
        if self._stopped or not self._thread.is_alive():
            raise Unavailable("the hub is shutting down; retry with the same Idempotency-Key")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accepted] = loop.create_future()
        self._queue.put(_Pending(prepared, future, loop))
        try:
            return await asyncio.wait_for(future, WRITE_TIMEOUT_S)
        except TimeoutError:
            # Perhaps written after all: the same Idempotency-Key will tell, without a duplicate.
            raise Unavailable(
                "the database did not confirm in time; retry with the same Idempotency-Key"
            ) from None

    def stop(self) -> None:
        self._stopped = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (batch := next_batch(self._queue, self.max_batch)) is not None:
            try:
                self._write(batch)
            except Exception:  # never let the writer die: every later request would hang
                log.exception("intake writer failed on a batch of %d", len(batch))
                for item in batch:
                    with contextlib.suppress(RuntimeError):  # its event loop may be closed
                        item.loop.call_soon_threadsafe(_settle, [(item.future, _failure())])

    def _write(self, batch: list[_Pending]) -> None:
        outcomes: list[Accepted | BaseException]
        try:
            with self.hub.db.connection() as connection:
                outcomes = list(record_many(connection, [item.prepared for item in batch]))
        except Exception:
            if len(batch) == 1:
                log.exception("intake write failed")
                outcomes = [_failure()]
            else:  # isolate the culprit: every request alone, in its own transaction
                log.warning("a batch of %d requests failed; writing them one by one", len(batch))
                outcomes = []
                for item in batch:
                    try:
                        with self.hub.db.connection() as connection:
                            outcomes += record_many(connection, [item.prepared])
                    except Exception:
                        log.exception("intake write failed")
                        outcomes.append(_failure())
        self.batches += 1
        self.written += len(batch)
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Accepted], object]]] = {}
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                recorded(self.hub, outcome)
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop has no one waiting any more
                loop.call_soon_threadsafe(_settle, settled)


class Unavailable(Exception):
    """The request was not recorded for a reason of the hub's (database down, shutting down)."""


def _failure() -> BaseException:
    return Unavailable("the request could not be recorded now; retry with the same Idempotency-Key")


def _settle(settled: list[tuple[asyncio.Future[Accepted], object]]) -> None:
    for future, outcome in settled:
        if future.cancelled():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]
