"""Checkpoints are fenced by the claim token, and the worker's group commit isolates a bad unit."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from connectors.exchange import CallContext, Exchange
from hub.auth import Principal
from hub.checkpoint import Checkpoint, save_checkpoint
from hub.db.batched import BatchedWriter
from hub.db.models import EVENTS, JOURNAL, OUTBOX, REQUESTS, utcnow
from hub.intake import RequestBody, submit
from hub.journal import seal, verify
from hub.outbox import claim
from tests.conftest import sample

PORTAL = Principal("portal", frozenset({"portal"}))


def filed(hub) -> str:
    body = RequestBody.model_validate(sample("01-lefevre-copie-integrale"))
    return submit(hub, PORTAL, body, None, time.perf_counter()).request_id


def state(hub, request_id: str) -> tuple:
    with hub.db.reading() as connection:
        request = connection.execute(
            select(REQUESTS.c.status, REQUESTS.c.context).where(REQUESTS.c.id == request_id)
        ).one()
        step = connection.execute(select(OUTBOX.c.step).where(OUTBOX.c.request_id == request_id)).scalar()
        events = connection.execute(
            select(EVENTS.c.step, EVENTS.c.outcome, EVENTS.c.detail).where(EVENTS.c.request_id == request_id)
        ).all()
    return request.status, request.context, step, [tuple(e) for e in events]


def checkpoint(hub, claimed, request_id: str) -> bool:
    now = utcnow()
    return save_checkpoint(
        hub.db,
        Checkpoint(
            {"id": claimed.message_id, "claimed_by": claimed.token},
            {"step": 2, "lease_until": now + timedelta(seconds=30)},
            request_id,
            {"status": "submitted", "context": {"act_request": {"number": "EC-1"}}, "updated_at": now},
            [
                {"at": now, "step": "request-copy", "outcome": "ok", "detail": "etat_civil.RequestActCopy"},
                {"at": now, "step": "submitted", "outcome": "ok", "detail": None},
            ],
        ),
    )


def test_a_checkpoint_under_the_current_claim_writes_message_request_and_events(hub):
    request_id = filed(hub)
    [claimed] = claim(hub.db, "worker-a", 1, lease_s=30)
    assert checkpoint(hub, claimed, request_id) is True
    status, context, step, events = state(hub, request_id)
    assert (status, context, step) == ("submitted", {"act_request": {"number": "EC-1"}}, 2)
    assert events[-2:] == [("request-copy", "ok", "etat_civil.RequestActCopy"), ("submitted", "ok", None)]


def test_a_checkpoint_under_a_lost_claim_writes_nothing_at_all(hub):
    request_id = filed(hub)
    [stalled] = claim(hub.db, "stalled", 1, lease_s=0.2)
    time.sleep(0.3)
    [taken_over] = claim(hub.db, "other", 1, lease_s=30)
    assert taken_over.message_id == stalled.message_id
    before = state(hub, request_id)
    assert checkpoint(hub, stalled, request_id) is False
    assert state(hub, request_id) == before  # not the request, not the timeline, not the step


def journal_rows(hub) -> int:
    with hub.db.reading() as connection:
        return connection.execute(select(func.count()).select_from(JOURNAL)).scalar_one()


def row(n: int) -> dict:
    return {
        "at": utcnow(),
        "correlation_id": f"c{n}",
        "direction": "outbound",
        "system": "etat_civil",
        "operation": "Probe",
        "outcome": "ok",
        "attempt": 1,
        "latency_ms": 1.0,
        "payload_digest": "sha256:x",
    }


def test_a_failing_unit_fails_alone_and_leaves_nothing_behind(hub):
    writer = BatchedWriter(hub.db.engine, hub.db._write_turn)
    before = journal_rows(hub)

    def good(n: int):
        return lambda connection: connection.execute(insert(JOURNAL), row(n)) and n

    def bad(connection):
        connection.execute(insert(JOURNAL), row(99))  # written, then the unit fails: undone
        raise ValueError("a defect in the unit")

    batch = [(good(1), Future()), (bad, Future()), (good(2), Future())]
    writer._write(batch)  # one batch, as the writer thread would take them
    assert [f.result() for f in (batch[0][1], batch[2][1])] == [1, 2]
    with pytest.raises(ValueError, match="a defect"):
        batch[1][1].result()
    assert journal_rows(hub) == before + 2


def test_units_from_many_threads_are_all_committed_and_returned_to_their_caller(hub):
    before = journal_rows(hub)

    def unit(n: int) -> int:
        return hub.db.write(lambda connection: connection.execute(insert(JOURNAL), row(n)) and n)

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(unit, range(200))) == list(range(200))
    assert journal_rows(hub) == before + 200


def test_a_unit_may_not_submit_another(hub):
    if hub.db.dialect != "sqlite":
        pytest.skip("PostgreSQL runs each unit in its caller's own transaction (no writer thread)")

    def nested(connection):
        return hub.db.write(lambda inner: 1)

    with pytest.raises(RuntimeError, match="cannot submit another"):
        hub.db.write(nested)


def holding(request_id: str, operation: str) -> tuple[CallContext, list[dict]]:
    """A flow run's call context for ``operation``: the recorder may hold that call's end."""
    held: list[dict] = []
    context = CallContext(
        correlation_id=request_id,
        request_id=request_id,
        client="portal",
        held_rows=held,
        held_operation=operation,
    )
    return context, held


def held_answer(hub, request_id: str, operation: str) -> list[dict]:
    """The journal row of an answered call as a flow's run holds it for its next checkpoint."""
    context, held = holding(request_id, operation)
    answer = Exchange("etat_civil", operation, 1, "ok", 12.345, "sha256:" + "a" * 64, "sha256:" + "b" * 64)
    hub.recorder.record(answer, context)
    return held


