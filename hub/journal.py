"""The exchange journal: who sent which citizen's data to whom, when, why, with what outcome.

Rows are written by the intake transaction (inbound) and by the connector gateway (every outbound
attempt), unsealed. :func:`seal` then chains them in order, each row's hash covering its content and
the previous hash, so :func:`verify` detects any row altered, deleted, inserted or reordered.
Sealing apart from writing keeps writers off a single lock, like a transparency log's sequencer.

The head (the last sealed position, and the id from which rows must carry a MAC) carries a MAC of
its own, made by the seal that advanced it: without the hub's key, nobody can rewind it over a
deleted tail or lower the MAC requirement. Only a genuine older head, replayed whole, fits; the
signed checkpoints that auditors keep outside the database (:mod:`hub.journal_checkpoint`) catch
that rollback.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    CursorResult,
    Select,
    Text,
    bindparam,
    column,
    func,
    select,
    update,
)

from connectors.exchange import CallContext, Exchange
from hub.db.engine import Database
from hub.db.models import JOURNAL, JournalEntry, JournalHead, utcnow
from hub.db.prebuilt import Direct, direct_insert, direct_update

if TYPE_CHECKING:
    from hub.journal_checkpoint import Checkpoint

HEAD = JournalHead.__table__
GENESIS = "ae2b7f0a1bd6a6fa3fe94cd5e3b0c5d1b2d1a2f5d76fd0f3c0a9c73a8a6e4b10"
SEAL_BATCH = 2000

# What a row's hash covers (and, but for id and seq, its MAC): every column but the chain's own.
HASHED_FIELDS = (
    "id",
    "at",
    "correlation_id",
    "request_id",
    "client",
    "direction",
    "system",
    "operation",
    "purpose",
    "legal_basis",
    "citizen_ref",
    "outcome",
    "attempt",
    "latency_ms",
    "payload_digest",
    "response_digest",
    "error_code",
    "seq",
)


def entry_hash(entry: JournalEntry, prev_hash: str) -> str:
    """SHA-256 over the previous hash and the row's canonical content."""
    return _content_hash({name: getattr(entry, name) for name in HASHED_FIELDS}, prev_hash)


def _content_hash(content: dict[str, Any], prev_hash: str) -> str:
    return _chain_hash(_canonical(content, HASHED_FIELDS), prev_hash)


def _chain_hash(canonical: str, prev_hash: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + canonical).encode()).hexdigest()


# What json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds anew at
# each call: one encoder, the same text.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _canonical(content: dict[str, Any], fields: tuple[str, ...]) -> str:
    return _JSON(_canonical_values({name: content[name] for name in fields}))


def _canonical_values(content: dict[str, Any]) -> dict[str, Any]:
    """``content`` (a dict of the caller's own, changed in place) with its time and latency as the
    canonical text writes them."""
    at: datetime = content["at"]
    content["at"] = at.isoformat(timespec="microseconds")
    content["latency_ms"] = round(float(content["latency_ms"]), 3)
    return content


def journal_key(pseudonym_key: bytes) -> bytes:
    """The journal MACs' key, derived from (and kept apart from) the pseudonym key."""
    return hmac.new(pseudonym_key, b"hub journal row MAC", hashlib.sha256).digest()


# The MAC covers what the writer knows: not the row's id nor its chain position, given later. A
# copy of a genuine row therefore carries a valid MAC: verify() refuses two rows with one MAC.
_MAC_FIELDS = tuple(name for name in HASHED_FIELDS if name not in ("id", "seq"))


