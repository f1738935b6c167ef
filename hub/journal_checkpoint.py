"""Signed checkpoints of the journal, for auditors to keep outside the database.

Inside the database, a genuine older head replayed whole (its row saved earlier, the rows after it
deleted) carries a MAC that holds: the rollback cannot be told from the inside. A checkpoint is the
head's position and hash at a time, signed; an auditor keeps it, and a later verification given
it checks that the chain still holds that position with that hash and that the head is not behind
it (:func:`hub.journal.verify`). A hash chain needs no consistency proof: a row's hash covers every
row before it.

The format is the transparency logs' (C2SP tlog-checkpoint, a signed note):

    hub-journal/33063
    1234
    <base64 of the chain hash at seq 1234>
    time 2026-11-30T10:00:00Z

    — hub-journal/33063 <base64 of key id (4 bytes) + Ed25519 signature>

Ed25519, not an HMAC: an auditor checks a checkpoint with the verifier key alone
(``hub audit verifier-key``; any signed-note library reads it), and cannot make one. The signing
key is derived from the journal key, itself derived from the pseudonym key: no new secret to keep,
and nothing of it in the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hub.db.engine import Database
from hub.db.models import JournalHead
from hub.journal import head_problem

ED25519 = b"\x01"  # the signed-note signature type of Ed25519
DASH = "\u2014"  # em dash: the signature lines' mark
MAX_NOTE_CHARS = 4096  # one origin, three numbers and a handful of signatures fit many times over
_NAME = re.compile(r"^[^\s+]+$")
_SEQ = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_TIME = re.compile(r"^time (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)$")


class CheckpointError(ValueError):
    """A text that is not a checkpoint of this journal: malformed, unsigned by its key, another log's."""


@dataclass(frozen=True)
class Checkpoint:
    """A position of the chain (``seq`` rows sealed, chain hash ``hash`` in hex) at ``time``."""

    origin: str
    seq: int
    hash: str
    time: datetime
    note: str

    def describe(self) -> str:
        return f"the checkpoint of {self.time.strftime('%Y-%m-%dT%H:%M:%SZ')} (seq {self.seq})"


def journal_origin(insee_code: str) -> str:
    """The journal's name in its checkpoints: one per municipality's hub (a schema-less path)."""
    return f"hub-journal/{insee_code}"


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


class CheckpointSigner:
    """Signs checkpoints with the Ed25519 key derived from the journal key."""

    def __init__(self, origin: str, journal_key: bytes) -> None:
        if not _NAME.match(origin):
            raise ValueError(f"checkpoint origin {origin!r} must be non-empty without spaces or '+'")
        self.origin = origin
        seed = hmac.new(journal_key, b"hub journal checkpoint signing key", hashlib.sha256).digest()
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key_id = _key_id(origin, self.public)

    @property
    def verifier_key(self) -> str:
        """The public half as a signed-note verifier key: ``<name>+<key id hex>+<base64(type+key)>``."""
        encoded = base64.b64encode(ED25519 + self.public).decode()
        return f"{self.origin}+{self._key_id.hex()}+{encoded}"

    def sign(self, seq: int, hash: str, at: datetime) -> Checkpoint:
        moment = at.astimezone(UTC).replace(microsecond=0)
        body = (
            f"{self.origin}\n{seq}\n{base64.b64encode(bytes.fromhex(hash)).decode()}\n"
            f"time {moment.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        )
        signature = base64.b64encode(self._key_id + self._private.sign(body.encode())).decode()
        note = f"{body}\n{DASH} {self.origin} {signature}\n"
        return Checkpoint(self.origin, seq, hash, moment, note)

    def open(self, note: str) -> Checkpoint:
        """``note`` as a checkpoint of this journal, signed by this key (else :class:`CheckpointError`)."""
        return open_checkpoint(note, self.verifier_key)


def open_checkpoint(note: str, verifier_key: str) -> Checkpoint:
    """Check ``note``'s signature with ``verifier_key``, then read its body.

    The body is read only once the signature holds (a note's text means nothing before), so a
    forged or edited checkpoint is refused as such, whatever it claims."""
    name, key_id, public = _parse_verifier_key(verifier_key)
    if len(note) > MAX_NOTE_CHARS:
        raise CheckpointError(f"longer than {MAX_NOTE_CHARS} characters: not a checkpoint")
    if any(ord(char) < 0x20 and char != "\n" for char in note):
        raise CheckpointError("holds control characters: not a signed note")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointError("no blank line before signature lines ending in a newline: not a signed note")
    body, signatures = note[: split + 1], note[split + 2 :].splitlines()
    if not signatures:
        raise CheckpointError("no signature line after the blank line: not a signed note")
    signers = []
    for line in signatures:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise CheckpointError(f"malformed signature line {line[:80]!r}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise CheckpointError(f"signature of {parts[1]!r} is not base64") from None
        signers.append(parts[1])
        if parts[1] != name or raw[:4] != key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckpointError(
                f"the signature of {name} does not verify: the checkpoint was edited or forged"
            ) from None
        return _read_body(body, name, note)
    signed_by = ", ".join(signers) or "nobody"
    raise CheckpointError(f"not signed by this journal's key {name}+{key_id.hex()} (signed by: {signed_by})")


def _parse_verifier_key(verifier_key: str) -> tuple[str, bytes, bytes]:
    parts = verifier_key.strip().split("+", 2)
    try:
        name, key_id, raw = parts[0], bytes.fromhex(parts[1]), base64.b64decode(parts[2], validate=True)
    except (IndexError, ValueError):
        raise CheckpointError("a verifier key reads <name>+<8 hex digits>+<base64 key>") from None
    if not _NAME.match(name) or len(key_id) != 4 or len(raw) != 33 or raw[:1] != ED25519:
        raise CheckpointError("not an Ed25519 signed-note verifier key")
    if _key_id(name, raw[1:]) != key_id:
        raise CheckpointError("the verifier key's id does not match its name and key")
    return name, key_id, raw[1:]


def _read_body(body: str, origin: str, note: str) -> Checkpoint:
    lines = body.splitlines()
    if len(lines) != 4:
        raise CheckpointError("a checkpoint body has 4 lines: origin, size, hash, time")
    if lines[0] != origin:
        raise CheckpointError(f"a checkpoint of {lines[0]!r}, not of this journal {origin!r}")
    if not _SEQ.match(lines[1]):
        raise CheckpointError(f"size {lines[1][:30]!r} is not a decimal number")
    try:
        digest = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != 32:
        raise CheckpointError("the hash line is not the base64 of 32 bytes")
    found = _TIME.match(lines[3])
    if found is None:
        raise CheckpointError("the last line is not 'time YYYY-MM-DDTHH:MM:SSZ'")
    try:
        moment = datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise CheckpointError(f"time {found.group(1)} is not a date") from None
    return Checkpoint(origin, int(lines[1]), digest.hex(), moment, note)


class HeadRefused(Exception):
    """The head fails its MAC: signing it would vouch for a rewound or edited head."""


def checkpoint(
    db: Database, signer: CheckpointSigner, journal_key: bytes, *, at: datetime | None = None
) -> Checkpoint:
    """A signed checkpoint of the current head, once its MAC holds (else :class:`HeadRefused`)."""
    with db.snapshot() as session:
        head = session.get(JournalHead, 1)
        if head is None:
            raise HeadRefused("journal head missing")
        problem = head_problem(journal_key, head.seq, head.hash, head.mac_from_id, head.mac)
        if problem is not None:
            raise HeadRefused(problem)
        seq, digest = head.seq, head.hash
    return signer.sign(seq, digest, at or datetime.now(UTC))
