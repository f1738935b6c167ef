"""Checkpoints are fenced by the claim token, and the worker's group commit isolates a bad unit."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from hub.auth import Principal
from hub.checkpoint import Checkpoint, save_checkpoint
from hub.db.batched import BatchedWriter
from hub.db.models import EVENTS, JOURNAL, OUTBOX, REQUESTS, utcnow
from hub.intake import RequestBody, submit
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
