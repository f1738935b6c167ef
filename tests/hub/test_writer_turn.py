"""Processes writing one SQLite file take turns on a lock the kernel hands over at once, instead
of sleeping in SQLite's busy handler (hub serve --processes N, hub worker beside hub serve)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.db.writer_turn import WriterTurn

pytest.importorskip("fcntl", reason="advisory file locks (fcntl) exist on POSIX systems only")

HOLDER = """
import sys, time
from hub.db.writer_turn import WriterTurn
turn = WriterTurn(sys.argv[1])
with turn:
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    open(sys.argv[1] + ".released", "w").close()  # written while still holding the turn
"""


@contextlib.contextmanager
def held_elsewhere(database: Path, seconds: float) -> Iterator[tuple[subprocess.Popen[str], WriterTurn]]:
    """Another process holding ``database``'s turn for ``seconds``, and this process's turn."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    turn = WriterTurn(str(database))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder, turn
    finally:
        holder.kill()
        turn.close()


def test_another_process_holding_the_turn_keeps_this_one_out_until_it_releases(tmp_path: Path) -> None:
    database = tmp_path / "hub.db"
    with held_elsewhere(database, 1.0) as (holder, turn):
        assert turn.acquire(blocking=False) is False
        with turn:  # waits for the other process, then holds the turn
            assert Path(f"{database}.released").exists()
        assert holder.wait(timeout=10) == 0
        assert turn.acquire(blocking=False) is True
        turn.release()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    turn = WriterTurn(str(tmp_path / "hub.db"))
    inside, overlaps = [0], [0]

    def write() -> None:
        for _ in range(200):
            with turn:
                inside[0] += 1
                overlaps[0] = max(overlaps[0], inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    turn.close()
    assert overlaps[0] == 1


def test_a_failed_non_blocking_attempt_leaves_the_turn_free_for_this_process(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path / "hub.db", 0.5) as (holder, turn):
        assert turn.acquire(blocking=False) is False
        assert holder.wait(timeout=10) == 0
        assert turn.acquire(blocking=False) is True  # the thread lock was not left taken
        turn.release()
