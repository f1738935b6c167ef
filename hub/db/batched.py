"""Group commit for the worker: small units of work from many flows share one transaction.

A flow writes a journal row per back-end call and a checkpoint per step with an effect, each of
which must be durable before the flow goes on. Written one transaction each, they cost a
connection checkout, a BEGIN, a COMMIT (a WAL flush) and a checkin apiece, and on SQLite they
queue for the single writer one by one. Here each unit (a function of a Core connection) is
handed to one writer thread, which runs whatever has queued up in one transaction, commits once,
and only then hands every unit its result: the same durability, with the commit and the
connection shared by the batch.

Units must be plain database work (no calls to back-ends, nothing that cannot be redone): if
the batch fails, it is rolled back and every unit runs again alone, so one failing unit gets
its own exception and the others are unaffected.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

log = logging.getLogger("hub.db.batched")
T = TypeVar("T")
Unit = Callable[[Connection], Any]


Q = TypeVar("Q")


def next_batch(pending: queue.SimpleQueue[Q | None], max_batch: int) -> list[Q] | None:
    """Wait for an item, then take whatever else has queued, up to ``max_batch``: what one commit
    will carry. None once the stop marker (``None``) comes first; a marker found behind items is
    put back, so the batch in hand is written before the writer stops."""
    first = pending.get()
    if first is None:
        return None
    batch = [first]
    while len(batch) < max_batch:
        try:
            item = pending.get_nowait()
        except queue.Empty:
            break
        if item is None:
            pending.put(None)
            break
        batch.append(item)
    return batch


class BatchedWriter:
    """Runs units of work in shared transactions on a thread of its own (started on first use)."""

    def __init__(self, engine: Engine, turn: AbstractContextManager[Any], *, max_batch: int = 64) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._turn = turn  # the database's writer turn (SQLite's single writer, shared in-process)
        self._queue: queue.SimpleQueue[tuple[Unit, Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.units = 0

    def run(self, unit: Callable[[Connection], T]) -> T:
        """Run ``unit`` in the next shared transaction; return its result once committed.

        Raises what the unit raised (its writes undone), or the database's error if the commit
        failed; either way nothing of the unit is left behind."""
        if threading.current_thread() is self._thread:  # a unit that writes more: same transaction
            raise RuntimeError("a unit of work cannot submit another unit")
        future: Future[T] = Future()
        self._ensure_started()
        self._queue.put((unit, future))
        return future.result()

    def close(self) -> None:
        with self._start_lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the database is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="hub-db-writer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while (batch := next_batch(self._queue, self.max_batch)) is not None:
            try:
                self._write(batch)
            except BaseException as exc:  # never let the writer die: every later unit would hang
                log.exception("the writer failed on a batch of %d units", len(batch))
                for _unit, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    def _write(self, batch: list[tuple[Unit, Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            with self._turn, self.engine.begin() as connection:
                for unit, _future in batch:
                    results.append(unit(connection))
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # Isolate the culprit: every unit again, alone, in its own transaction.
            log.warning("a batch of %d units failed (%s); writing them one by one", len(batch), exc)
            for item in batch:
                self._write([item])
            return
        self.batches += 1
        self.units += len(batch)
        for (_unit, future), result in zip(batch, results, strict=True):
            future.set_result(result)
