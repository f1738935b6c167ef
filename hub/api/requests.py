"""``/v1/requests``: the portal files démarches and follows them."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hub.api.answers import Answer, Timestamp
from hub.api.body import documented, parse_json, read_body
from hub.api.errors import ApiError, validation_details
from hub.api.openapi import AUTHENTICATED, error_responses
from hub.api.security import require_any
from hub.api.threads import in_db_thread
from hub.auth import Principal
from hub.db.models import Request as RequestRow
from hub.flows import STATUSES
from hub.group_commit import Unavailable
from hub.intake import IntakeError, RequestBody, invalid_body, journal_refused, journal_replayed, prepare

router = APIRouter(prefix="/v1/requests", tags=["requests"])
OPERATION = "POST /v1/requests"
# The body is read and validated by hand (every refusal is journaled), so it is documented here;
# in the document, RequestBody is then one variant per loaded flow (see hub.api.openapi).
REQUEST_BODY_DOC = documented(RequestBody)

POST_ERRORS = error_responses(
    *AUTHENTICATED,
    "malformed_json",
    "flow_not_requestable",
    "unknown_flow",
    "payload_too_large",
    "unsupported_media_type",
    "validation_failed",
    "idempotency_key_reused",
    unavailable="not recorded now (database failed, shutting down): retry with the same Idempotency-Key",
)
GET_ERRORS = error_responses(
    *AUTHENTICATED,
    "invalid_characters",
    not_found="no such request for this client (another client's is not disclosed)",
)


class RequestAccepted(Answer):
    """The answer to an accepted request (and to a replay of it with the same Idempotency-Key)."""

    id: str
    flow: str
    status: str = Field(description="received: recorded, a worker will run its flow")
    status_url: str = Field(description="GET it to follow the request (also in the Location header)")


class TimelineEvent(Answer):
    step: str
    at: Timestamp
    outcome: str
    detail: str | None


class RequestFailure(Answer):
    code: str = Field(description="the back-end's or the hub's error code")
    message: str | None


class RequestStatus(Answer):
    """A request's status and timeline."""

    id: str
    flow: str
    status: str = Field(json_schema_extra={"enum": list(STATUSES)})
    client: str
    created_at: Timestamp
    updated_at: Timestamp
    completed_at: Timestamp | None
    target_system: str | None
    result: dict[str, Any] = Field(description="what the flow's steps saved (save_as), by name")
    error: RequestFailure | None = Field(description="why it was rejected or failed; null otherwise")
    timeline: list[TimelineEvent]


@router.post(
    "",
    status_code=202,
    summary="File a request (démarche) for a citizen",
    response_model=RequestAccepted,
    responses={
        202: {
            "description": "Accepted: recorded with its outbox message and journal row",
            "headers": {
                "Location": {"description": "the status URL", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "true when the Idempotency-Key answered an earlier request",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
        **POST_ERRORS,
    },
    openapi_extra=REQUEST_BODY_DOC,
)
async def post_request(
    request: Request,
    principal: Annotated[Principal, Depends(require_any("portal"))],
    idempotency_key: Annotated[str | None, Header(max_length=200, description="retry-safe key")] = None,
) -> JSONResponse:
    started = time.perf_counter()
    hub = request.app.state.hub
    if idempotency_key is not None and not idempotency_key.strip():
        # An empty header is a client that has no key to give, not the key "": taken as one, every
        # such POST of the client would meet its first (a replay, or idempotency_key_reused).
        idempotency_key = None
    raw = b""  # an oversized body is refused unread
    try:
        raw = await read_body(request, hub.config.api.max_body_bytes)
        body = _parse(request, raw)
        prepared = prepare(hub, principal, body, idempotency_key, started)
        accepted = await request.app.state.committer.record(prepared)
    except Unavailable as exc:
        raise ApiError(503, "unavailable", str(exc), headers={"Retry-After": "5"}) from None
    except (ApiError, IntakeError) as exc:
        refused = (
            exc if isinstance(exc, ApiError) else ApiError(exc.status, exc.code, exc.message, exc.details)
        )
        # Every refusal of a known client is journaled, whatever its reason: the auditor sees what
        # was attempted, not only what passed, and about whom when that is known.
        concerned = exc.concerned if isinstance(exc, IntakeError) else None
        await in_db_thread(
            request, journal_refused, hub, principal.name, OPERATION, refused.code, raw, started, concerned
        )
        raise refused from None
    headers = {"Location": f"/v1/requests/{accepted.request_id}"}
    if not accepted.created:
        headers["Idempotent-Replayed"] = "true"
        await in_db_thread(request, journal_replayed, hub, prepared, accepted.request_id)
    return JSONResponse(accepted.as_json(), status_code=202, headers=headers)


def _parse(request: Request, raw: bytes) -> RequestBody:
    """The body as a request: JSON (:func:`hub.api.body.parse_json`), valid (else 422, journaled)."""
    document = parse_json(request, raw)
    try:
        return RequestBody.model_validate(document)
    except ValidationError as exc:
        raise invalid_body(request.app.state.hub, document, validation_details(list(exc.errors()))) from None


@router.get(
    "/{request_id}",
    summary="A request's status and timeline",
    response_model=RequestStatus,
    responses={200: {"description": "The request as it stands, and every step it took"}, **GET_ERRORS},
)
def get_request(
    request_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_any("portal", "requests:read_all"))],
) -> dict[str, Any]:
    hub = request.app.state.hub
    with hub.db.sessions() as session:
        row = session.scalar(
            select(RequestRow).where(RequestRow.id == request_id).options(selectinload(RequestRow.events))
        )
        # Another client's request answers like a missing one: its existence is not disclosed.
        if row is None or (row.client != principal.name and not principal.has("requests:read_all")):
            raise ApiError(404, "not_found", f"no request {request_id!r} for this client")
        return {
            "id": row.id,
            "flow": row.flow,
            "status": row.status,
            "client": row.client,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "completed_at": row.completed_at.isoformat() if row.completed_at else None,
            "target_system": row.target_system,
            "result": row.context,
            "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
            "timeline": [
                {"step": e.step, "at": e.at.isoformat(), "outcome": e.outcome, "detail": e.detail}
                for e in row.events
            ],
        }
