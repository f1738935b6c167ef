"""The breaker board: every process's real breaker state, readable from any other process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import insert, select

from connectors.errors import TransientError
from connectors.exchange import CallContext, NullRecorder
from connectors.gateway import Gateway, SystemPolicy
from hub.breakers import BREAKER_STATES, SqlBreakerBoard
from hub.db.engine import Database
from hub.db.models import utcnow

CONTEXT = CallContext(correlation_id="corr-breakers")


def failing(attempt: int) -> None:
    raise TransientError("HTTP_5XX", "HTTP 503")


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


def gateway(board: SqlBreakerBoard, reset_s: float = 0.3) -> Gateway:
    policy = SystemPolicy(max_attempts=1, breaker_failures=2, breaker_reset_s=reset_s)
    return Gateway("ged", policy, NullRecorder(), breaker_listener=board)


def test_open_then_probe_due_then_closed_as_another_process_reads_it(db) -> None:
    worker, shell = SqlBreakerBoard(db), SqlBreakerBoard(db)
    calls = gateway(worker)
    assert shell.summary("ged").state == "closed"
    for _ in range(2):
        with pytest.raises(TransientError):
            calls.call("Health", {}, CONTEXT, failing)
    summary = shell.summary("ged")
    assert summary.state == "open" and summary.processes[0].consecutive_failures == 2
    assert summary.detail.startswith("open in 1 of 1 process(es)")
    time.sleep(0.35)
    assert shell.summary("ged").state == "half_open"  # the next call would probe
    calls.call("Health", {}, CONTEXT, lambda attempt: {"status": "ok"})  # the probe succeeds
    assert shell.summary("ged").state == "closed"


def test_the_worst_process_wins_and_a_closed_process_forgets_its_rows(db) -> None:
    healthy, broken = SqlBreakerBoard(db), SqlBreakerBoard(db)
    gateway(healthy).call("Health", {}, CONTEXT, lambda attempt: {})
    calls = gateway(broken, reset_s=60)
    for _ in range(2):
        with pytest.raises(TransientError):
            calls.call("Health", {}, CONTEXT, failing)
    assert healthy.summary("ged").state == "open"
    broken.forget()
    assert healthy.summary("ged").state == "closed"


def test_rows_of_a_dead_process_on_this_host_are_pruned(db) -> None:
    board = SqlBreakerBoard(db)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    row = {
        "system": "ged",
        "process": f"{board.host}:{dead.stdout.strip()}:cafe",
        "state": "open",
        "changed_at": utcnow(),
        "probe_at": utcnow(),
        "consecutive_failures": 5,
        "opened_count": 1,
    }
    with db.connection() as connection:
        connection.execute(insert(BREAKER_STATES), row)
    assert board.summary("ged").state == "closed"
    with db.connection() as connection:
        assert connection.execute(select(BREAKER_STATES)).all() == []


def test_a_failing_board_never_fails_the_call(db) -> None:
    class Broken:
        def breaker_changed(self, change) -> None:
            raise RuntimeError("database down")

    policy = SystemPolicy(max_attempts=1, breaker_failures=1, breaker_reset_s=60)
    calls = Gateway("ged", policy, NullRecorder(), breaker_listener=Broken())
    with pytest.raises(TransientError):
        calls.call("Health", {}, CONTEXT, failing)
    assert calls.breaker_state == "open"
