"""The vocabulary shared by every connector and the hub: a call's context and its journaled record.

The hub's journal implements :class:`ExchangeRecorder`; connectors only ever see this protocol, so
they can run on an Airflow worker or in a test without the API or its database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

# "interrupted": an attempt whose worker was lost mid-step; it may or may not have reached the
# system (the retry that follows carries the same idempotency key).
Outcome = Literal["ok", "transient_error", "permanent_error", "rejected", "interrupted"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who calls, for which request and purpose: what the journal needs besides the call."""

    correlation_id: str
    request_id: str | None = None
    client: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    citizen_ref: str | None = None
    # Derived from the request and the flow step, so a retried call is recognised by the back-end.
    idempotency_key: str | None = None
    # Attempts already made by earlier deliveries (the hub reschedules through its outbox), so the
    # journal numbers attempts across deliveries, not only within one call.
    previous_attempts: int = 0
    # An earlier delivery of this call was lost mid-step (its worker died): the gateway journals
    # that attempt (outcome "interrupted", numbered previous_attempts) before making its own.
    interrupted: bool = False
    # Where the recorder may hold the row of the exchange that ends the call ``held_operation``
    # (its answer or a permanent error) instead of writing it at once: the caller writes it with
    # its own next write, which always follows (a flow's checkpoint). Everything else is written
    # before the gateway goes on: an attempt another may follow (a transient error, a refusal, an
    # interrupted attempt), an exchange under another name (an adapter's operation that makes
    # several), and a second exchange of the call (the held row is then written first, in order).
    held_rows: list[Any] | None = field(default=None, compare=False, hash=False, repr=False)
    held_operation: str | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """One attempt of one outbound call and its answer, as the journal records it."""

    system: str
    operation: str
    attempt: int
    outcome: Outcome
    latency_ms: float
    payload_digest: str
    response_digest: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Received(Generic[T]):
    """What an attempt returns when it holds the answer's bytes as they came off the wire: the
    gateway hands ``value`` to the caller and journals the digest of ``raw`` (what was received,
    hashed once, instead of the value encoded again as canonical JSON)."""

    value: T
    raw: bytes


class ExchangeRecorder(Protocol):
    """Receives every attempt of every outbound call. The hub's journal implements it."""

    def record(self, exchange: Exchange, context: CallContext) -> None: ...


class NullRecorder:
    """A recorder that keeps nothing, for benchmarks of the bare client path and ad-hoc scripts."""

    def record(self, exchange: Exchange, context: CallContext) -> None:
        return None


# One encoder for every digest: ``json.dumps`` with these options would build a new encoder per
# call, a measurable share of a fast back-end's answer time. Same bytes as ``json.dumps``.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def digest(payload: Any, key: bytes | None = None) -> str:
    """Digest of a payload in canonical JSON (or raw bytes): what the journal keeps, not the data.

    With ``key`` it is an HMAC-SHA256: a citizen's message is built from guessable facts (name,
    birth date, commune), so a plain hash would let whoever holds the journal confirm a guess.
    """
    if isinstance(payload, bytes):
        raw = payload
    elif isinstance(payload, str):
        raw = payload.encode()
    else:
        raw = _CANONICAL.encode(payload).encode()
    if key is not None:
        return "hmac-sha256:" + hmac.digest(key, raw, "sha256").hex()
    return "sha256:" + hashlib.sha256(raw).hexdigest()
