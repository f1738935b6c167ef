"""Tables of the golden citizen record (master data), beside the hub's own in :mod:`hub.db.models`.

- :class:`SourceRecord`: every version of what a system said about a person (append-only, so the
  lineage of a golden value, past or present, always points to an existing row);
- :class:`CrossReference`: (system, local id) ↔ golden id, and the current version of that record;
- :class:`BlockingKey`: key → current source record, the index real-time matching reads candidates
  from (an ordinary B-tree on SQLite and PostgreSQL);
- :class:`StatedIdentifier`: another system's identifier a current source record states → that
  record, the index the "same system identifier" rule reads;
- :class:`GoldenRecord`, :class:`GoldenValue` (current values with lineage) and
  :class:`GoldenVersion` (every version kept, for the history);
- :class:`ReviewTask` (data stewards' queue), :class:`NotSameDecision` (their "not the same
  person", remembered), :class:`MasterEvent` (merges and unmerges),
  :class:`MatchModelRow` (the estimated m/u weights in use).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, BigId, utcnow

GOLDEN_ID = String(36)


class SourceRecord(Base):
    __tablename__ = "md_source_records"
    __table_args__ = (Index("ux_md_source_version", "system", "local_id", "version", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(64))
    local_id: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the IdentityRecord's fields as given")
    digest: Mapped[str] = mapped_column(String(64), doc="sha256 of the record: an unchanged re-import")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    exchange_id: Mapped[int | None] = mapped_column(BigInteger, doc="journal row of the exchange")


class CrossReference(Base):
    __tablename__ = "md_xrefs"

    system: Mapped[str] = mapped_column(String(64), primary_key=True)
    local_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    golden_id: Mapped[str] = mapped_column(GOLDEN_ID, index=True)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("md_source_records.id"))
    link: Mapped[str] = mapped_column(String(64), doc="new | rule:<name> | score | steward | merge")
    probability: Mapped[float | None] = mapped_column(Float)
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class BlockingKey(Base):
    __tablename__ = "md_blocking_keys"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    source_record_id: Mapped[int] = mapped_column(
        ForeignKey("md_source_records.id"), primary_key=True, index=True
    )


class StatedIdentifier(Base):
    """(system, local id) stated by a current source record as the person's identifier in another
    system (:attr:`master_data.records.IdentityRecord.identifiers`); replaced with the record's
    keys when a new version arrives (migration 0008)."""

    __tablename__ = "md_stated_ids"

    system: Mapped[str] = mapped_column(String(64), primary_key=True)
    local_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_record_id: Mapped[int] = mapped_column(
        ForeignKey("md_source_records.id"), primary_key=True, index=True
    )


class GoldenRecord(Base):
    __tablename__ = "md_golden_records"

    id: Mapped[str] = mapped_column(GOLDEN_ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), doc="active | merged")
    merged_into: Mapped[str | None] = mapped_column(GOLDEN_ID, index=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class GoldenValue(Base):
    __tablename__ = "md_golden_values"

    golden_id: Mapped[str] = mapped_column(ForeignKey("md_golden_records.id"), primary_key=True)
    attribute: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("md_source_records.id"))
    system: Mapped[str] = mapped_column(String(64))
    local_id: Mapped[str] = mapped_column(String(200))
    exchange_id: Mapped[int | None] = mapped_column(BigInteger)
    observed_at: Mapped[datetime]
    rule: Mapped[str] = mapped_column(String(32))
    source_updated_at: Mapped[datetime | None] = mapped_column(
        default=None, doc="when the source itself changed the record, if it said (migration 0008)"
    )


class GoldenVersion(Base):
    __tablename__ = "md_golden_versions"

    golden_id: Mapped[str] = mapped_column(ForeignKey("md_golden_records.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    cause: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    merged_into: Mapped[str | None] = mapped_column(GOLDEN_ID)
    golden: Mapped[dict[str, Any]] = mapped_column(JSON, doc="values with lineage, cross-references")


class ReviewTask(Base):
    __tablename__ = "md_review_tasks"
    __table_args__ = (Index("ix_md_review_tasks_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), doc="open | linked | not_same")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("md_source_records.id"))
    golden_id: Mapped[str] = mapped_column(GOLDEN_ID)
    candidate_source_record_id: Mapped[int] = mapped_column(ForeignKey("md_source_records.id"))
    candidate_golden_id: Mapped[str] = mapped_column(GOLDEN_ID)
    probability: Mapped[float] = mapped_column(Float)
    total: Mapped[float] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule: Mapped[str | None] = mapped_column(
        String(64),
        default=None,
        doc="why the task was made (master_data.matcher's rule names; None: the score's review band) "
        "(migration 0009)",
    )
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)


class NotSameDecision(Base):
    """A steward's "not the same person" on a review task, kept as a constraint: the two source
    records (by system and local id, so the decision follows them through merges and unmerges)
    are never again linked automatically nor proposed together, nor are the golden records that
    hold them."""

    __tablename__ = "md_not_same"
    __table_args__ = (
        Index("ix_md_not_same_a", "a_system", "a_local_id"),
        Index("ix_md_not_same_b", "b_system", "b_local_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    a_system: Mapped[str] = mapped_column(String(64))
    a_local_id: Mapped[str] = mapped_column(String(200))
    b_system: Mapped[str] = mapped_column(String(64))
    b_local_id: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)


class MasterEvent(Base):
    """A merge or an unmerge, with what it moved (so that an unmerge can put it back)."""

    __tablename__ = "md_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), doc="merge | unmerge")
    actor: Mapped[str] = mapped_column(String(100))
    golden_id: Mapped[str] = mapped_column(GOLDEN_ID, index=True, doc="the survivor")
    other_id: Mapped[str] = mapped_column(GOLDEN_ID, index=True, doc="the absorbed / restored one")
    moved: Mapped[list[Any]] = mapped_column(JSON, doc="[[system, local_id], ...] moved to the survivor")
    systems: Mapped[list[Any]] = mapped_column(JSON, doc="systems that received either identity")
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    undone_by: Mapped[int | None] = mapped_column(BigInteger, doc="the unmerge that split it back")
    notice_request_id: Mapped[str | None] = mapped_column(String(36), doc="the event flow's request")


class MatchModelRow(Base):
    __tablename__ = "md_match_models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    records: Mapped[int] = mapped_column(Integer, doc="how many records it was estimated from")
    model: Mapped[dict[str, Any]] = mapped_column(JSON)


SOURCES = SourceRecord.__table__
XREFS = CrossReference.__table__
KEYS = BlockingKey.__table__
STATED = StatedIdentifier.__table__
GOLDEN = GoldenRecord.__table__
VALUES = GoldenValue.__table__
VERSIONS = GoldenVersion.__table__
TASKS = ReviewTask.__table__
EVENTS = MasterEvent.__table__
NOT_SAME = NotSameDecision.__table__
MODELS = MatchModelRow.__table__