def test_a_checkpoint_writes_the_answers_its_run_held_and_they_verify(hub):
    request_id = filed(hub)
    [claimed] = claim(hub.db, "worker-a", 1, lease_s=30)
    held = held_answer(hub, request_id, "RequestActCopy")
    assert len(held) == 1 and journal_rows(hub) == 1  # held, not written: only the intake's row
    now = utcnow()
    point = Checkpoint(
        {"id": claimed.message_id, "claimed_by": claimed.token},
        {"step": 2, "lease_until": now + timedelta(seconds=30)},
        request_id,
        {"status": "submitted", "updated_at": now},
        [],
        held,
    )
    assert save_checkpoint(hub.db, point) is True
    with hub.db.reading() as connection:
        row = connection.execute(
            select(JOURNAL.c.operation, JOURNAL.c.outcome, JOURNAL.c.latency_ms, JOURNAL.c.at).where(
                JOURNAL.c.request_id == request_id, JOURNAL.c.direction == "outbound"
            )
        ).one()
    assert (row.operation, row.outcome, row.latency_ms, row.at) == (
        "RequestActCopy",
        "ok",
        12.345,
        held[0]["at"],
    )
    seal(hub.db, hub.journal_key)
    assert verify(hub.db, hub.journal_key).ok  # the row's MAC holds after its trip through the statement


def test_a_checkpoint_under_a_lost_claim_still_journals_the_calls_that_were_made(hub):
    request_id = filed(hub)
    [stalled] = claim(hub.db, "stalled", 1, lease_s=0.2)
    time.sleep(0.3)
    claim(hub.db, "other", 1, lease_s=30)
    before = state(hub, request_id)
    held = held_answer(hub, request_id, "GetActRequestStatus")
    now = utcnow()
    point = Checkpoint(
        {"id": stalled.message_id, "claimed_by": stalled.token},
        {"step": 3, "lease_until": now + timedelta(seconds=30)},
        request_id,
        {"status": "completed", "updated_at": now},
        [{"at": now, "step": "wait-issued", "outcome": "ok", "detail": None}],
        held,
    )
    assert save_checkpoint(hub.db, point) is False
    assert state(hub, request_id) == before  # the progress is the new claim's to write
    with hub.db.reading() as connection:
        outcomes = connection.execute(
            select(JOURNAL.c.operation, JOURNAL.c.outcome).where(JOURNAL.c.direction == "outbound")
        ).all()
    assert [tuple(o) for o in outcomes] == [("GetActRequestStatus", "ok")]  # the call was made


def test_only_a_call_s_end_waits_for_the_checkpoint(hub):
    """A transient error may be followed by another attempt (a retry that may reach the system):
    its row is written before that attempt leaves, not held."""
    request_id = filed(hub)
    context, held = holding(request_id, "RequestActCopy")
    failed = Exchange("etat_civil", "RequestActCopy", 1, "transient_error", 5.0, "sha256:" + "c" * 64)
    hub.recorder.record(failed, context)
    assert held == [] and journal_rows(hub) == 2


def test_an_adapter_s_own_exchanges_behind_a_step_s_call_are_written_at_once(hub):
    """A status call that lists and reads acknowledgement files makes exchanges under other names;
    only the step's own call waits for the checkpoint: the listing and reads are not lost with it."""
    request_id = filed(hub)
    context, held = holding(request_id, "GetFileStatus")
    listing = Exchange("finances", "PollAcknowledgements", 1, "ok", 3.0, "sha256:" + "d" * 64)
    hub.recorder.record(listing, context)
    assert held == [] and journal_rows(hub) == 2


def test_a_second_exchange_of_the_held_call_writes_both_in_the_order_made(hub):
    """A search that reads page after page: the first page's row is held, the second writes it
    first, then itself; nothing of the call waits any longer."""
    request_id = filed(hub)
    context, held = holding(request_id, "SearchDocuments")
    for page in (1, 2):
        found = Exchange("ged", "SearchDocuments", 1, "ok", float(page), "sha256:" + str(page) * 64)
        hub.recorder.record(found, context)
        assert len(held) == (1 if page == 1 else 0)
    with hub.db.reading() as connection:
        latencies = connection.scalars(
            select(JOURNAL.c.latency_ms).where(JOURNAL.c.direction == "outbound").order_by(JOURNAL.c.id)
        ).all()
    assert latencies == [1.0, 2.0]
