"""Statements of the hot paths, built once, compiled once per dialect, and sent with the driver's
own placeholders.

Building a statement costs: a two-condition UPDATE built anew for every execution took ~130 µs
against ~20 µs built once (measured on this machine). So each shape is built once, keyed by the
columns it sets, and only values are bound. Bound parameter names carry a prefix (``v_`` for
values, ``k_`` for keys) so they never collide with the column names SQLAlchemy reserves for
itself in UPDATE statements.

Executing costs too: ``Connection.execute`` of a Core statement, even cached, builds an execution
context each time (cache key, parameter processing through the compiled form, result metadata):
82 µs for an UPDATE of a request against 19 µs for ``exec_driver_sql`` of the same SQL with the
parameters already processed (measured on this machine). A flow writes a dozen such statements per
request, so :class:`Direct` does the compiling and the type processing once per dialect (as
:mod:`hub.db.pipeline` does for statements sent together) and sends the rest through
``exec_driver_sql``, which keeps what matters of SQLAlchemy: the connection's
transaction, its events, and its error wrapping (a database failure is still a ``DBAPIError``, so
the worker retries and the API answers 503).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, CursorResult, Executable, Insert, Table, Update, bindparam, insert, update
from sqlalchemy.engine import Dialect

from hub.db.pipeline import Compiled, bind_params, compile_once


@functools.cache
def update_where(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Update:
    """``UPDATE table SET columns... WHERE key = :k_key AND ...``; bind ``v_<column>`` and ``k_<key>``."""
    return (
        update(table)
        .where(*(table.c[key] == bindparam(f"k_{key}") for key in keys))
        .values({column: bindparam(f"v_{column}") for column in columns})
    )


def update_params(keys: dict[str, object], values: dict[str, object]) -> dict[str, object]:
    """The parameters of :func:`update_where` for these key and column values."""
    params = {f"k_{key}": value for key, value in keys.items()}
    params.update((f"v_{column}", value) for column, value in values.items())
    return params


class Direct:
    """A Core statement run with ``exec_driver_sql``: compiled, and its parameters' type processors
    looked up, once per dialect (:func:`hub.db.pipeline.compile_once`, shared with pipelines).

    For statements whose parameters are plain values (no expanding ``IN`` lists): every bound name
    must be given on each execution. Rows a ``RETURNING`` gives back are the driver's own (no result
    type processing)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        compiled = self._compiled(connection.dialect)
        return connection.exec_driver_sql(compiled.sql, bind_params(compiled, params))

    def executemany(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> CursorResult[Any]:
        compiled = self._compiled(connection.dialect)
        return connection.exec_driver_sql(compiled.sql, [bind_params(compiled, row) for row in rows])

    def _compiled(self, dialect: Dialect) -> Compiled:
        compiled = compile_once(self.statement, dialect)
        if "POSTCOMPILE" in compiled.sql:  # an expanding IN list: rendered per execution, not here
            raise ValueError(f"not a plain statement for Direct: {compiled.sql}")
        return compiled


@functools.cache
def direct_update(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Direct:
    """:func:`update_where` as a :class:`Direct`; bind it with :func:`update_params`."""
    return Direct(update_where(table, keys, columns))


def insert_values(table: Table, *columns: str) -> Insert:
    """``INSERT INTO table (columns...)`` bound by column name, each parameter typed as its column
    (so JSON and UTC datetimes are processed as the column does)."""
    return insert(table).values({column: bindparam(column, type_=table.c[column].type) for column in columns})


@functools.cache
def direct_insert(table: Table, columns: tuple[str, ...]) -> Direct:
    """:func:`insert_values` as a :class:`Direct`; one row or, with ``executemany``, many. No
    ``RETURNING``: the hot path never reads generated keys."""
    return Direct(insert_values(table, *columns).inline())
