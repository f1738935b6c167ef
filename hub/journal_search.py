"""Reading the exchange journal: the auditor's and the DPO's questions, answered from the rows.

"Who sent this citizen's data to whom, when, and for which purpose" (RGPD art. 5, 15, 30): the
journal holds one row per exchange, with references and digests only. This module selects rows by
the facts an auditor starts from — a citizen, a request, a system, a purpose, a client, a period —
and pages through them in journal order with a keyset cursor, so a long history is read in bounded
pieces and a page never shifts while new rows are appended.

A citizen is named by golden id. The person is that golden record and every one merged with it
now, at any depth and on either side (a merged-away id names the person it lives in now). Their
rows are those that carry one of these golden ids (outbound calls, 360° views, steward decisions),
at any time, every row of their requests (the inbound row of a request carries the pseudonym of
the identity as filed, made before the citizen was resolved), the rows carrying a pseudonym their
golden records hold as the requests' source record (the requests refused at the door, which have no
request row), and the exchanges that brought their source records in (an import's row, one per
file, names no one person). A merge a steward undid still
counts for the time it lasted: while golden records were held together — by one merge or a chain
of them, overlapping or nested (A in B, B in C: A was in C) — rows written under any of them
concerned all, so the selection keeps another golden record's rows written while it was held
together with the person, and only those (:mod:`master_data.merge_history`, from ``md_events``
read in one recursive query). A page costs three queries: the merge history, the person's requests
and imports, then the page itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Connection,
    Select,
    and_,
    bindparam,
    case,
    cast,
    null,
    or_,
    select,
    union_all,
)

from hub.db.master_models import EVENTS, GOLDEN_ID, SOURCES, XREFS
from hub.db.models import JOURNAL, REQUESTS
from hub.journal import HASHED_FIELDS
from master_data.merge_history import Merge, current_person, shared_periods

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


def _merge_history_statement() -> Select[Any]:
    """Built once: every merge among the golden records merges ever joined to ``:golden_id``."""
    step = EVENTS.alias("step")
    joined = select(bindparam("golden_id", type_=GOLDEN_ID).label("id")).cte("joined", recursive=True)
    joined = joined.union(
        select(case((step.c.golden_id == joined.c.id, step.c.other_id), else_=step.c.golden_id)).where(
            step.c.kind == "merge", or_(step.c.golden_id == joined.c.id, step.c.other_id == joined.c.id)
        )
    )
    merge, unmerge = EVENTS.alias("merge"), EVENTS.alias("unmerge")
    return (
        select(merge.c.golden_id, merge.c.other_id, merge.c.at, unmerge.c.at.label("until"))
        .outerjoin(unmerge, unmerge.c.id == merge.c.undone_by)
        .where(merge.c.kind == "merge", merge.c.golden_id.in_(select(joined.c.id)))
        .order_by(merge.c.id)
    )


_MERGE_HISTORY = _merge_history_statement()


def merge_history(connection: Connection, golden_id: str) -> list[Merge]:
    """Every merge, in force or undone, among the golden records that merges ever joined to
    ``golden_id`` (at any depth, on either side): one recursive query, however deep the chain."""
    rows = connection.execute(_MERGE_HISTORY, {"golden_id": golden_id}).all()
    return [Merge(row.golden_id, row.other_id, row.at, row.until) for row in rows]


def _requests_of(ids: Any) -> Select[Any]:
    """The requests resolved to the golden records ``ids``."""
    return select(REQUESTS.c.id.label("request_id")).where(REQUESTS.c.golden_id.in_(ids))


def _brought_by(ids: Any) -> Select[Any]:
    """The exchanges that brought the current source records of the golden records ``ids`` in (an
    import's row, one per file, names no one person)."""
    return (
        select(SOURCES.c.exchange_id)
        .join(XREFS, and_(XREFS.c.system == SOURCES.c.system, XREFS.c.local_id == SOURCES.c.local_id))
        .where(XREFS.c.golden_id.in_(ids), SOURCES.c.exchange_id.is_not(None))
    )


def _as_filed(ids: Any, system: Any) -> Select[Any]:
    """The pseudonyms the golden records ``ids`` hold as source records of the requests' system
    (``master_data.portal_system``): the citizen_ref of a request refused at the door, which has no
    request row to be found by."""
    return select(XREFS.c.local_id).where(XREFS.c.system == system, XREFS.c.golden_id.in_(ids))


def _person_references_statement() -> CompoundSelect:
    """Built once: :func:`_requests_of`, :func:`_brought_by` and :func:`_as_filed` the golden
    records ``:ids`` (``:system`` None: no pseudonyms)."""
    ids, system = bindparam("ids", expanding=True), bindparam("system", type_=XREFS.c.system.type)
    no_request, no_exchange = cast(null(), REQUESTS.c.id.type), cast(null(), BigInteger)
    no_pseudonym = cast(null(), XREFS.c.local_id.type)
    return union_all(
        _requests_of(ids).add_columns(no_exchange.label("exchange_id"), no_pseudonym.label("pseudonym")),
        _brought_by(ids).with_only_columns(no_request, SOURCES.c.exchange_id, no_pseudonym),
        _as_filed(ids, system).with_only_columns(no_request, no_exchange, XREFS.c.local_id),
    )


_PERSON_REFERENCES = _person_references_statement()
# Above this many requests and imports, the page reads them through subqueries again rather than as
# values (a database's limit on bound parameters; a person seldom has a hundred).
MAX_LISTED = 2_000


def _citizen_condition(
    connection: Connection, golden_id: str, request_system: str | None
) -> ColumnElement[bool]:
    """The rows of the person ``golden_id`` is (see the module docstring), in two queries: the merge
    history, then their requests, imports and the pseudonyms they filed under. Both are given to
    the page's query as values, so each branch of its OR is an index look-up (a subquery there made
    PostgreSQL filter the whole journal in id order)."""
    merges = merge_history(connection, golden_id)
    ids = sorted(current_person(golden_id, merges))
    references = connection.execute(_PERSON_REFERENCES, {"ids": ids, "system": request_system}).all()
    request_ids = sorted({row.request_id for row in references if row.request_id is not None})
    exchange_ids = sorted({row.exchange_id for row in references if row.exchange_id is not None})
    pseudonyms = sorted({row.pseudonym for row in references if row.pseudonym is not None})
    if len(request_ids) + len(exchange_ids) + len(pseudonyms) > MAX_LISTED:
        branches = [
            JOURNAL.c.citizen_ref.in_(ids),
            JOURNAL.c.request_id.in_(_requests_of(ids)),
            JOURNAL.c.id.in_(_brought_by(ids)),
        ]
        if request_system is not None:
            branches.append(JOURNAL.c.citizen_ref.in_(_as_filed(ids, request_system)))
    else:
        branches = [JOURNAL.c.citizen_ref.in_(ids + pseudonyms)]
        if request_ids:
            branches.append(JOURNAL.c.request_id.in_(request_ids))
        if exchange_ids:
            branches.append(JOURNAL.c.id.in_(exchange_ids))
    branches += [
        and_(JOURNAL.c.citizen_ref == p.golden_id, JOURNAL.c.at >= p.since, JOURNAL.c.at <= p.until)
        for p in shared_periods(ids, merges)
    ]
    return or_(*branches)


def _conditions(
    connection: Connection, wanted: JournalFilter, request_system: str | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.citizen is not None:
        conditions.append(_citizen_condition(connection, wanted.citizen, request_system))
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
