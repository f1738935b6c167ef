"""Document records and their contents on disk, as a GED (document management system) keeps them.

Contents live in a temporary folder, written while they arrive and moved into place only once their
digest is known, so a half-received upload never becomes a document.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sandbox.ecole.idempotency import IdempotencyStore

METADATA_FIELDS = ("title", "type", "citizen_ref", "request_ref", "content_type", "filename")
SEARCH_FIELDS = (*METADATA_FIELDS, "sha256")


class TooLarge(Exception):
    """The upload exceeds the store's size limit."""


class Incoming:
    """One upload being received: a temp file, its running sha256 and size."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self._max_bytes = max_bytes
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise TooLarge(f"documents are limited to {self._max_bytes} bytes")
        self._digest.update(chunk)
        self._file.write(chunk)

    def finish(self) -> str:
        self._file.close()
        return self._digest.hexdigest()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


@dataclass
class GedState:
    """The documents and where their contents are; ``close()`` removes the folder."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sandbox-ged-")))
    max_bytes: int = 200 * 1024 * 1024
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: IdempotencyStore = field(default_factory=IdempotencyStore)
    counters: dict[str, int] = field(default_factory=lambda: {"documents_created": 0})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        (self.root / "incoming").mkdir(parents=True, exist_ok=True)
        (self.root / "documents").mkdir(parents=True, exist_ok=True)

    @property
    def documents_created(self) -> int:
        return self.counters["documents_created"]

    def begin_upload(self) -> Incoming:
        return Incoming(self.root / "incoming", self.max_bytes)

    def content_path(self, document_id: str) -> Path:
        return self.root / "documents" / document_id

    def add(self, incoming: Incoming, sha256: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Move the received content into place and record the document."""
        document_id = str(uuid.uuid4())
        os.replace(incoming.path, self.content_path(document_id))
        record = {
            "id": document_id,
            **{name: metadata.get(name) for name in METADATA_FIELDS},
            "sha256": sha256,
            "size": incoming.size,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._lock:
            self.documents[document_id] = record
            self.counters["documents_created"] += 1
        return record

    def search(self, criteria: dict[str, str]) -> list[dict[str, Any]]:
        return [
            record
            for record in list(self.documents.values())
            if all(record.get(key) == value for key, value in criteria.items())
        ]

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
