"""Reading the exchange journal: the auditor's and the DPO's questions, answered from the rows.

"Who sent this citizen's data to whom, when, and for which purpose" (RGPD art. 5, 15, 30): the
journal holds one row per exchange, with references and digests only. This module selects rows by
the facts an auditor starts from — a citizen, a request, a system, a purpose, a client, a period —
and pages through them in journal order with a keyset cursor, so a long history is read in bounded
pieces and a page never shifts while new rows are appended.

A citizen is named by golden id. Their rows are those that carry the golden id (outbound calls, 360°
views, steward decisions), those of any golden record merged into it, every row of their requests
(the inbound row of a request carries the pseudonym of the identity as filed, made before the
citizen was resolved), and the rows carrying a pseudonym their golden record holds as the requests'
source record: the requests refused at the door, which have no request row. A merge a steward undid
still counts for the time it lasted: while two golden records were one, rows written under either
concerned both people, so each one's selection keeps the other's rows written between the merge and
the unmerge (``md_events``) — and only those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, and_, or_, select

from hub.db.master_models import EVENTS, GOLDEN, XREFS
from hub.db.models import JOURNAL, REQUESTS
from hub.journal import HASHED_FIELDS

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


_FIELDS = (*HASHED_FIELDS, "hash")  # the row as chained, and its place in the chain


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


def merged_periods(connection: Connection, golden_ids: Sequence[str]) -> list[tuple[str, datetime, datetime]]:
    """The undone merges of these golden records, from either side: (the other golden id, merged at,
    split back at). While merged, rows written under the other golden id concerned these people too."""
    merge, unmerge = EVENTS.alias("merge"), EVENTS.alias("unmerge")
    rows = connection.execute(
        select(merge.c.golden_id, merge.c.other_id, merge.c.at, unmerge.c.at.label("until"))
        .join(unmerge, unmerge.c.id == merge.c.undone_by)
        .where(
            merge.c.kind == "merge",
            or_(merge.c.golden_id.in_(golden_ids), merge.c.other_id.in_(golden_ids)),
        )
        .order_by(merge.c.id)
    ).all()
    periods = []
    for row in rows:
        for mine, theirs in ((row.golden_id, row.other_id), (row.other_id, row.golden_id)):
            if mine in golden_ids and theirs not in golden_ids:
                periods.append((theirs, row.at, row.until))
    return periods


def _conditions(
    connection: Connection, wanted: JournalFilter, request_system: str | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.citizen is not None:
        ids = golden_ids_of(connection, wanted.citizen)
        requests = select(REQUESTS.c.id).where(REQUESTS.c.golden_id.in_(ids))
        while_merged = [
            and_(JOURNAL.c.citizen_ref == other, JOURNAL.c.at >= since, JOURNAL.c.at <= until)
            for other, since, until in merged_periods(connection, ids)
        ]
        as_filed = []
        if request_system is not None:  # a request's source record is (request_system, citizen_ref)
            pseudonyms = select(XREFS.c.local_id).where(
                XREFS.c.system == request_system, XREFS.c.golden_id.in_(ids)
            )
            as_filed.append(JOURNAL.c.citizen_ref.in_(pseudonyms))
        conditions.append(
            or_(JOURNAL.c.citizen_ref.in_(ids), JOURNAL.c.request_id.in_(requests), *as_filed, *while_merged)
        )
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


def search(
    connection: Connection,
    wanted: JournalFilter,
    *,
    after: int = 0,
    limit: int = 100,
    request_system: str | None = None,
) -> JournalPage:
    """One page of the rows ``wanted``, after the row id ``after``, at most ``limit`` (≤ 500);
    ``request_system`` (``master_data.portal_system``) finds a citizen's refused requests too."""
    limit = max(1, min(limit, MAX_LIMIT))
    rows = connection.execute(
        select(*(JOURNAL.c[name] for name in _FIELDS))
        .where(JOURNAL.c.id > after, *_conditions(connection, wanted, request_system))
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
