"""The outbox: durable work items claimed by workers under a lease.

A claim stamps the message with a fresh token and a lease deadline. Every later write about the
message checks the token, so a worker that stalled past its lease (and whose message another
worker reclaimed) cannot overwrite the newer progress: processing is at-least-once, and effects
at back-ends are made once by idempotency keys.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, and_, bindparam, or_, select, update

from hub.db.engine import Database
from hub.db.models import OUTBOX, utcnow
from hub.db.prebuilt import direct_update, update_params


@dataclass(frozen=True)
class Claim:
    message_id: int
    request_id: str
    step: int
    attempts: int
    token: str
    first_failure_at: datetime | None
    leased_until: float  # time.monotonic() by which the lease surely still holds
    # The token of an earlier claim that never released the message (its worker died or lost its
    # database mid-flow): the call at the checkpointed step may have left, and its end is not
    # journaled (it would have been, with the checkpoint moving past it): the runner reports it.
    interrupted: str | None = None
    # The request's row, when read with the other claims of its batch (hub.runner.FlowRunner.read),
    # and when (time.monotonic()): a run that starts much later reads it again.
    request: Any = None
    read_at: float = 0.0


def claim(db: Database, worker: str, limit: int, lease_s: float) -> list[Claim]:
    """Take up to ``limit`` ready messages in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL:
    concurrent workers skip each other's rows instead of waiting)."""
    now = utcnow()
    leased_until = time.monotonic() + lease_s  # taken before the claim: never later than the real one
    token = f"{worker}/{uuid.uuid4().hex[:12]}"
    params = {"now": now, "lease_until": now + timedelta(seconds=lease_s), "token": token}
    rows = db.write(
        lambda connection: connection.execute(_claim_statement(limit), params).all(), single_statement=True
    )
    return [
        Claim(
            row.id,
            row.request_id,
            row.step,
            row.attempts,
            token,
            row.first_failure_at,
            leased_until,
            row.interrupted_claim,
        )
        for row in rows
    ]


def extend(db: Database, claim: Claim, lease_s: float) -> bool:
    """Keep a long-running claim: push its lease further, if it is still this claim's."""
    fence = {"id": claim.message_id, "claimed_by": claim.token}
    lease = {"lease_until": utcnow() + timedelta(seconds=lease_s)}
    statement = direct_update(OUTBOX, tuple(fence), tuple(lease))
    return db.write(
        lambda connection: statement.execute(connection, update_params(fence, lease)).rowcount == 1,
        single_statement=True,
    )


def unleased(now: Any) -> ColumnElement[bool]:
    """No worker holds the message: never claimed, or its lease ran out before ``now``."""
    return or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until < now)


def ready(now: Any) -> ColumnElement[bool]:
    """A pending message a worker may claim at ``now`` (a value or a bound parameter): due, and
    unleased. What the claim takes and what ``hub_queue_depth`` counts."""
    return and_(OUTBOX.c.state == "pending", OUTBOX.c.available_at <= now, unleased(now))


@functools.cache
def _claim_statement(limit: int) -> Update:
    """Built once per batch size; binds ``now``, ``lease_until`` and ``token``."""
    now = bindparam("now", type_=OUTBOX.c.available_at.type)
    ready_ids = (
        select(OUTBOX.c.id)
        .where(ready(now))
        .order_by(OUTBOX.c.available_at, OUTBOX.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ready_ids))
        # SET reads the row as it was: a claim never released leaves its token for the next one
        .values(
            lease_until=bindparam("lease_until"),
            claimed_by=bindparam("token"),
            interrupted_claim=OUTBOX.c.claimed_by,
        )
        .returning(
            OUTBOX.c.id,
            OUTBOX.c.request_id,
            OUTBOX.c.step,
            OUTBOX.c.attempts,
            OUTBOX.c.first_failure_at,
            OUTBOX.c.interrupted_claim,
        )
    )
