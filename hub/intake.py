"""Accepting a request: validate it, then record it durably in one transaction.

The request row (status ``received``), its outbox message, the first timeline event and the
journal entry of the inbound exchange are committed together or not at all: once the portal has
its ``202``, the request cannot be lost, and the journal cannot miss it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connectors.exchange import CallContext, digest
from hub.auth import Principal
from hub.db.models import OutboxMessage, Request, RequestEvent
from hub.journal import inbound_entry
from hub.runtime import Hub
from master_data.identity import CitizenIdentity
from master_data.reference import citizen_reference


class RequestBody(BaseModel):
    """What the portal posts to ``/v1/requests``."""

    model_config = ConfigDict(extra="forbid")
    flow: str = Field(description="the démarche, e.g. birth-certificate", examples=["birth-certificate"])
    citizen: CitizenIdentity
    data: dict[str, Any] = Field(default_factory=dict, description="validated by the flow's input schema")


class IntakeError(Exception):
    status = 422
    code = "invalid_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


class UnknownFlow(IntakeError):
    status, code = 404, "unknown_flow"


class InputInvalid(IntakeError):
    status, code = 422, "validation_failed"


class IdempotencyKeyReused(IntakeError):
    status, code = 422, "idempotency_key_reused"


@dataclass(frozen=True)
class Accepted:
    request_id: str
    flow: str
    status: str
    created: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "flow": self.flow,
            "status": self.status,
            "status_url": f"/v1/requests/{self.request_id}",
        }


def journal_rejection(hub: Hub, principal: Principal, raw: bytes, error: IntakeError, started: float) -> None:
    """Journal a refused inbound call too: the auditor sees what was attempted, not only what passed."""
    context = CallContext(correlation_id=str(uuid.uuid4()), client=principal.name)
    with hub.db.transaction() as session:
        session.add(
            inbound_entry(
                context=context,
                operation="POST /v1/requests",
                outcome="rejected",
                latency_ms=(time.perf_counter() - started) * 1000,
                payload_digest=digest(raw),
                error_code=error.code,
            )
        )
    hub.metrics.exchanges.labels("inbound", "hub", "rejected").inc()


def submit(
    hub: Hub, principal: Principal, body: RequestBody, idempotency_key: str | None, started: float
) -> Accepted:
    """Record an accepted request durably; raise an :class:`IntakeError` for bad input."""
    flow = hub.flows.get(body.flow)
    if flow is None:
        raise UnknownFlow(f"no flow named {body.flow!r}", {"known_flows": sorted(hub.flows)})
    errors = flow.input_errors(body.data)
    if errors:
        raise InputInvalid("the request data does not match the flow's input schema", errors)
    stored = body.model_dump(mode="json")
    body_digest = digest(stored)
    purpose = hub.config.purposes[flow.spec.purpose]
    request_id = str(uuid.uuid4())
    context = CallContext(
        correlation_id=request_id,
        request_id=request_id,
        client=principal.name,
        purpose=flow.spec.purpose,
        legal_basis=purpose.legal_basis,
        citizen_ref=citizen_reference(body.citizen, hub.pseudonym_key),
    )
    try:
        with hub.db.transaction() as session:
            if idempotency_key is not None:
                existing = session.scalar(
                    select(Request).where(
                        Request.client == principal.name, Request.idempotency_key == idempotency_key
                    )
                )
                if existing is not None:
                    return _replay(existing, body_digest)
            session.add(
                Request(
                    id=request_id,
                    flow=flow.name,
                    client=principal.name,
                    idempotency_key=idempotency_key,
                    body_digest=body_digest,
                    body=stored,
                    status="received",
                    citizen_ref=context.citizen_ref,
                    correlation_id=context.correlation_id,
                    context={},
                )
            )
            session.add(OutboxMessage(request_id=request_id))
            session.add(RequestEvent(request_id=request_id, step="received", outcome="ok"))
            session.add(
                inbound_entry(
                    context=context,
                    operation=f"POST /v1/requests ({flow.name})",
                    outcome="accepted",
                    latency_ms=(time.perf_counter() - started) * 1000,
                    payload_digest=body_digest,
                )
            )
    except IntegrityError:
        # Two identical POSTs raced past the SELECT (PostgreSQL): the loser answers like a replay.
        with hub.db.sessions() as session:
            existing = session.scalar(
                select(Request).where(
                    Request.client == principal.name, Request.idempotency_key == idempotency_key
                )
            )
            if existing is None:
                raise
            return _replay(existing, body_digest)
    hub.metrics.exchanges.labels("inbound", "hub", "accepted").inc()
    hub.wake_workers()
    return Accepted(request_id, flow.name, "received", created=True)


def _replay(existing: Request, body_digest: str) -> Accepted:
    if existing.body_digest != body_digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different body",
            {"request_id": existing.id},
        )
    # The same answer as the first time: the request as it was accepted (its status URL says more).
    return Accepted(existing.id, existing.flow, "received", created=False)
