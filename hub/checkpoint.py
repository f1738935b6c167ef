"""A flow's checkpoint: its outbox message, its request and its new timeline events, fenced by the
claim token, written together, with the journal rows of the calls answered since the last one.

The token in the outbox UPDATE's WHERE clause is the fence: a worker whose lease was taken over
updates nothing there, and must write nothing else either. On SQLite that is three statements in
the caller's transaction (the batched writer shares it with other flows). On PostgreSQL it is one
statement, data-modifying CTEs whose request UPDATE and event INSERT run only if the fenced UPDATE
found its row, sent in autocommit: one round trip instead of six (BEGIN, three statements, COMMIT
and the checkout), which both the hub and the database server pay for.

The journal rows are written whether or not the fence holds: a call that was made is journaled, even
by a worker that lost its claim meanwhile. Written with the checkpoint, they cost no statement of
their own (a birth certificate's two registry calls and its filing: three autocommit INSERTs fewer).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    String,
    Text,
    bindparam,
    column,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from hub.db.engine import Database
from hub.db.models import EVENTS, JOURNAL, OUTBOX, REQUESTS
from hub.db.prebuilt import Direct, direct_insert, direct_update, update_params, update_where
from hub.journal import ROW_FIELDS, insert_rows

_FENCE = ("id", "claimed_by")
_EVENT_COLUMNS = ("request_id", "at", "step", "outcome", "detail")


@dataclass(frozen=True)
class Checkpoint:
    """What a flow's step writes: ``message`` (outbox columns) and ``request`` (request columns)
    under ``fence`` (message id and claim token), plus new timeline ``events``, rows of
    ``request_events`` without ``request_id`` (``at``, ``step``, ``outcome``, ``detail``), and the
    ``journal`` rows the run's calls left to write (:class:`hub.journal.JournalRecorder`)."""

    fence: dict[str, Any]
    message: dict[str, Any]
    request_id: str
    request: dict[str, Any]
    events: list[dict[str, Any]]
    journal: list[dict[str, Any]] = field(default_factory=list)


def write_checkpoint(connection: Connection, checkpoint: Checkpoint) -> bool:
    """Write the checkpoint if its fence still holds, and its journal rows in any case; say whether
    the fence held."""
    fence, message, request = checkpoint.fence, checkpoint.message, checkpoint.request
    request_id, events = checkpoint.request_id, checkpoint.events
    if connection.dialect.name == "postgresql":
        params = update_params(fence, message)
        params.update((f"r_{name}", value) for name, value in request.items())
        params["r_id"] = request_id
        params["events"] = [{**e, "at": e["at"].isoformat()} for e in events]
        params["journal"] = [{**row, "at": row["at"].isoformat()} for row in checkpoint.journal]
        statement = _postgresql_statement(tuple(message), tuple(request))
        return statement.execute(connection, params).scalar_one() == 1
    insert_rows(connection, checkpoint.journal)
    mine = direct_update(OUTBOX, _FENCE, tuple(message)).execute(connection, update_params(fence, message))
    if mine.rowcount != 1:
        return False
    direct_update(REQUESTS, ("id",), tuple(request)).execute(
        connection, update_params({"id": request_id}, request)
    )
    if events:
        direct_insert(EVENTS, _EVENT_COLUMNS).executemany(
            connection, [{"request_id": request_id, "detail": None, **e} for e in events]
        )
    return True


def save_checkpoint(db: Database, checkpoint: Checkpoint) -> bool:
    """:func:`write_checkpoint` as a unit of the database's worker writes, committed before it
    returns: in autocommit on PostgreSQL, where it is one statement; in the batched writer's shared
    transaction on SQLite."""
    return db.write(
        lambda connection: write_checkpoint(connection, checkpoint),
        single_statement=db.dialect == "postgresql",
    )


@functools.cache
def _postgresql_statement(message_columns: tuple[str, ...], request_columns: tuple[str, ...]) -> Direct:
    """Built once per shape; binds ``k_id``, ``k_claimed_by``, ``v_<column>``, ``r_id``,
    ``r_<column>``, ``events`` and ``journal`` (JSON arrays)."""
    fenced = update_where(OUTBOX, _FENCE, message_columns).returning(OUTBOX.c.id).cte("fenced")
    held = exists(select(fenced.c.id))
    request = (
        REQUESTS.update()
        .where(REQUESTS.c.id == bindparam("r_id"), held)
        .values({name: bindparam(f"r_{name}") for name in request_columns})
        .cte("request")
    )
    rows = (
        func.jsonb_to_recordset(bindparam("events", type_=JSONB))
        .table_valued(
            column("at", DateTime(timezone=True)),
            column("step", String),
            column("outcome", String),
            column("detail", Text),
        )
        .render_derived(name="e", with_types=True)
    )
    events = (
        insert(EVENTS)
        .from_select(
            ["request_id", "at", "step", "outcome", "detail"],
            select(bindparam("r_id", type_=String), rows.c.at, rows.c.step, rows.c.outcome, rows.c.detail)
            .select_from(rows)
            .where(held),
        )
        .cte("events")
    )
    # Not fenced: PostgreSQL runs every data-modifying CTE, read or not.
    journaled = (
        func.jsonb_to_recordset(bindparam("journal", type_=JSONB))
        .table_valued(*(column(name, JOURNAL.c[name].type) for name in ROW_FIELDS))
        .render_derived(name="j", with_types=True)
    )
    journal = (
        insert(JOURNAL)
        .from_select(list(ROW_FIELDS), select(*(journaled.c[name] for name in ROW_FIELDS)))
        .cte("journal_rows")
    )
    return Direct(select(func.count()).select_from(fenced).add_cte(request, events, journal))