def row_mac(content: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of a row's content under the hub's journal key, made when the row is written.

    The chain proves order and that sealed rows were not changed since; the MAC proves a row was
    written by the hub: one inserted by hand (even before its seal, which would chain it like any
    other) has none the key can confirm, and the key is not in the database."""
    return _mac(_canonical(content, _MAC_FIELDS), key)


def _mac(canonical: str, key: bytes) -> str:
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def head_mac(key: bytes, seq: int, hash: str, mac_from_id: int | None) -> str:
    """HMAC-SHA256 of everything the head holds, under the journal key, made by each seal.

    Its message starts with a line no row's canonical JSON can start with, so a row's MAC is never
    a head's. Without it, anyone able to write to the database could delete the tail and rewind the
    head to the last remaining row, or raise ``mac_from_id`` above rows forged without a MAC."""
    message = f"hub journal head\n{seq}\n{hash}\n{'' if mac_from_id is None else mac_from_id}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def head_problem(key: bytes, seq: int, hash: str, mac_from_id: int | None, mac: str | None) -> str | None:
    """Why the head cannot be trusted, or None when its MAC holds.

    The empty journal's head (seq 0, the genesis hash, MACs required from the first row) needs no
    MAC: it is public, and a database made without the key (``upgrade(url)`` in tests, benchmarks)
    starts there; the first seal authenticates the head it advances. Any other head without a MAC
    had it removed (or was migrated without the key, which migration 0009 refuses)."""
    if mac is None:
        if seq == 0 and hash == GENESIS and mac_from_id in (None, 1):
            return None
        return (
            f"journal head (seq {seq}) has no MAC: it was removed, so the head's position and"
            " mac_from_id cannot be trusted"
        )
    if not hmac.compare_digest(mac, head_mac(key, seq, hash, mac_from_id)):
        return (
            f"journal head fails its MAC: its seq ({seq}), hash ({hash[:12]}…) or mac_from_id"
            f" ({mac_from_id}) was changed without the hub's key (a deleted tail, a rewound head),"
            " or this is not the key of the hub that wrote it"
        )
    return None


class HeadNotAuthentic(Exception):
    """The head's MAC does not hold: the seal will not advance (and so vouch for) that head."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def inbound_row(
    *,
    key: bytes,
    context: CallContext,
    operation: str,
    outcome: str,
    latency_ms: float,
    payload_digest: str,
    error_code: str | None = None,
) -> dict[str, Any]:
    """The journal row of a call into the hub, to insert in the caller's own transaction;
    ``key`` is the hub's journal key (:attr:`hub.runtime.Hub.journal_key`)."""
    return _row(
        key, context, "inbound", "hub", operation, outcome, 1, latency_ms, payload_digest, None, error_code
    )


def _row(
    key: bytes,
    context: CallContext,
    direction: str,
    system: str,
    operation: str,
    outcome: str,
    attempt: int,
    latency_ms: float,
    payload_digest: str,
    response_digest: str | None,
    error_code: str | None,
) -> dict[str, Any]:
    row = {
        "at": utcnow(),
        "correlation_id": context.correlation_id,
        "request_id": context.request_id,
        "client": context.client,
        "direction": direction,
        "system": system,
        "operation": operation[:100],
        "purpose": context.purpose,
        "legal_basis": context.legal_basis,
        "citizen_ref": context.citizen_ref,
        "outcome": outcome,
        "attempt": attempt,
        "latency_ms": round(latency_ms, 3),
        "payload_digest": payload_digest,
        "response_digest": response_digest,
        # Back-ends choose their fault codes; the journal row must be written whatever their length.
        "error_code": error_code[:64] if error_code else None,
    }
    row["mac"] = row_mac(row, key)
    return row


# What a row is written with (by the recorder, a flow's checkpoint, the intake...): every column but
# its id and the chain's, which the seal fills in.
ROW_FIELDS = tuple(c.name for c in JOURNAL.columns if c.name not in ("id", "seq", "prev_hash", "hash"))


