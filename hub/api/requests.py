"""``/v1/requests``: the portal files démarches and follows them."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

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
# The body is read and validated by hand (auth first, size limit, typed errors), so its schema is
# declared here; its nested models go to the document's components, where RequestBody itself is
# one variant per loaded flow (see hub.api.app and hub.api.openapi).
REQUEST_BODY_SCHEMA = RequestBody.model_json_schema(ref_template="#/components/schemas/{model}")

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
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class RequestAccepted(BaseModel):
    """The answer to an accepted request (and to a replay of it with the same Idempotency-Key)."""

    id: str
    flow: str
    status: str = Field(description="received: recorded, a worker will run its flow")
    status_url: str = Field(description="GET it to follow the request (also in the Location header)")


class TimelineEvent(BaseModel):
    step: str
    at: Timestamp
    outcome: str
    detail: str | None


class RequestFailure(BaseModel):
    code: str = Field(description="the back-end's or the hub's error code")
    message: str | None


class RequestStatus(BaseModel):
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
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RequestBody"}}},
        }
    },
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
        raw = await _read_body(request, hub.config.api.max_body_bytes)
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
    """The body as a request: JSON declared and well formed (else 415, 400), valid (else 422)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, 5,000-digit numbers, nesting
        readable = isinstance(exc, (json.JSONDecodeError, _NotJsonConstant))
        reason = str(exc) if readable else type(exc).__name__
        raise ApiError(400, "malformed_json", f"the body is not acceptable JSON: {reason}") from None
    try:
        return RequestBody.model_validate(document)
    except ValidationError as exc:
        raise invalid_body(request.app.state.hub, document, validation_details(list(exc.errors()))) from None


class _NotJsonConstant(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, JSON (RFC 8259) has no such values."""


def _refuse_constant(name: str) -> Any:
    # Accepted, NaN would pass a JSON Schema's bounds (every comparison with it is false) and then
    # be refused by PostgreSQL's json column: a 202-then-503 forever instead of a clear 400.
    raise _NotJsonConstant(f"{name} is not a JSON value (RFC 8259 has no NaN or Infinity)")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.get(
    "/{request_id}",
    summary="A request's status and timeline",
    response_model=RequestStatus,
    responses=GET_ERRORS,
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
