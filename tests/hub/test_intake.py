"""Intake writes the request, outbox message, event and journal row together or not at all."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import hub.intake as intake
from hub.auth import Principal
from hub.db.models import JournalEntry, OutboxMessage, Request, RequestEvent
from hub.intake import IdempotencyKeyReused, RequestBody, submit
from tests.conftest import sample

PORTAL = Principal("portal", frozenset({"portal"}))
# On PostgreSQL the intake talks to psycopg directly (pipeline mode), whose errors are not wrapped.
DATABASE_REFUSALS = (IntegrityError, psycopg.errors.IntegrityError)


def counts(hub) -> dict[str, int]:
    with hub.db.sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Request, OutboxMessage, RequestEvent, JournalEntry)
        }


def body(name: str = "04-santoni-corse") -> RequestBody:
    return RequestBody.model_validate(sample(name))


def test_accepted_request_writes_all_four_rows(hub):
    accepted = submit(hub, PORTAL, body(), "key-1", time.perf_counter())
    assert accepted.created
    assert counts(hub) == {"requests": 1, "outbox": 1, "request_events": 1, "journal": 1}
    with hub.db.sessions() as session:
        entry = session.scalar(select(JournalEntry))
        message = session.scalar(select(OutboxMessage))
    assert entry.request_id == accepted.request_id == message.request_id
    assert message.state == "pending"


def test_a_failing_journal_write_leaves_nothing_behind(hub, monkeypatch):
    original = intake.inbound_row

    def broken_row(**kwargs):
        row = original(**kwargs)
        row["payload_digest"] = None  # NOT NULL: the database refuses the journal row
        return row

    monkeypatch.setattr(intake, "inbound_row", broken_row)
    with pytest.raises(DATABASE_REFUSALS):
        submit(hub, PORTAL, body(), "key-2", time.perf_counter())
    assert counts(hub) == {"requests": 0, "outbox": 0, "request_events": 0, "journal": 0}


def test_duplicate_key_writes_nothing_more_and_other_body_is_refused(hub):
    first = submit(hub, PORTAL, body(), "key-3", time.perf_counter())
    again = submit(hub, PORTAL, body(), "key-3", time.perf_counter())
    assert again.request_id == first.request_id and not again.created
    with pytest.raises(IdempotencyKeyReused):
        submit(hub, PORTAL, body("06-dubois-enfant"), "key-3", time.perf_counter())
    assert counts(hub) == {"requests": 1, "outbox": 1, "request_events": 1, "journal": 1}
