"""Database engines and the unit of work.

SQLite (embedded default) runs with WAL and ``synchronous=FULL`` so an acknowledged request
survives a power cut, and every transaction begins IMMEDIATE: one writer at a time, no
"database is locked" surprises halfway through a unit of work. WAL checkpoints (copying committed
pages back into the database file) run in a background thread of :class:`Database`, not inside
whichever commit crosses SQLite's automatic threshold. PostgreSQL is the production path.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from hub.db.batched import BatchedWriter
from hub.db.writer_turn import WriterTurn

DEFAULT_SQLITE = Path("var/hub.db")
T = TypeVar("T")
# How often the background thread checkpoints the WAL of a SQLite database.
CHECKPOINT_INTERVAL_S = 0.5

log = logging.getLogger(__name__)


def database_url(default_path: Path | None = None) -> str:
    """``HUB_DATABASE_URL`` or the embedded SQLite file under ``var/``."""
    url = os.environ.get("HUB_DATABASE_URL")
    if url:
        return url
    path = default_path or DEFAULT_SQLITE
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class DatabaseUnusable(ValueError):
    """The database URL is not one the hub can use, or the database cannot be reached: said in
    one line an operator can act on (the commands print it and exit 1, never a traceback)."""


# Seconds a PostgreSQL server has to answer a new connection, unless the URL (``?connect_timeout=``)
# or libpq's PGCONNECT_TIMEOUT says otherwise. Without it a host that drops packets holds a command,
# or a worker's next connection, until the OS gives up on TCP (minutes).
CONNECT_TIMEOUT_S = 10

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")
_EXPECTED = "postgresql://user@host:5432/database (or postgres://...) or sqlite:///path/to/hub.db"


def engine_url(url: str) -> str:
    """The SQLAlchemy URL of a database URL as operators write it. ``postgresql://`` and
    ``postgres://`` (what libpq, Heroku and most hosting platforms hand out) both mean PostgreSQL
    through psycopg 3; ``sqlite:///path`` the embedded file. Anything else is
    :class:`DatabaseUnusable`, whose message never shows a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnusable(f"HUB_DATABASE_URL is not a database URL; expected {_EXPECTED}") from None
    scheme = parsed.drivername
    if scheme in _SQLITE_SCHEMES:
        return url
    if scheme not in _POSTGRES_SCHEMES:
        raise DatabaseUnusable(
            f"database URL scheme {scheme!r} is not supported: the hub runs on PostgreSQL or SQLite; "
            f"expected {_EXPECTED}"
        )
    if importlib.util.find_spec("psycopg") is None:
        raise DatabaseUnusable("PostgreSQL needs psycopg 3: pip install 'hub[postgres]'")
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def shown(url: str) -> str:
    """``url`` for a message or a log: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def unusable(url: str, exc: DBAPIError) -> DatabaseUnusable:
    """The driver's first line of why ``url`` cannot be used (refused, no such database...); for a
    server that did not answer in time, which server and how long the hub waited."""
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if reason == "connection timeout expired":  # psycopg's words (its ConnectionTimeout)
        reason = _not_answered(url)
    return DatabaseUnusable(f"cannot use the database {shown(url)}: {reason}")


def _connect_timeout(url: URL) -> str | None:
    """The connect timeout the operator set, if any: the URL's, else libpq's PGCONNECT_TIMEOUT."""
    value = url.query.get("connect_timeout")
    if isinstance(value, tuple):  # given twice: libpq takes the last
        value = value[-1]
    return value or os.environ.get("PGCONNECT_TIMEOUT") or None


def _not_answered(url: str) -> str:
    parsed = make_url(url)
    hosts = parsed.query.get("host")
    if parsed.host:
        server = f"{parsed.host}:{parsed.port or 5432}"
    elif hosts:
        server = ",".join(hosts) if isinstance(hosts, tuple) else hosts
    else:
        server = os.environ.get("PGHOST") or "the local socket"
    value = _connect_timeout(parsed)
    try:
        seconds = int(float(value)) if value is not None else CONNECT_TIMEOUT_S
    except ValueError:  # psycopg refuses such a value before connecting: not reached
        seconds = 0
    if seconds <= 0:  # the operator asked for no limit: psycopg's own (minutes) ended the wait
        return f"the server at {server} did not answer before the driver gave up (connect_timeout={value})"
    if seconds < 2:  # libpq's rule, which psycopg follows: a connect timeout is at least 2 s
        return f"the server at {server} did not answer in 2 s (connect_timeout={value}, libpq's minimum is 2)"
    return f"the server at {server} did not answer in {seconds} s (connect_timeout)"


def make_engine(url: str, *, immediate: bool = True, auto_checkpoint: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; on SQLite, ``immediate`` makes every transaction a writer's, and
    ``auto_checkpoint=False`` leaves WAL checkpoints to someone else (:class:`Checkpointer`)."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _configure_sqlite(engine, immediate=immediate, auto_checkpoint=auto_checkpoint)
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
    if _connect_timeout(make_url(url)) is None:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, *, immediate: bool, auto_checkpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if not auto_checkpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Checkpointer:
    """Checkpoints a SQLite database's WAL from its own thread and connection, so that no
    request's commit pays for it.

    By default SQLite checkpoints inside the commit that makes the WAL exceed 1,000 pages: that
    commit also copies the pages into the database file and fsyncs it (tens of ms, the tail of
    every latency). Here a PASSIVE checkpoint every :data:`CHECKPOINT_INTERVAL_S` copies them while
    writers go on. Durability is unchanged: a commit is durable once in the WAL, fsynced with
    ``synchronous=FULL``.

    The WAL only starts again from its beginning when a write finds every frame checkpointed, which
    a checkpoint racing continuous writes never achieves: the file would grow without end. So once
    the WAL holds :data:`RESTART_PAGES` pages, the checkpointer waits for a moment when this
    process has no writer (``write_turn`` free) and checkpoints the few pages left while holding
    it; the next write then reuses the file. Only past :attr:`FORCE_PAGES` (writers that never
    pause) does it wait for the turn, making one writer wait. When the process stops, the last
    connection to close checkpoints what is left, as SQLite always does."""

    RESTART_PAGES = 1000  # SQLite's own automatic checkpoint threshold
    FORCE_PAGES = 16_000  # 64 MB of 4 KiB pages

    def __init__(self, path: str, write_turn: Any, interval: float | None = None) -> None:
        self._path, self._write_turn = path, write_turn
        self._interval = CHECKPOINT_INTERVAL_S if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        try:
            while not self._stop.wait(self._interval):
                try:
                    self._checkpoint(connection)
                except sqlite3.Error as exc:  # pragma: no cover - e.g. the file was removed
                    log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        # The WAL's length (pages) as of the checkpoint's start: frames appended meanwhile remain.
        _busy, pages, _done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if pages >= self.RESTART_PAGES:
            # A second pass copies what was appended during the first, so that the pass holding
            # the write turn below (which a writer may wait for) has only a few pages left.
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        deadline = time.monotonic() + self._interval
        # Writers that never pause (or those of other processes) would let the WAL grow without
        # end: past FORCE_PAGES, this process's next writer waits for the checkpoint's last pages.
        force = pages >= self.FORCE_PAGES
        while pages >= self.RESTART_PAGES and (force or time.monotonic() < deadline):
            if self._write_turn.acquire(blocking=force):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                finally:
                    self._write_turn.release()
                return
            if self._stop.wait(0.002):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Database:
    """Engines and session factories: :meth:`transaction` is the unit of work (a writer);
    :attr:`sessions` is for reads, which on SQLite's WAL never wait for the writer."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        path = _sqlite_path(url)
        self.engine = make_engine(url, auto_checkpoint=path is None, **engine_kwargs)
        self._writers = sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Reads on PostgreSQL run in autocommit: under READ COMMITTED each statement sees what was
        # committed when it started, in a transaction or not, so the BEGIN and ROLLBACK round trips
        # bought nothing; and psycopg forgets its prepared statements at every ROLLBACK, so the
        # hot statements of the worker and the API were parsed and planned again each time.
        self._read_engine = (
            make_engine(url, immediate=False, auto_checkpoint=False, **engine_kwargs)
            if self.engine.dialect.name == "sqlite"
            else self._autocommit
        )
        self.sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        # SQLite has one writer: the threads of this process, and the other processes writing the
        # same file, take turns here instead of polling SQLite's lock with its sleeping busy handler.
        self._writer_turn = WriterTurn(path) if path is not None else None
        self._write_turn: AbstractContextManager[Any] = nullcontext()  # PostgreSQL: many writers
        if self._writer_turn is not None:
            self._write_turn = self._writer_turn
        elif self.dialect == "sqlite":  # in memory: this process's threads only
            self._write_turn = threading.Lock()
        self._batched = BatchedWriter(self.engine, self._write_turn) if self.dialect == "sqlite" else None
        self._checkpointer = Checkpointer(path, self._write_turn) if path is not None else None

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
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        self._read_engine.dispose()
        if self._writer_turn is not None:
            self._writer_turn.close()


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return path if path and path != ":memory:" else None
