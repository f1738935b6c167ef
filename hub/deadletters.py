"""Dead letters: requests whose flow stopped on a permanent error or exhausted retries.

They stay visible (``hub dead-letters list``, ``hub_dead_letters`` in /metrics) with their cause,
and an operator replays them once the cause is fixed (a mapping corrected, a back-end record
created): the flow resumes at the step that failed, with a fresh retry budget. A replay is an
inbound exchange like any other and is journaled, with the operator's name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from connectors.exchange import digest
from hub.db.models import EVENTS, JOURNAL, OUTBOX, REQUESTS, utcnow
from hub.journal import inbound_row
from hub.runtime import Hub


@dataclass(frozen=True)
class DeadLetter:
    request_id: str
    flow: str
    step: int
    error: str | None
    failed_at: datetime


class NotDead(LookupError):
    pass


def list_dead(hub: Hub, limit: int = 100) -> list[DeadLetter]:
    with hub.db.sessions() as session:
        rows = session.execute(
            select(
                OUTBOX.c.request_id,
                REQUESTS.c.flow,
                OUTBOX.c.step,
                OUTBOX.c.last_error,
                REQUESTS.c.updated_at,
            )
            .join(REQUESTS, REQUESTS.c.id == OUTBOX.c.request_id)
            .where(OUTBOX.c.state == "dead")
            .order_by(REQUESTS.c.updated_at)
            .limit(limit)
        ).all()
    return [DeadLetter(*row) for row in rows]


def replay(hub: Hub, request_id: str, operator: str) -> None:
    """Put a dead-lettered request back in the queue at its failed step; journal who did it."""
    started = time.perf_counter()
    now = utcnow()
    with hub.db.connection() as connection:
        revived = connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.request_id == request_id, OUTBOX.c.state == "dead")
            .values(
                state="pending",
                attempts=0,
                first_failure_at=None,
                available_at=now,
                lease_until=None,
                claimed_by=None,
            )
            .returning(OUTBOX.c.step)
        ).first()
        if revived is None:
            raise NotDead(f"request {request_id!r} is not dead-lettered")
        request = connection.execute(
            update(REQUESTS)
            .where(REQUESTS.c.id == request_id)
            .values(
                status="processing", error_code=None, error_message=None, completed_at=None, updated_at=now
            )
            .returning(
                REQUESTS.c.correlation_id, REQUESTS.c.citizen_ref, REQUESTS.c.golden_id, REQUESTS.c.flow
            )
        ).one()
        connection.execute(
            insert(EVENTS),
            {
                "request_id": request_id,
                "at": now,
                "step": "replay",
                "outcome": "ok",
                "detail": f"replayed by {operator} from step {revived.step}",
            },
        )
        context = hub.request_context(
            request_id=request_id,
            flow_name=request.flow,
            correlation_id=request.correlation_id,
            client=operator,
            citizen_ref=request.citizen_ref,
            golden_id=request.golden_id,
        )
        connection.execute(
            insert(JOURNAL),
            inbound_row(
                key=hub.journal_key,
                context=context,
                operation="replay dead letter",
                outcome="accepted",
                latency_ms=(time.perf_counter() - started) * 1000,
                payload_digest=digest({"request_id": request_id, "step": revived.step}, hub.digest_key),
            ),
        )
    hub.wake_workers()