def insert_rows(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows made by :func:`_row` (a recorder's, a run's held ones), in the order given."""
    if rows:
        direct_insert(JOURNAL, ROW_FIELDS).executemany(connection, rows)


# Outcomes no other attempt of the same call follows (an answer, a permanent error): their rows may
# wait for the caller's next write. A transient error or a refusal may be followed by a retry.
_ENDS_A_CALL = frozenset({"ok", "permanent_error"})


class JournalRecorder:
    """The :class:`connectors.exchange.ExchangeRecorder` the hub hands to every gateway."""

    def __init__(self, db: Database, key: bytes, counter: Counter | None = None) -> None:
        self.db = db
        self.key = key
        self.counter = counter

    def record(self, exchange: Exchange, context: CallContext) -> None:
        row = _row(
            self.key,
            context,
            "outbound",
            exchange.system,
            exchange.operation,
            exchange.outcome,
            exchange.attempt,
            exchange.latency_ms,
            exchange.payload_digest,
            exchange.response_digest,
            exchange.error_code,
        )

        held = context.held_rows
        if (
            held is not None
            and not held
            and exchange.outcome in _ENDS_A_CALL
            and exchange.operation == context.held_operation
        ):
            # The caller (a flow's run) writes it in the same statement as its next checkpoint,
            # which follows before anything else leaves: one write fewer per call. A run lost
            # before that checkpoint leaves no row, and the claim that takes over journals the call
            # as interrupted ("may have reached the system") before making it again: true either way.
            held.append(row)
        else:
            rows = [row]
            if held:  # a further exchange of the held one's call: both now, in the order made
                rows = [*held, row]
                held.clear()

            # Durable before the gateway goes on, committed together with other flows' writes.
            self.db.write(lambda connection: insert_rows(connection, rows), single_statement=len(rows) == 1)
        if self.counter is not None:
            self.counter.labels("outbound", exchange.system, exchange.outcome).inc()


def seal(db: Database, key: bytes, batch: int = SEAL_BATCH) -> int:
    """Chain every unsealed row, oldest first; return how many were sealed.

    Core statements, not the ORM: at a few hundred exchanges a second the seal runs every half
    second under the write lock, and one executemany UPDATE costs a fraction of a unit-of-work flush.
    On PostgreSQL the batch's rows are one UPDATE from arrays (:func:`_seal_postgresql`): an
    executemany there is still one statement per row for the server to execute and log.
    Each batch checks the head's MAC before extending it and MACs the new head: two HMACs per batch,
    none per row. A head whose MAC fails is not extended (:class:`HeadNotAuthentic`): sealing over
    it would vouch for a rewound head with a fresh MAC.
    """
    total = 0
    while True:
        with db.connection() as connection:
            head = connection.execute(_READ_HEAD).one()
            seq, running = head.seq, head.hash
            rows = connection.execute(_UNSEALED, {"batch": batch}).all()
            if not rows:
                return total
            problem = head_problem(key, head.seq, head.hash, head.mac_from_id, head.mac)
            if problem is not None:
                raise HeadNotAuthentic(problem)
            ids, seqs, prevs, hashes = [], [], [], []
            for row in rows:
                seq += 1
                content = dict(zip(_UNSEALED_FIELDS, row, strict=True))
                content["seq"] = seq
                digest = _content_hash(content, running)
                ids.append(content["id"])
                seqs.append(seq)
                prevs.append(running)
                hashes.append(digest)
                running = digest
            if connection.dialect.name == "postgresql":
                _seal_postgresql().execute(
                    connection, {"ids": ids, "seqs": seqs, "prevs": prevs, "hashes": hashes}
                )
            else:  # SQLite: in process, an executemany costs no round trip
                direct_update(JOURNAL, ("id",), ("seq", "prev_hash", "hash")).executemany(
                    connection,
                    [
                        {"k_id": i, "v_seq": q, "v_prev_hash": p, "v_hash": h}
                        for i, q, p, h in zip(ids, seqs, prevs, hashes, strict=True)
                    ],
                )
            direct_update(HEAD, ("id",), ("seq", "hash", "mac")).execute(
                connection,
                {
                    "k_id": 1,
                    "v_seq": seq,
                    "v_hash": running,
                    "v_mac": head_mac(key, seq, running, head.mac_from_id),
                },
            )
            total += len(rows)
        if len(rows) < batch:
            return total


@functools.cache
def _seal_postgresql() -> Direct:
    """``UPDATE journal SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash FROM unnest(:ids,
    :seqs, :prevs, :hashes) AS v(...) WHERE journal.id = v.id``: a whole batch in one statement;
    binds four arrays of one length, in chain order."""
    chain = (
        func.unnest(
            bindparam("ids", type_=ARRAY(BigInteger)),
            bindparam("seqs", type_=ARRAY(BigInteger)),
            bindparam("prevs", type_=ARRAY(Text)),
            bindparam("hashes", type_=ARRAY(Text)),
        )
        .table_valued(
            column("id", BigInteger),
            column("seq", BigInteger),
            column("prev_hash", Text),
            column("hash", Text),
        )
        .render_derived(name="v")
    )
    return Direct(
        update(JOURNAL)
        .where(JOURNAL.c.id == chain.c.id)
        .values(seq=chain.c.seq, prev_hash=chain.c.prev_hash, hash=chain.c.hash)
    )


_READ_HEAD = (
    select(HEAD.c.seq, HEAD.c.hash, HEAD.c.mac_from_id, HEAD.c.mac).where(HEAD.c.id == 1).with_for_update()
)
_UNSEALED_FIELDS = tuple(name for name in HASHED_FIELDS if name != "seq")
_UNSEALED = (
    select(*(JOURNAL.c[name] for name in _UNSEALED_FIELDS))
    .where(JOURNAL.c.seq.is_(None))
    .order_by(JOURNAL.c.id)
    .limit(bindparam("batch"))
)


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    unsealed: int
    head_seq: int
    first_bad_seq: int | None = None
    first_bad_id: int | None = None
    problem: str | None = None
    checkpoints: int = 0
    """How many of the checkpoints given were found in the chain (all of them when ``ok``)."""
    at_head: bool = False
    """The problem is the head itself: what it says of the chain cannot be trusted."""

    def describe(self) -> str:
        if self.ok:
            confirmed = f"; {self.checkpoints} checkpoint(s) confirmed" if self.checkpoints else ""
            return (
                f"journal OK: {self.checked} rows verified up to seq {self.head_seq}"
                f" ({self.unsealed} not yet sealed){confirmed}"
            )
        if self.at_head:
            return f"journal BROKEN at the head: {self.problem}"
        if self.first_bad_seq is not None and self.first_bad_id is None:
            return f"journal BROKEN at seq {self.first_bad_seq}: {self.problem}"
        where = f"seq {self.first_bad_seq}" if self.first_bad_seq is not None else "an unsealed row"
        return f"journal BROKEN at {where} (row id {self.first_bad_id}): {self.problem}"


def verify(db: Database, key: bytes, checkpoints: Sequence[Checkpoint] = ()) -> Verification:
    """Check the head's MAC, then walk the chain from the genesis hash; report the first problem.

    Everything is read in one snapshot, so a seal committing meanwhile cannot look like tampering,
    and a row outside the chain's range (beyond the head, or numbered below 1) is tampering. Every
    row, sealed or not, must carry the MAC the hub made with ``key`` when it wrote it (rows written
    before MACs existed excepted: ids below the head's ``mac_from_id``). Each checkpoint given (an
    auditor's, signature already checked) must still be in the chain: its position holds its hash,
    and the head is not behind it (a rollback to an older genuine head).

    Rows are read as plain tuples with Core, streamed (a server-side cursor on PostgreSQL), in the
    snapshot's one transaction: through the ORM each row cost ~70 µs of loading, more than its hash
    and MAC, and an audit of millions of rows took as many minutes as it holds millions."""
    expected_at: dict[int, list[Checkpoint]] = {}
    for point in sorted(checkpoints, key=lambda p: p.time):  # two of one seq must both hold
        expected_at.setdefault(point.seq, []).append(point)
    with db.snapshot() as session:
        connection = session.connection()  # the snapshot's transaction, without the ORM
        head = connection.execute(_HEAD).first()
        if head is None:
            return Verification(False, 0, 0, 0, None, None, "journal head missing", at_head=True)
        unsealed = connection.execute(_COUNT_UNSEALED).scalar() or 0

        def broken(seq: int | None, row_id: int | None, problem: str, confirmed: int = 0) -> Verification:
            return Verification(False, checked, unsealed, head.seq, seq, row_id, problem, confirmed)

        checked, confirmed = 0, 0
        problem = head_problem(key, head.seq, head.hash, head.mac_from_id, head.mac)
        if problem is not None:
            return Verification(False, 0, unsealed, head.seq, None, None, problem, at_head=True)
        mac_from = head.mac_from_id if head.mac_from_id is not None else 1
        expected_seq, running = 0, GENESIS
        for point in expected_at.get(0, []):
            if point.hash != GENESIS:
                return broken(0, None, _rewritten(point, "the genesis hash"))
            confirmed += 1
        with _stream(connection, _SEALED_ROWS, {"up_to": head.seq}) as rows:
            for row in rows:
                row_id, row_seq, row_prev, row_hash = row[0], row[_SEQ], row[_PREV_HASH], row[_HASH]
                expected_seq += 1
                bad = None
                if row_seq != expected_seq:
                    missing = row_seq - expected_seq
                    bad = f"expected seq {expected_seq}, found {row_seq}: {missing} row(s) deleted before it"
                elif row_prev != running:
                    bad = "previous-hash link broken: a row was inserted or rows were reordered"
                else:
                    values = _canonical_values(dict(zip(HASHED_FIELDS, row, strict=False)))
                    if _chain_hash(_JSON(values), running) != row_hash:
                        bad = "content does not match its hash: the row was altered"
                    elif row_id >= mac_from and not _mac_matches(row[_MAC], values, key):
                        bad = _FORGED
                    elif row_seq in expected_at:
                        for point in expected_at[row_seq]:
                            if point.hash != row_hash:
                                bad = _rewritten(point, f"hash {(row_hash or '')[:12]}…")
                                break
                            confirmed += 1
                if bad:
                    return broken(row_seq, row_id, bad, confirmed)
                running = row_hash or ""
                checked += 1
        if head.seq != expected_seq:
            return broken(
                expected_seq + 1,
                None,
                f"chain ends at seq {expected_seq} but the head says {head.seq}: rows deleted at the end",
                confirmed,
            )
        if head.hash != running:
            return broken(
                expected_seq, None, f"the head's hash is not the chain's at seq {expected_seq}", confirmed
            )
        ahead = [points[-1] for seq, points in expected_at.items() if seq > head.seq]
        if ahead:
            point = max(ahead, key=lambda p: p.seq)
            return broken(
                head.seq + 1,
                None,
                f"the head (seq {head.seq}) is behind {point.describe()}: the journal was rolled"
                f" back to an older head, rows {head.seq + 1}..{point.seq} are gone",
                confirmed,
            )
        with _stream(connection, _UNSEALED_ROWS, {"mac_from": mac_from}) as rows:
            for row in rows:
                values = _canonical_values(dict(zip(HASHED_FIELDS, row, strict=False)))
                if not _mac_matches(row[_MAC], values, key):
                    return broken(None, row[0], f"unsealed row: {_FORGED}", confirmed)
        copied = connection.execute(_COPIED).scalar()
        if copied is not None:
            seq = connection.execute(_SEQ_OF, {"id": copied}).scalar()
            return broken(seq, copied, "a copy of another row (same MAC)", confirmed)
        outside = connection.execute(_OUTSIDE, {"head_seq": head.seq}).scalar()
        if outside is not None:
            seq = connection.execute(_SEQ_OF, {"id": outside}).scalar()
            return broken(
                seq, outside, f"row numbered {seq}, outside the chain 1..{head.seq}: inserted", confirmed
            )
        return Verification(True, checked, unsealed, head.seq, checkpoints=confirmed)


# What verify reads of a row: its hashed content (in HASHED_FIELDS' order, id first: zip() with
# HASHED_FIELDS takes that part), then its link and its MAC.
_VERIFIED = (*HASHED_FIELDS, "prev_hash", "hash", "mac")
_SEQ, _PREV_HASH, _HASH, _MAC = (_VERIFIED.index(name) for name in ("seq", "prev_hash", "hash", "mac"))
_STREAM_PAGE = 5000
_HEAD = select(HEAD.c.seq, HEAD.c.hash, HEAD.c.mac_from_id, HEAD.c.mac).where(HEAD.c.id == 1)
_COUNT_UNSEALED = select(func.count()).select_from(JOURNAL).where(JOURNAL.c.seq.is_(None))
_SEALED_ROWS = (
    select(*(JOURNAL.c[name] for name in _VERIFIED))
    .where(JOURNAL.c.seq > 0, JOURNAL.c.seq <= bindparam("up_to"))
    .order_by(JOURNAL.c.seq)
)
_UNSEALED_ROWS = (
    select(*(JOURNAL.c[name] for name in _VERIFIED))
    .where(JOURNAL.c.seq.is_(None), JOURNAL.c.id >= bindparam("mac_from"))
    .order_by(JOURNAL.c.id)
)
_COPIED = select(func.max(JOURNAL.c.id)).where(
    JOURNAL.c.mac.in_(
        select(JOURNAL.c.mac)
        .where(JOURNAL.c.mac.is_not(None))
        .group_by(JOURNAL.c.mac)
        .having(func.count() > 1)
    )
)
_OUTSIDE = select(func.min(JOURNAL.c.id)).where((JOURNAL.c.seq < 1) | (JOURNAL.c.seq > bindparam("head_seq")))
_SEQ_OF = select(JOURNAL.c.seq).where(JOURNAL.c.id == bindparam("id"))


def _stream(connection: Connection, statement: Select[Any], params: dict[str, Any]) -> CursorResult[Any]:
    """The rows of ``statement`` fetched a page at a time (a server-side cursor on PostgreSQL, in the
    connection's transaction), never all held at once; close it (``with``) when leaving early."""
    return connection.execute(statement, params, execution_options={"yield_per": _STREAM_PAGE})


def _rewritten(point: Checkpoint, found: str) -> str:
    return (
        f"{point.describe()} recorded hash {point.hash[:12]}… at this position, the chain now has"
        f" {found}: the journal was rewritten since (rolled back and sealed again)"
    )


_FORGED = "no valid MAC: written without the hub's key (inserted by hand) or altered before its seal"


def _mac_matches(mac: str | None, values: dict[str, Any], key: bytes) -> bool:
    """Whether ``mac`` is :func:`row_mac` of the row whose :func:`_canonical_values` are ``values``."""
    if mac is None:
        return False
    return hmac.compare_digest(mac, _mac(_JSON({name: values[name] for name in _MAC_FIELDS}), key))
