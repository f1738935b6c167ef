"""The circuit breakers of every hub process, on the hub's database, for ``hub systems status``.

A breaker lives in the memory of the process that calls the system (each ``hub serve`` or
``hub worker`` process has its own), so neither the journal (which only shows failures, not the
decision they led to) nor one process's ``/metrics`` can tell an operator whether calls are being
refused right now. Each gateway therefore reports its breaker's state changes (open, half-open,
closed: rare events, never on the path of a call that succeeds with the circuit closed) to this
board: one row per system and process, table ``connector_breaker_states`` (migration
``0004_connectors_breaker_states``). ``hub systems status`` reads it from any shell.

A process removes its rows when it closes; rows of a process that died on this host are removed
the next time a board on this host reads or starts. A process that died on another host leaves
its last row, shown with its age (an open circuit there reads as ``half_open`` once its probe
time has passed, which is what its next call would have done).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Integer, MetaData, String, Table, and_, delete, insert, select

from connectors.gateway import BreakerChange, BreakerState
from hub.db.engine import Database
from hub.db.models import UTCDateTime, utcnow

log = logging.getLogger("hub.breakers")

BREAKER_STATES = Table(
    "connector_breaker_states",
    MetaData(),
    Column("system", String(64), primary_key=True),
    Column("process", String(160), primary_key=True),  # host:pid:token
    Column("state", String(16), nullable=False),
    Column("changed_at", UTCDateTime(timezone=True), nullable=False),
    Column("probe_at", UTCDateTime(timezone=True), nullable=True),  # open: when a probe may go
    Column("consecutive_failures", Integer, nullable=False),
    Column("opened_count", Integer, nullable=False),
)


@dataclass(frozen=True)
class ProcessBreaker:
    """One process's breaker for one system, as last reported."""

    process: str
    state: BreakerState  # as of now: an open circuit past its probe time reads half_open
    changed_at: datetime
    probe_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True)
class BreakerSummary:
    """What ``hub systems status`` shows: the worst state among processes, and where."""

    state: BreakerState
    processes: list[ProcessBreaker]

    @property
    def detail(self) -> str:
        troubled = [p for p in self.processes if p.state != "closed"]
        if not troubled:
            return "closed"
        first = troubled[0]
        since = f"since {first.changed_at.astimezone(UTC):%H:%M:%S}"
        probe = f", probe at {first.probe_at.astimezone(UTC):%H:%M:%S}" if first.state == "open" else ""
        return f"{self.state} in {len(troubled)} of {len(self.processes)} process(es) ({since}{probe} UTC)"


_RANK: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}


class SqlBreakerBoard:
    """:class:`connectors.gateway.BreakerListener` writing to ``connector_breaker_states``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.host = socket.gethostname()[:64]
        self._token = secrets.token_hex(4)  # two hubs in one process (tests, CLI) stay apart

    @property
    def process(self) -> str:
        # The pid is read at each write: ``hub serve --processes N`` forks after the hub is built.
        return f"{self.host}:{os.getpid()}:{self._token}"

    def breaker_changed(self, change: BreakerChange) -> None:
        now = utcnow()
        probe_at = now + timedelta(seconds=change.retry_after_s) if change.retry_after_s is not None else None
        key = and_(BREAKER_STATES.c.system == change.system, BREAKER_STATES.c.process == self.process)
        try:
            with self.db.connection() as connection:
                connection.execute(delete(BREAKER_STATES).where(key))
                connection.execute(
                    insert(BREAKER_STATES),
                    {
                        "system": change.system,
                        "process": self.process,
                        "state": change.state,
                        "changed_at": now,
                        "probe_at": probe_at,
                        "consecutive_failures": change.consecutive_failures,
                        "opened_count": change.opened_count,
                    },
                )
        except Exception:  # the database's trouble must not fail the call that changed the state
            log.exception("could not record the %s breaker's state %s", change.system, change.state)

    def forget(self) -> None:
        """This process's rows: its breakers end with it."""
        with self.db.connection() as connection:
            connection.execute(delete(BREAKER_STATES).where(BREAKER_STATES.c.process == self.process))

    def prune_dead_local(self) -> None:
        """Remove rows of processes of this host that no longer run. Read first, outside any write
        transaction: a status query must not wait for (on SQLite, queue behind) the writers when,
        as nearly always, there is nothing to remove."""
        with self.db.reading() as connection:
            processes = connection.scalars(
                select(BREAKER_STATES.c.process).where(BREAKER_STATES.c.process.like(f"{self.host}:%"))
            ).all()
        dead = [p for p in set(processes) if not _alive(p)]
        if dead:
            with self.db.connection() as connection:
                connection.execute(delete(BREAKER_STATES).where(BREAKER_STATES.c.process.in_(dead)))

    def summary(self, system: str) -> BreakerSummary:
        """The worst state among the processes' breakers for ``system`` (closed when none reported)."""
        self.prune_dead_local()
        now = utcnow()
        with self.db.reading() as connection:
            rows = connection.execute(
                select(BREAKER_STATES)
                .where(BREAKER_STATES.c.system == system)
                .order_by(BREAKER_STATES.c.changed_at.desc())
            ).all()
        processes = []
        for row in rows:
            state = row.state
            if state == "open" and row.probe_at is not None and row.probe_at <= now:
                state = "half_open"
            processes.append(
                ProcessBreaker(row.process, state, row.changed_at, row.probe_at, row.consecutive_failures)
            )
        processes.sort(key=lambda p: -_RANK[p.state])
        worst: BreakerState = processes[0].state if processes else "closed"
        return BreakerSummary(worst, processes)


def _alive(process: str) -> bool:
    try:
        pid = int(process.split(":")[1])
    except (IndexError, ValueError):
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
