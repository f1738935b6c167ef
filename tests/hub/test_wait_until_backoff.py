"""A démarche waiting for its back-end is asked less and less often (journal rows, back-end load)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from hub.db.models import OUTBOX, REQUESTS, utcnow
from hub.worker import Worker
from tests.hub.test_checkpoint import filed


def next_poll_in_s(hub, request_id: str) -> float:
    with hub.db.reading() as connection:
        at = connection.execute(
            select(OUTBOX.c.available_at).where(OUTBOX.c.request_id == request_id)
        ).scalar()
    at = at if at.tzinfo else at.replace(tzinfo=utcnow().tzinfo)
    return (at - utcnow()).total_seconds()


def test_a_registry_slow_to_issue_is_polled_at_a_growing_interval(hub, sandbox, monkeypatch):
    monkeypatch.setattr(sandbox.states["etat_civil"], "issue_delay_s", 3600.0)
    request_id = filed(hub)
    worker = Worker(hub, name="test")
    worker.run_once()  # files the act request, polls once: not issued yet
    assert 0 < next_poll_in_s(hub, request_id) <= 0.5  # the first interval: every_s

    # An hour later (as if filed an hour ago), the next poll comes at the longest interval.
    with hub.db.connection() as connection:
        connection.execute(
            update(REQUESTS)
            .where(REQUESTS.c.id == request_id)
            .values(created_at=utcnow() - timedelta(hours=1))
        )
        connection.execute(
            update(OUTBOX).where(OUTBOX.c.request_id == request_id).values(available_at=utcnow())
        )
    worker.run_once()
    assert 850 < next_poll_in_s(hub, request_id) <= 900
    with hub.db.reading() as connection:
        status = connection.execute(select(REQUESTS.c.status).where(REQUESTS.c.id == request_id)).scalar()
    assert status == "submitted"
