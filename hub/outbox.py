"""The outbox: durable work items claimed by workers under a lease.

A claim stamps the message with a fresh token and a lease deadline. Every later write about the
message checks the token, so a worker that stalled past its lease (and whose message another
worker reclaimed) cannot overwrite the newer progress: processing is at-least-once, and effects
at back-ends are made once by idempotency keys.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from hub.db.engine import Database
from hub.db.models import OUTBOX, utcnow


@dataclass(frozen=True)
class Claim:
    message_id: int
    request_id: str
    step: int
    attempts: int
    token: str
    first_failure_at: datetime | None
    leased_until: float  # time.monotonic() by which the lease surely still holds


def claim(db: Database, worker: str, limit: int, lease_s: float) -> list[Claim]:
    """Take up to ``limit`` ready messages in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL:
    concurrent workers skip each other's rows instead of waiting)."""
    now = utcnow()
    leased_until = time.monotonic() + lease_s  # taken before the claim: never later than the real one
    token = f"{worker}/{uuid.uuid4().hex[:12]}"
    ready = (
        select(OUTBOX.c.id)
        .where(
            OUTBOX.c.state == "pending",
            OUTBOX.c.available_at <= now,
            or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until < now),
        )
        .order_by(OUTBOX.c.available_at, OUTBOX.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ready))
        .values(lease_until=now + timedelta(seconds=lease_s), claimed_by=token)
        .returning(
            OUTBOX.c.id, OUTBOX.c.request_id, OUTBOX.c.step, OUTBOX.c.attempts, OUTBOX.c.first_failure_at
        )
    )
    with db.connection() as connection:
        rows = connection.execute(statement).all()
    return [
        Claim(row.id, row.request_id, row.step, row.attempts, token, row.first_failure_at, leased_until)
        for row in rows
    ]


def extend(db: Database, claim: Claim, lease_s: float) -> bool:
    """Keep a long-running claim: push its lease further, if it is still this claim's."""
    with db.connection() as connection:
        result = connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == claim.message_id, OUTBOX.c.claimed_by == claim.token)
            .values(lease_until=utcnow() + timedelta(seconds=lease_s))
        )
        return result.rowcount == 1
