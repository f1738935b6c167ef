"""The finance system (régie / facturation) as file exchanges over SFTP.

Outgoing: billing files and social-aid payment files. The connector takes lines already rendered
(CSV or fixed-width, by a mapping) and streams them into a spool file while computing its SHA-256,
then uploads it through :class:`~connectors.sftp.SftpAdapter` (temporary name, rename). Memory
stays flat whatever the number of lines. The remote name derives from the call's idempotency key,
so a retried or resumed step re-sends the same file under the same name and the finance system,
which archives a content it already processed without booking it twice, takes it once.

Incoming: the finance system answers each file with ``<file>.ack`` (CSV ``line,status,reason``).
:meth:`FinancesConnector.poll_acknowledgements` reads the new ones and records each in an
:class:`AckLedger`; the ledger (the hub's database table ``connector_ack_files``) makes an
acknowledgement processed once, even across restarts and with several workers polling: the first
to record it wins. :meth:`FinancesConnector.file_status` answers a flow's ``wait_until`` with
``PENDING``, ``ACCEPTED``, ``REJECTED`` or ``PARTIAL``, which the flow turns into the request's
status.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, get_args

from connectors.errors import PermanentError, declared_categories
from connectors.exchange import CallContext
from connectors.sftp import FileReceipt, SftpAdapter, validate_remote_dir, validate_remote_name

FileKind = Literal["billing", "aid_payment"]
FileStatus = Literal["PENDING", "ACCEPTED", "REJECTED", "PARTIAL"]
PREFIXES: dict[str, str] = {"billing": "facturation", "aid_payment": "aides"}
ACK_SUFFIX = ".ack"
SPOOL_IN_MEMORY = 1024 * 1024  # beyond this the spool is a temporary file on disk
WRITE_CHUNK = 64 * 1024
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Acknowledgement:
    """The finance system's answer to one file, line by line (rejections kept with their reason)."""

    file: str
    ack_name: str
    sha256: str
    accepted: int
    rejected: int
    rejections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> FileStatus:
        if self.rejected == 0:
            return "ACCEPTED"
        return "REJECTED" if self.accepted == 0 else "PARTIAL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "status": self.status,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejections": list(self.rejections),
            "ack_sha256": self.sha256,
        }


class AckLedger(Protocol):
    """Where processed acknowledgements are kept; the hub implements it on its database."""

    def unprocessed(self, system: str, ack_names: list[str]) -> list[str]:
        """The names among ``ack_names`` not recorded yet."""
        ...

    def record(self, system: str, ack: Acknowledgement) -> bool:
        """Record ``ack``; True the first time, False if it was already processed (by anyone)."""
        ...

    def get(self, system: str, file: str) -> Acknowledgement | None:
        """The recorded acknowledgement of data file ``file``, if any."""
        ...


def parse_ack(name: str, content: bytes) -> Acknowledgement:
    """An ``.ack`` file (CSV ``line,status,reason`` with a header) as an :class:`Acknowledgement`."""
    sha256 = hashlib.sha256(content).hexdigest()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PermanentError("INVALID_RESPONSE", f"{name} is not UTF-8 text") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or [h.strip().lower() for h in header[:2]] != ["line", "status"]:
        raise PermanentError("INVALID_RESPONSE", f"{name}: expected a header 'line,status,reason'")
    accepted, rejections = 0, []
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) < 2 or not row[0].strip().isdigit() or row[1].strip() not in ("ACCEPTED", "REJECTED"):
            raise PermanentError("INVALID_RESPONSE", f"{name}:{number}: unreadable acknowledgement row")
        if row[1].strip() == "ACCEPTED":
            accepted += 1
        else:
            rejections.append({"line": int(row[0]), "reason": (row[2] if len(row) > 2 else "")[:200]})
    return Acknowledgement(name.removesuffix(ACK_SUFFIX), name, sha256, accepted, len(rejections), rejections)


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


# FileReceipt.as_dict() and Acknowledgement.as_dict() (or the PENDING answer of file_status)
_RECEIPT = _closed(
    {
        "name": {"type": "string"},
        "directory": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string"},
        "already_present": {"type": "boolean"},
    }
)
_FILE_STATUS = _closed(
    {
        "file": {"type": "string"},
        "status": {"type": "string", "enum": list(get_args(FileStatus))},
        "accepted": {"type": "integer"},
        "rejected": {"type": "integer"},
        "rejections": {
            "type": "array",
            "items": _closed({"line": {"type": "integer"}, "reason": {"type": "string"}}),
        },
        "ack_sha256": {"type": "string"},
    }
)


