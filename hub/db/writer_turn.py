"""SQLite's single writer, taken in turn, without SQLite's sleeping busy handler.

SQLite lets one transaction write at a time. A writer that finds the lock taken is handed to the
busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25... ms between attempts, however soon the lock
is released (a commit with its fsync took 0.3 ms on this machine): with two ``hub serve``
processes on one file, the intake's p99 was 1,249 ms against 72 ms for one process. Threads of one
process already queue on a lock instead. :class:`WriterTurn` extends that queue to every process
writing the file: an exclusive ``flock`` on a file beside the database, which the kernel hands to
the next waiter as soon as it is released. Where ``fcntl`` does not exist (Windows) only the
threads of a process take turns, as before.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory file locks
    fcntl = None  # type: ignore[assignment]


class WriterTurn:
    """The right to write one SQLite file: one thread of one process at a time. A context manager,
    or ``acquire(blocking=False)`` / ``release()``."""

    def __init__(self, database_path: str) -> None:
        self._threads = threading.Lock()
        self._fd: int | None = None
        if fcntl is not None:
            self._fd = os.open(f"{database_path}-writer", os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, blocking: bool = True) -> bool:
        if not self._threads.acquire(blocking):
            return False
        if self._fd is None:
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._threads.release()
            return False
        except BaseException:
            self._threads.release()
            raise
        return True

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        """Close the lock file (releasing the lock if held); the file stays for the next process."""
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> WriterTurn:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
