"""Statements sent together: one network round trip on PostgreSQL, one after the other on SQLite.

A real-time resolution needs a dozen statements; on PostgreSQL each one's round trip, and
SQLAlchemy's per-execution work around it, cost more than the statement itself. A
:class:`Pipeline` collects Core statements built once (module constants with bound parameters)
and, on PostgreSQL, sends them in psycopg's pipeline mode: the server runs them in order, in the
caller's transaction, and the results come back together. Each statement is compiled once per
dialect, and its parameters and results go through the same SQLAlchemy type processors as
``Connection.execute`` would apply (JSON, aware UTC datetimes). On SQLite (an in-process library,
no round trip to save) the statements simply run through the connection.

A statement that reads (a SELECT, or anything ``RETURNING``) gives its rows after :meth:`run`;
a later statement of the same pipeline cannot use them (on PostgreSQL it was sent already).
"""

from __future__ import annotations

import collections
import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, Executable, Select, TextClause
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase

Params = Mapping[str, Any]


class Pending:
    """One statement's rows, filled in by :meth:`Pipeline.run`."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class _Item(NamedTuple):
    statement: Executable
    params: Params | Sequence[Params]
    many: bool
    pending: Pending


class Compiled(NamedTuple):
    sql: str
    binds: dict[str, Callable[[Any], Any] | None]
    defaults: dict[str, Any]  # values the statement carries itself (a LIMIT, a literal)
    results: list[Callable[[Any], Any] | None] | None


_compiled: weakref.WeakKeyDictionary[Executable, dict[str, Compiled]] = weakref.WeakKeyDictionary()


class Pipeline:
    """Statements of one transaction, run together by :meth:`run`."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._items: list[_Item] = []

    def add(self, statement: Executable, params: Params | None = None) -> Pending:
        pending = Pending()
        self._items.append(_Item(statement, params or {}, False, pending))
        return pending

    def add_many(self, statement: Executable, rows: Sequence[Params]) -> None:
        """One statement for several rows (no rows: nothing is sent)."""
        if rows:
            self._items.append(_Item(statement, rows, True, Pending()))

    def run(self) -> None:
        items, self._items = self._items, []
        if not items:
            return
        if self.connection.dialect.name == "postgresql":
            _run_postgresql(self.connection, items)
        else:
            _run_sqlite(self.connection, items)


def _run_sqlite(connection: Connection, items: list[_Item]) -> None:
    """sqlite3's cursor directly, in the transaction SQLAlchemy began: no round trip to save, but
    SQLAlchemy's work around each execution costs more than SQLite's own for these statements."""
    dialect = connection.dialect
    driver = connection.connection.driver_connection
    assert driver is not None
    for item in items:
        statement = compile_once(item.statement, dialect)
        try:
            cursor = driver.cursor()
            if item.many:
                cursor.executemany(statement.sql, [bind_params(statement, p) for p in item.params])  # type: ignore[union-attr]
            else:
                cursor.execute(statement.sql, bind_params(statement, item.params))  # type: ignore[arg-type]
        except dialect.loaded_dbapi.Error as exc:
            error = dialect.loaded_dbapi.Error
            raise DBAPIError.instance(statement.sql, None, exc, error, dialect=dialect) from exc
        if cursor.description is None:
            continue
        row = _row_type(item.statement, tuple(d[0] for d in cursor.description))
        processors = statement.results or []
        if any(processors):
            item.pending.rows = [
                row(*(p(v) if p else v for p, v in zip(processors, values, strict=True)))
                for values in cursor.fetchall()
            ]
        else:
            item.pending.rows = [row(*values) for values in cursor.fetchall()]


_row_types: weakref.WeakKeyDictionary[Executable, type] = weakref.WeakKeyDictionary()


def _row_type(statement: Executable, names: tuple[str, ...]) -> type:
    found = _row_types.get(statement)
    if found is None:
        found = _row_types[statement] = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
    return found


def _run_postgresql(connection: Connection, items: list[_Item]) -> None:
    # Imported here: psycopg is the `postgres` extra, absent from an embedded (SQLite) install.
    from psycopg.rows import namedtuple_row

    dialect = connection.dialect
    driver = connection.connection.driver_connection
    assert driver is not None
    compiled = [compile_once(item.statement, dialect) for item in items]
    cursors = []
    try:
        with driver.pipeline():
            for item, statement in zip(items, compiled, strict=True):
                cursor = driver.cursor(row_factory=namedtuple_row)
                if item.many:
                    cursor.executemany(statement.sql, [bind_params(statement, p) for p in item.params])  # type: ignore[union-attr]
                else:
                    cursor.execute(statement.sql, bind_params(statement, item.params))  # type: ignore[arg-type]
                cursors.append(cursor)
    except dialect.loaded_dbapi.Error as exc:
        # The exceptions Connection.execute raises (IntegrityError for a key taken meanwhile...),
        # so callers' retries and error handling see no difference.
        sql = "; ".join(statement.sql for statement in compiled)
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
    for item, statement, cursor in zip(items, compiled, cursors, strict=True):
        if cursor.description is None:
            continue
        rows = cursor.fetchall()
        if statement.results is not None and any(statement.results):
            processors = statement.results
            rows = [
                type(row)(*(p(v) if p else v for p, v in zip(processors, row, strict=True))) for row in rows
            ]
        item.pending.rows = rows


def compile_once(statement: Executable, dialect: Dialect) -> Compiled:
    """``statement`` compiled for ``dialect`` with named parameters, its parameters' and results'
    type processors looked up: once per statement and dialect (kept while the statement lives)."""
    by_dialect = _compiled.setdefault(statement, {})
    found = by_dialect.get(dialect.name)
    if found is not None:
        return found
    # Named parameters (psycopg's dialect has them; sqlite3 takes :name as well as ?).
    named = dialect if dialect.name == "postgresql" else _named_sqlite()
    compiled = statement.compile(dialect=named)  # type: ignore[attr-defined]
    if compiled.positiontup:  # pragma: no cover - both dialects above are named
        raise ValueError("a pipeline statement needs named parameters")
    binds = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect)
        for bind, name in compiled.bind_names.items()
    }
    results = None
    columns = (
        statement.selected_columns
        if isinstance(statement, Select)
        else statement._returning  # type: ignore[attr-defined]
        if isinstance(statement, UpdateBase)
        else None
    )
    if columns is not None and not isinstance(statement, TextClause):
        results = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
    defaults = {name: bind.value for bind, name in compiled.bind_names.items() if not bind.required}
    found = Compiled(compiled.string, binds, defaults, results)
    by_dialect[dialect.name] = found
    return found


@functools.cache
def _named_sqlite() -> Dialect:
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    return SQLiteDialect_pysqlite(paramstyle="named")


def bind_params(compiled: Compiled, params: Params) -> dict[str, Any]:
    """The driver's parameters: each value through its type's processor (JSON, UTC datetimes)."""
    out = {}
    for name, processor in compiled.binds.items():
        value = params[name] if name in params else compiled.defaults[name]
        out[name] = processor(value) if processor is not None else value
    return out