class FinancesConnector:
    """Billing and aid-payment files out, acknowledgements in, over the system's SFTP adapter."""

    DATA_CATEGORIES: ClassVar[dict[str, tuple[str, ...]]] = {
        "SendBillingFile": ("identite", "adresse", "situation_financiere"),
        "SendAidPaymentFile": ("identite", "situation_financiere", "coordonnees_bancaires"),
        "GetFileStatus": (),  # a file name only
        "PollAcknowledgements": (),
        "Health": (),
    }
    # What each operation answers (JSON Schema), so a flow reading an answer is checked at load:
    # ``until: {path: $.response.status, equals: ACCEPTD}`` would otherwise wait until timeout.
    ANSWERS: ClassVar[dict[str, dict[str, Any]]] = {
        "SendBillingFile": _RECEIPT,
        "SendAidPaymentFile": _RECEIPT,
        "GetFileStatus": _FILE_STATUS,
        "PollAcknowledgements": _closed({"acknowledgements": {"type": "array", "items": _FILE_STATUS}}),
        "Health": _closed(
            {
                "status": {"type": "string", "enum": ["ok"]},
                "acknowledgements_waiting": {"type": "integer"},
                "skipped_names": {"type": "integer"},
            }
        ),
    }
    KINDS: ClassVar[dict[str, FileKind]] = {
        "SendBillingFile": "billing",
        "SendAidPaymentFile": "aid_payment",
    }

    def __init__(
        self,
        adapter: SftpAdapter,
        ledger: AckLedger,
        *,
        outgoing_dir: str = "inbox",
        ack_dir: str = "outbox",
        headers: Mapping[str, str | None] | None = None,
    ) -> None:
        self.adapter = adapter
        self.system = adapter.system
        self.ledger = ledger
        self.outgoing_dir = validate_remote_dir(outgoing_dir)
        self.ack_dir = validate_remote_dir(ack_dir)
        self.headers = dict(headers or {})
        self.operations = frozenset(self.DATA_CATEGORIES)

    def close(self) -> None:
        self.adapter.close()

    def data_categories(self, operation: str) -> tuple[str, ...]:
        return declared_categories(self.DATA_CATEGORIES, operation, "finances")

    def call(
        self, operation: str, message: Any, context: CallContext, *, retry: bool = True
    ) -> dict[str, Any]:
        """What a flow calls: ``Send*File`` with a rendered line (a string) or ``{"lines": [...]}``,
        ``GetFileStatus`` with ``{"file": name}`` (or the receipt a Send step saved)."""
        self.data_categories(operation)
        if operation in self.KINDS:
            if isinstance(message, str):
                lines: list[str] = [message]
            elif isinstance(message, Mapping) and isinstance(message.get("lines"), list):
                lines = [str(line) for line in message["lines"]]
            else:
                raise PermanentError(
                    "INVALID_MESSAGE", f"{operation} takes a rendered line or {{'lines': [...]}}"
                )
            return self.send_file(self.KINDS[operation], lines, context, retry=retry).as_dict()
        if operation == "GetFileStatus":
            name = message.get("file") or message.get("name") if isinstance(message, Mapping) else None
            if not isinstance(name, str):
                raise PermanentError("INVALID_MESSAGE", "GetFileStatus needs {'file': <name>}")
            return self.file_status(name, context)
        if operation == "PollAcknowledgements":
            return {"acknowledgements": [a.as_dict() for a in self.poll_acknowledgements(context)]}
        files, skipped = self.adapter.listdir("Health", self.ack_dir, context, retry=False)
        return {"status": "ok", "acknowledgements_waiting": len(files), "skipped_names": skipped}

    def send_file(
        self,
        kind: FileKind,
        lines: Iterable[str],
        context: CallContext,
        *,
        name: str | None = None,
        retry: bool = True,
    ) -> FileReceipt:
        """Stream ``lines`` (each one record, without its line break) into a file and upload it."""
        if kind not in PREFIXES:
            raise PermanentError(
                "INVALID_MESSAGE", f"unknown file kind {kind!r}; valid: {', '.join(PREFIXES)}"
            )
        operation = "SendBillingFile" if kind == "billing" else "SendAidPaymentFile"
        name = validate_remote_name(self._name(kind, context) if name is None else name)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            digest = hashlib.sha256()
            size = 0
            pending: list[str] = []
            pending_chars = 0
            for number, line in enumerate(_with_header(self.headers.get(kind), lines), start=1):
                if "\n" in line or "\r" in line:
                    raise PermanentError(
                        "INVALID_MESSAGE", f"line {number} contains a line break", details={"line": number}
                    )
                pending.append(line)
                pending_chars += len(line) + 1
                if pending_chars >= WRITE_CHUNK:
                    size += _flush(pending, spool, digest)
                    pending, pending_chars = [], 0
            size += _flush(pending, spool, digest)
            return self.adapter.upload(
                operation,
                self.outgoing_dir,
                name,
                spool,  # type: ignore[arg-type]
                context,
                sha256=digest.hexdigest(),
                size=size,
                retry=retry,
            )

    def poll_acknowledgements(self, context: CallContext) -> list[Acknowledgement]:
        """Read the acknowledgements not processed yet; each is returned once, ever."""
        files, _ = self.adapter.listdir("PollAcknowledgements", self.ack_dir, context)
        names = sorted(f.name for f in files if f.name.endswith(ACK_SUFFIX))
        fresh = []
        for ack_name in self.ledger.unprocessed(self.system, names):
            content = self.adapter.read("ReadAcknowledgement", self.ack_dir, ack_name, context)
            ack = parse_ack(ack_name, content)
            if self.ledger.record(self.system, ack):
                fresh.append(ack)
        return fresh

    def file_status(self, file: str, context: CallContext) -> dict[str, Any]:
        """``{"file", "status", ...}``: PENDING until the finance system acknowledged the file."""
        validate_remote_name(file)
        ack = self.ledger.get(self.system, file)
        if ack is None:
            self.poll_acknowledgements(context)
            ack = self.ledger.get(self.system, file)
        if ack is None:
            return {"file": file, "status": "PENDING", "accepted": 0, "rejected": 0, "rejections": []}
        return ack.as_dict()

    @staticmethod
    def _name(kind: FileKind, context: CallContext) -> str:
        key = context.idempotency_key
        suffix = _KEY_CHARS.sub("_", key)[:150] if key else uuid.uuid4().hex
        return f"{PREFIXES[kind]}-{suffix}.csv"


def _flush(lines: list[str], spool: Any, digest: Any) -> int:
    """Encode a batch of lines once (a write per line would cost more than the upload)."""
    if not lines:
        return 0
    data = ("\n".join(lines) + "\n").encode("utf-8")
    digest.update(data)
    spool.write(data)
    return len(data)


def _with_header(header: str | None, lines: Iterable[str]) -> Iterable[str]:
    if header:
        yield header
    yield from lines
