"""The worker tells its database's outage (retry later) from the hub's own defect (dead letter)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from hub.db.models import JOURNAL, OUTBOX, REQUESTS
from hub.outbox import claim
from hub.runner import FlowRunner
from hub.worker import Worker
from tests.hub.test_checkpoint import filed


def outcome(hub, request_id: str) -> tuple:
    with hub.db.reading() as connection:
        status, error_code = connection.execute(
            select(REQUESTS.c.status, REQUESTS.c.error_code).where(REQUESTS.c.id == request_id)
        ).one()
        state = connection.execute(select(OUTBOX.c.state).where(OUTBOX.c.request_id == request_id)).scalar()
    return status, error_code, state


def failing_worker(hub, monkeypatch, error: Exception) -> Worker:
    worker = Worker(hub, name="test")

    def fails(*_args, **_kwargs):
        raise error

    # The first work of a run after reading its request: the citizen's golden id.
    monkeypatch.setattr(worker.runner.citizens, "known_golden_id", fails)
    return worker


def test_an_unavailable_database_leaves_the_request_to_be_claimed_again(hub, monkeypatch):
    request_id = filed(hub)
    lost = OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))
    failing_worker(hub, monkeypatch, lost).run_once()
    # Nothing failed the request: its message stays pending, claimed again when the lease expires.
    assert outcome(hub, request_id) == ("received", None, "pending")


@pytest.mark.parametrize(
    "defect",
    [
        ProgrammingError("SELECT nope", {}, Exception("column nope does not exist")),
        IntegrityError("INSERT ...", {}, Exception("duplicate key value")),
    ],
    ids=["bad-statement", "constraint"],
)
def test_a_statement_defect_dead_letters_the_request_instead_of_retrying_forever(hub, monkeypatch, defect):
    request_id = filed(hub)
    failing_worker(hub, monkeypatch, defect).run_once()
    status, error_code, state = outcome(hub, request_id)
    assert (status, error_code, state) == ("failed", "internal_error", "dead")


def test_the_requests_of_a_claimed_batch_are_read_together_and_a_failed_read_loses_none(hub, monkeypatch):
    """A worker reads the requests of the messages it claimed in one statement; if that read fails,
    each run reads its own request and every message still completes (none left claimed, to pass
    later for interrupted)."""
    request_ids = [filed(hub) for _ in range(3)]
    reads: list[str] = []

    @event.listens_for(Engine, "before_cursor_execute")  # every engine: SQLite reads have their own
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT requests.id"):
            reads.append(statement)

    try:
        assert Worker(hub, name="batch").run_once() == 3
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert len(reads) == 1
    assert {outcome(hub, r) for r in request_ids} == {("completed", None, "done")}

    more = [filed(hub) for _ in range(2)]
    worker = Worker(hub, name="unread")

    def unavailable(claims):
        raise OperationalError("SELECT requests", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(worker.runner, "read", unavailable)
    assert worker.run_once() == 2
    assert {outcome(hub, r) for r in more} == {("completed", None, "done")}


def outbound(hub, request_id: str) -> list[tuple]:
    with hub.db.reading() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(JOURNAL.c.operation, JOURNAL.c.outcome, JOURNAL.c.citizen_ref)
                .where(JOURNAL.c.request_id == request_id, JOURNAL.c.direction == "outbound")
                .order_by(JOURNAL.c.id)
            )
        ]


def test_answers_held_for_a_checkpoint_the_database_lost_are_journaled_on_their_own(hub, monkeypatch):
    """The last checkpoint fails (the database restarted under it): the run is retried later, and
    the calls it made are journaled anyway, not left for the next claim to guess at."""
    from hub import runner as runner_module

    request_id = filed(hub)
    save = runner_module.save_checkpoint

    def lost_at_the_end(db, checkpoint):
        if checkpoint.message.get("state") == "done":
            raise OperationalError("WITH fenced ...", {}, ConnectionError("server closed the connection"))
        return save(db, checkpoint)

    monkeypatch.setattr(runner_module, "save_checkpoint", lost_at_the_end)
    [claimed] = claim(hub.db, "worker-a", 1, lease_s=30)
    assert FlowRunner(hub).process(claimed) == "retry"
    assert [row[:2] for row in outbound(hub, request_id)] == [
        ("RequestActCopy", "ok"),
        ("GetActRequestStatus", "ok"),
    ]


def test_a_journal_row_the_database_refuses_does_not_hold_the_request_forever(hub, monkeypatch, caplog):
    """A defect: the database refuses a held row. The rows go to the log and the request goes on,
    instead of failing every checkpoint (the dead letter's too) and calling again at each lease."""
    from hub import runner as runner_module

    request_id = filed(hub)
    save = runner_module.save_checkpoint

    def refuses_rows(db, checkpoint):
        if checkpoint.journal:
            raise DataError("INSERT INTO journal ...", {}, Exception("value too long"))
        return save(db, checkpoint)

    monkeypatch.setattr(runner_module, "save_checkpoint", refuses_rows)
    [claimed] = claim(hub.db, "worker-a", 1, lease_s=30)
    assert FlowRunner(hub).process(claimed) == "done"
    assert outcome(hub, request_id) == ("completed", None, "done")
    assert "journal rows refused by the database" in caplog.text


def test_a_request_read_with_its_batch_is_read_again_when_its_run_starts_late(hub, monkeypatch):
    """A claimed-ahead message may wait for a slot while a steward reassigns its citizen (an unmerge
    moves requests to the restored golden record): a run that starts late works with the request as
    it is then, not as it was when claimed."""
    from hub import runner as runner_module

    request_id = filed(hub)
    runner = FlowRunner(hub)
    [claimed] = runner.read(claim(hub.db, "worker-a", 1, lease_s=30))
    assert claimed.request is not None and claimed.request.golden_id is None
    hub.db.write(
        lambda connection: connection.execute(
            update(REQUESTS).where(REQUESTS.c.id == request_id).values(golden_id="g-restored")
        )
    )
    monkeypatch.setattr(runner_module, "FRESH_READ_S", 0.0)
    assert runner.process(claimed) == "done"
    assert {row[2] for row in outbound(hub, request_id)} == {"g-restored"}
