"""Reading the exchange journal: the auditor's and the DPO's questions, answered from the rows.

"Who sent this citizen's data to whom, when, and for which purpose" (RGPD art. 5, 15, 30): the
journal holds one row per exchange, with references and digests only. This module selects rows by
the facts an auditor starts from — a citizen, a request, a system, a purpose, a client, a period —
and pages through them in journal order with a keyset cursor, so a long history is read in bounded
pieces and a page never shifts while new rows are appended.

A citizen is named by golden id. Their rows are those that carry the golden id (outbound calls, 360°
views, steward decisions), those of any golden record merged into it, and every row of their
requests (the inbound row of a request carries the pseudonym of the identity as filed, made before
the citizen was resolved).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, or_, select

from hub.db.master_models import GOLDEN
from hub.db.models import JOURNAL, REQUESTS

MAX_LIMIT = 500

Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True)
class JournalFilter:
    """The rows wanted; every given field narrows the selection (``None``: no condition)."""

    citizen: str | None = None
    request_id: str | None = None
    correlation_id: str | None = None
    client: str | None = None
    system: str | None = None
    operation: str | None = None
    direction: Direction | None = None
    purpose: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class JournalPage:
    """Rows in journal order; ``next_after`` is the cursor of the next page (``None``: the last)."""

    entries: list[dict[str, Any]]
    next_after: int | None


_FIELDS = (
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
    "error_code",
    "attempt",
    "latency_ms",
    "payload_digest",
    "response_digest",
    "seq",
    "hash",
)


def golden_ids_of(connection: Connection, golden_id: str) -> list[str]:
    """The golden id and every golden record merged into it, at any depth (merges chain)."""
    found, frontier = [golden_id], [golden_id]
    while frontier:
        frontier = list(
            connection.scalars(select(GOLDEN.c.id).where(GOLDEN.c.merged_into.in_(frontier))).all()
        )
        frontier = [g for g in frontier if g not in found]
        found += frontier
    return found


def _conditions(connection: Connection, wanted: JournalFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.citizen is not None:
        ids = golden_ids_of(connection, wanted.citizen)
        requests = select(REQUESTS.c.id).where(REQUESTS.c.golden_id.in_(ids))
        conditions.append(or_(JOURNAL.c.citizen_ref.in_(ids), JOURNAL.c.request_id.in_(requests)))
    columns = (
        "request_id",
        "correlation_id",
        "client",
        "system",
        "operation",
        "direction",
        "purpose",
        "outcome",
    )
    for name in columns:
        value = getattr(wanted, name)
        if value is not None:
            conditions.append(JOURNAL.c[name] == value)
    if wanted.since is not None:
        conditions.append(JOURNAL.c.at >= wanted.since)
    if wanted.until is not None:
        conditions.append(JOURNAL.c.at < wanted.until)
    return conditions


def search(connection: Connection, wanted: JournalFilter, *, after: int = 0, limit: int = 100) -> JournalPage:
    """One page of the rows ``wanted``, after the row id ``after``, at most ``limit`` (≤ 500)."""
    limit = max(1, min(limit, MAX_LIMIT))
    rows = connection.execute(
        select(*(JOURNAL.c[name] for name in _FIELDS))
        .where(JOURNAL.c.id > after, *_conditions(connection, wanted))
        .order_by(JOURNAL.c.id)
        .limit(limit + 1)
    ).all()
    entries = [_entry(row._mapping) for row in rows[:limit]]
    return JournalPage(entries, entries[-1]["id"] if len(rows) > limit else None)


def _entry(row: Any) -> dict[str, Any]:
    entry = {name: row[name] for name in _FIELDS}
    entry["at"] = row["at"].isoformat()
    entry["sealed"] = row["seq"] is not None
    return entry
