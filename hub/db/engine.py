"""Database engines and the unit of work.

SQLite (embedded default) runs with WAL and ``synchronous=FULL`` so an acknowledged request
survives a power cut, and every transaction begins IMMEDIATE: one writer at a time, no
"database is locked" surprises halfway through a unit of work. PostgreSQL is the production path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from hub.db.batched import BatchedWriter

DEFAULT_SQLITE = Path("var/hub.db")
T = TypeVar("T")


def database_url(default_path: Path | None = None) -> str:
    """``HUB_DATABASE_URL`` or the embedded SQLite file under ``var/``."""
    url = os.environ.get("HUB_DATABASE_URL")
    if url:
        return url
    path = default_path or DEFAULT_SQLITE
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_engine(url: str, *, immediate: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; on SQLite, ``immediate`` makes every transaction a writer's."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _configure_sqlite(engine, immediate=immediate)
        return engine
    # Enough for the API's db_concurrency plus a worker's flows; overflow connections are costly
    # to open (several ms on PostgreSQL), so the steady state must fit in the pool.
    kwargs.setdefault("pool_size", 16)
    kwargs.setdefault("max_overflow", 16)
    # No pre-ping: it is a round trip before every transaction. A connection found dead (server
    # restarted) raises a disconnect error, which invalidates the whole pool: the unit of work
    # fails cleanly (the API answers 503, the worker retries the message) and the next checkout
    # connects afresh.
    kwargs.setdefault("pool_recycle", 3600)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Engines and session factories: :meth:`transaction` is the unit of work (a writer);
    :attr:`sessions` is for reads, which on SQLite's WAL never wait for the writer."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._writers = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = (
            make_engine(url, immediate=False, **engine_kwargs)
            if self.engine.dialect.name == "sqlite"
            else self.engine
        )
        self.sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # SQLite has one writer: threads of this process take turns here, in order, instead of
        # polling the database lock with SQLite's sleeping busy handler (long tail latencies).
        self._write_turn: AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        self._batched = BatchedWriter(self.engine, self._write_turn) if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit everything done in the block together, or nothing at all."""
        with self._write_turn, self._writers() as session, session.begin():
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only session whose queries all see the same committed state (an audit's view)."""
        if self.dialect == "postgresql":
            bind = self.engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with Session(bind=bind, expire_on_commit=False) as session:
                yield session
            return
        with self.sessions() as session:  # SQLite: one read transaction is one snapshot (WAL)
            yield session

    @contextmanager
    def connection(self, *, single_statement: bool = False) -> Iterator[Connection]:
        """A Core connection in one transaction: the unit of work where the ORM would be overhead.

        ``single_statement``: the caller's writes are one statement (atomic by itself), so on
        PostgreSQL it runs in autocommit, saving the BEGIN and COMMIT round trips.
        """
        if single_statement and self.dialect == "postgresql":
            with self._autocommit.connect() as connection:
                yield connection
            return
        with self._write_turn, self.engine.begin() as connection:
            yield connection

    def write(self, unit: Callable[[Connection], T], *, single_statement: bool = False) -> T:
        """Run ``unit`` in a transaction and return its result once committed: for the many small
        writes of the worker's flows.

        On SQLite the units of all threads share transactions (:mod:`hub.db.batched`): one writer
        at a time, so committing together is what lets flows overlap. PostgreSQL runs concurrent
        transactions and already flushes concurrent commits together; funnelling every statement
        through one connection there made the writer thread the bottleneck (46 -> 30 completed/s
        with 16 flows), so each unit runs in its caller's own transaction (in autocommit when it is
        ``single_statement``: no BEGIN and COMMIT round trips)."""
        if self._batched is None:
            with self.connection(single_statement=single_statement) as connection:
                return unit(connection)
        return self._batched.run(unit)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A Core connection for reads (no ORM session): on SQLite's WAL it never waits for the
        writer; nothing it does is committed."""
        with self._read_engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        if self._batched is not None:
            self._batched.close()
        self.engine.dispose()
        self._read_engine.dispose()
