"""The hub's tables: requests and their timeline, the outbox, the journal, API clients.

One :class:`Request` row is what the portal filed; its :class:`OutboxMessage` is the work still to
do; :class:`JournalEntry` rows are the tamper-evident record of every exchange.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no time zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# The largest id a BIGINT holds: a page cursor (``after``) beyond it is a client's mistake (a 422),
# not an overflow in the driver (a 500).
MAX_ID = 2**63 - 1


def storable_time(moment: datetime) -> datetime:
    """``moment`` if :class:`UTCDateTime` can store it; raise ValueError (a 422 naming the field, in
    a pydantic model or query) if converting it to UTC leaves the calendar (0001-01-01T00:00+01:00,
    9999-12-31T23:30-01:00), which would otherwise fail in the database layer as a 500, or after
    the request was accepted."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                "this time is outside the calendar once converted to UTC (years 1 to 9999)"
            ) from None
    return moment


# BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite, so autoincrement works on both.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}  # noqa: RUF012


class ApiClient(Base):
    """A client added with ``hub clients add`` (clients in hub.yaml are declared there)."""

    __tablename__ = "api_clients"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(400), doc="space-separated scopes")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Request(Base):
    """A démarche filed by the portal or a business app: the citizen's identity and request data."""

    __tablename__ = "requests"
    __table_args__ = (UniqueConstraint("client", "idempotency_key", name="uq_requests_idempotency"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    flow: Mapped[str] = mapped_column(String(64), index=True)
    client: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    body_digest: Mapped[str] = mapped_column(String(80))
    body: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(32), index=True)
    citizen_ref: Mapped[str | None] = mapped_column(String(80))
    golden_id: Mapped[str | None] = mapped_column(String(36), index=True, doc="resolved by master data")
    correlation_id: Mapped[str] = mapped_column(String(64))
    # Outputs of flow steps (e.g. the registry's act request number), so a flow resumes anywhere.
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target_system: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    events: Mapped[list[RequestEvent]] = relationship(
        back_populates="request", order_by="RequestEvent.id", cascade="all, delete-orphan"
    )


class RequestEvent(Base):
    """One line of a request's timeline: a step, when, with what outcome."""

    __tablename__ = "request_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    step: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)

    request: Mapped[Request] = relationship(back_populates="events")


class OutboxMessage(Base):
    """Work to do for a request, claimed by a worker under a lease (at-least-once delivery)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_ready", "state", "available_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", doc="pending|done|dead")
    step: Mapped[int] = mapped_column(Integer, default=0, doc="index of the next flow step")
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    interrupted_claim: Mapped[str | None] = mapped_column(
        String(100), doc="the claim this one replaced without its release: a worker lost mid-step"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JournalEntry(Base):
    """One exchange in or out. Personal data never lands here: digests and references only.

    Rows are appended unsealed and sealed into the hash chain by :func:`hub.journal.seal` in
    sequence order, like the sequencer of a transparency log, so writers never queue on one lock.
    """

    __tablename__ = "journal"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    correlation_id: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    client: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8), doc="inbound|outbound")
    system: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str | None] = mapped_column(String(64))
    legal_basis: Mapped[str | None] = mapped_column(String(32))
    citizen_ref: Mapped[str | None] = mapped_column(String(80), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    latency_ms: Mapped[float] = mapped_column(Float)
    payload_digest: Mapped[str] = mapped_column(String(80))
    response_digest: Mapped[str | None] = mapped_column(String(80))
    error_code: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, doc="position in the chain")
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(
        String(64), doc="HMAC of the content under the hub's key, made when the row is written"
    )


class JournalHead(Base):
    """The last sealed position of the chain: truncating the tail is detected against it.

    ``mac`` authenticates the row (:func:`hub.journal.head_mac`): without the hub's key, the head
    cannot be rewound over a deleted tail nor ``mac_from_id`` moved."""

    __tablename__ = "journal_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    mac_from_id: Mapped[int | None] = mapped_column(
        BigInteger, doc="rows from this id on must carry a MAC (older rows predate it)"
    )
    mac: Mapped[str | None] = mapped_column(
        String(64), doc="HMAC of seq, hash and mac_from_id under the hub's key, made by the seal"
    )


# Core handles for the hot paths that bypass the ORM unit of work (intake, claims, checkpoints).
REQUESTS = Request.__table__
EVENTS = RequestEvent.__table__
OUTBOX = OutboxMessage.__table__
JOURNAL = JournalEntry.__table__
