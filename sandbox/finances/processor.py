"""The finance system's batch intake: files dropped in ``inbox/`` are checked line by line.

For each complete file it writes ``outbox/<name>.ack``, a CSV ``line,status,reason`` with one row per
data line (``line`` is the line number in the received file, the header being line 1), then moves
the file to ``archive/``. A file whose content (sha256) was already processed is archived without a
second acknowledgement: a re-upload after a lost connection must not book the same payments twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"
AMOUNT_COLUMNS = ("amount", "montant")
AMOUNT = re.compile(r"^-?\d+(?:[.,]\d{1,2})?$")
IGNORED_SUFFIXES = (".part", ".tmp")


def is_complete_name(name: str) -> bool:
    """Names a client uses while uploading (dot files, ``.part``, ``.tmp``) are not picked up."""
    return not name.startswith(".") and not name.endswith(IGNORED_SUFFIXES)


def acknowledge(content: bytes) -> list[tuple[int, str, str]]:
    """One ``(line, status, reason)`` per non-blank data line of a CSV with a header line."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [(1, REJECTED, "file is not UTF-8 text")]
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return [(1, REJECTED, "missing header line")]
    delimiter = ";" if ";" in lines[0] else ","
    header = [name.strip().lower() for name in next(csv.reader([lines[0]], delimiter=delimiter))]
    amount_at = next((header.index(c) for c in AMOUNT_COLUMNS if c in header), None)
    rows: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = next(csv.reader([line], delimiter=delimiter))
        if amount_at is None:
            rows.append((number, REJECTED, f"header has no column among {list(AMOUNT_COLUMNS)}"))
        elif len(values) != len(header):
            rows.append((number, REJECTED, f"expected {len(header)} columns, got {len(values)}"))
        elif not values[amount_at].strip():
            rows.append((number, REJECTED, "empty amount"))
        elif not AMOUNT.match(values[amount_at].strip()):
            rows.append((number, REJECTED, f"amount {values[amount_at].strip()!r} is not decimal"))
        else:
            rows.append((number, ACCEPTED, ""))
    return rows


def render_ack(rows: list[tuple[int, str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "status", "reason"])
    writer.writerows(rows)
    return out.getvalue().encode()


@dataclass
class FinancesState:
    """The SFTP root and what the intake did; the SFTP server and the processor share it."""

    root: Path
    processed_sha256: set[str] = field(default_factory=set)
    processed: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(
        default_factory=lambda: {
            "files_processed": 0,
            "duplicates": 0,
            "lines_accepted": 0,
            "lines_rejected": 0,
        }
    )
    writing: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for folder in ("inbox", "outbox", "archive"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    def open_for_write(self, local: Path) -> None:
        with self.lock:
            self.writing[str(local)] += 1

    def closed(self, local: Path) -> None:
        with self.lock:
            self.writing[str(local)] -= 1
            if self.writing[str(local)] <= 0:
                del self.writing[str(local)]

    def is_being_written(self, local: Path) -> bool:
        with self.lock:
            return str(local) in self.writing


def _free_name(folder: Path, name: str, sha256: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    target = folder / f"{name}.{sha256[:12]}"
    counter = 1
    while target.exists():
        target = folder / f"{name}.{sha256[:12]}.{counter}"
        counter += 1
    return target


def process_file(state: FinancesState, path: Path) -> dict[str, Any] | None:
    """Acknowledge and archive one inbox file; None if it was a duplicate of a processed one."""
    content = path.read_bytes()
    sha256 = hashlib.sha256(content).hexdigest()
    with state.lock:
        duplicate = sha256 in state.processed_sha256
        state.processed_sha256.add(sha256)
    if duplicate:
        os.replace(path, _free_name(state.archive, f"{path.name}.duplicate", sha256))
        state.counters["duplicates"] += 1
        return None
    rows = acknowledge(content)
    ack = state.outbox / f"{path.name}.ack"
    staging = state.outbox / f".{path.name}.ack.tmp"
    try:
        staging.write_bytes(render_ack(rows))
        os.replace(staging, ack)
        os.replace(path, _free_name(state.archive, path.name, sha256))
    except OSError:
        with state.lock:
            state.processed_sha256.discard(sha256)  # not acknowledged: try again next poll
        raise
    accepted = sum(1 for _, status, _ in rows if status == ACCEPTED)
    record = {
        "name": path.name,
        "sha256": sha256,
        "accepted": accepted,
        "rejected": len(rows) - accepted,
        "ack": ack.name,
    }
    with state.lock:
        state.processed.append(record)
        state.counters["files_processed"] += 1
        state.counters["lines_accepted"] += accepted
        state.counters["lines_rejected"] += len(rows) - accepted
    return record


class InboxProcessor:
    """Polls ``inbox/`` in a background thread and processes each complete, closed file."""

    def __init__(self, state: FinancesState, poll_interval_s: float = 0.05) -> None:
        self.state = state
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-finances-inbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def run_once(self) -> int:
        """Process what is ready now; returns how many files were taken."""
        taken = 0
        for entry in sorted(os.scandir(self.state.inbox), key=lambda e: e.name):
            path = Path(entry.path)
            if not entry.is_file(follow_symlinks=False) or not is_complete_name(entry.name):
                continue
            if self.state.is_being_written(path):
                continue
            try:
                process_file(self.state, path)
            except FileNotFoundError:
                continue  # renamed or removed by a client while we looked
            except OSError:
                with self.state.lock:
                    self.state.counters["errors"] = self.state.counters.get("errors", 0) + 1
                continue
            taken += 1
        return taken

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.run_once()
