"""The outbox: durable work items claimed by workers under a lease.

A claim stamps the message with a fresh token and a lease deadline. Every later write about the
message checks the token, so a worker that stalled past its lease (and whose message another
worker reclaimed) cannot overwrite the newer progress: processing is at-least-once, and effects
at back-ends are made once by idempotency keys.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hub.db.engine import Database
from hub.db.models import OutboxMessage, utcnow


@dataclass(frozen=True)
class Claim:
    message_id: int
    request_id: str
    step: int
    attempts: int
    token: str
    first_failure_at: datetime | None


def claim(db: Database, worker: str, limit: int, lease_s: float) -> list[Claim]:
    """Take up to ``limit`` ready messages (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    now = utcnow()
    with db.transaction() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.state == "pending",
                OutboxMessage.available_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            )
            .order_by(OutboxMessage.available_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        claims = []
        for row in rows:
            token = f"{worker}/{uuid.uuid4().hex[:12]}"
            row.lease_until = now + timedelta(seconds=lease_s)
            row.claimed_by = token
            claims.append(Claim(row.id, row.request_id, row.step, row.attempts, token, row.first_failure_at))
        return claims


def still_mine(session: Session, claim: Claim) -> OutboxMessage | None:
    """The message row locked for update if this claim still holds it, else ``None``."""
    return session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.id == claim.message_id, OutboxMessage.claimed_by == claim.token)
        .with_for_update()
    )


def extend(db: Database, claim: Claim, lease_s: float) -> bool:
    with db.transaction() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == claim.message_id, OutboxMessage.claimed_by == claim.token)
            .values(lease_until=utcnow() + timedelta(seconds=lease_s))
        )
        return result.rowcount == 1
