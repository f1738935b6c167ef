"""``/v1/journal``: the exchange journal for auditors and the DPO (scope ``audit``).

``GET /v1/journal`` pages through the rows an auditor selects (a citizen, a request, a system, a
purpose, a client, a period); ``GET /v1/journal/verify`` checks the head's MAC, the hash chain and
the rows' MACs as ``hub audit verify`` does, and ``POST /v1/journal/verify`` also that the journal
still holds the auditor's checkpoints, which ``GET /v1/journal/checkpoint`` signs for them to keep.
Rows hold references and digests, never payloads. Each read is itself journaled — who read the
journal, when, about which citizen — since the journal answers questions about people.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import insert, select

from hub import journal
from hub.api.answers import JournalPage, Verification, typed
from hub.api.body import documented, json_body
from hub.api.errors import ApiError
from hub.api.openapi import AUTHENTICATED, BODY, error_responses
from hub.api.security import require_any
from hub.auth import Principal
from hub.db.master_models import GOLDEN
from hub.db.models import JOURNAL, MAX_ID, storable_time
from hub.journal_checkpoint import MAX_NOTE_CHARS, Checkpoint, CheckpointError, HeadRefused, checkpoint
from hub.journal_search import MAX_LIMIT, Direction, JournalFilter, search
from hub.runtime import Hub

router = APIRouter(prefix="/v1/journal", tags=["journal"])
AUDIT = require_any("audit")
LIST_ERRORS = error_responses(
    *AUTHENTICATED,
    "invalid_characters",
    "validation_failed",
    not_found="citizen names no golden record",
)
VERIFY_ERRORS = error_responses(*AUTHENTICATED)
VERIFY_WITH_CHECKPOINTS_ERRORS = error_responses(*AUTHENTICATED, *BODY, "invalid_checkpoint")
CHECKPOINT_ERRORS = error_responses(*AUTHENTICATED, "journal_head_not_authentic")
VERIFIED = "Verified, intact or not: ok false names the first problem"


# A time the journal's column can compare with: 0001-01-01T00:00+01:00 is a 422, not a 500.
Moment = Annotated[datetime, AfterValidator(storable_time)]


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC, the journal's own time."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _journal_read(
    hub: Hub, client: str, operation: str, citizen: str | None, query: str, outcome: str
) -> None:
    row = hub.call_row(client, operation, outcome, query, citizen_ref=citizen)
    with hub.db.connection(single_statement=True) as connection:
        connection.execute(insert(JOURNAL), row)


@router.get(
    "",
    summary="Journal rows an auditor selects, in journal order",
    response_model=None,
    responses={**typed(JournalPage, "A page of rows, oldest first"), **LIST_ERRORS},
)
def list_entries(
    request: Request,
    principal: Annotated[Principal, Depends(AUDIT)],
    citizen: Annotated[
        str | None,
        Query(max_length=36, description="a golden id: its rows, its merged records' and its requests'"),
    ] = None,
    request_id: Annotated[str | None, Query(max_length=36)] = None,
    correlation_id: Annotated[str | None, Query(max_length=64)] = None,
    client: Annotated[str | None, Query(max_length=64, description="the API client of the exchange")] = None,
    system: Annotated[str | None, Query(max_length=64, description="'hub' for calls into the hub")] = None,
    operation: Annotated[str | None, Query(max_length=100)] = None,
    direction: Annotated[Direction | None, Query()] = None,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[Moment | None, Query(description="from this time (ISO 8601; UTC if no offset)")] = None,
    until: Annotated[Moment | None, Query(description="before this time")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="id of the last row of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    wanted = JournalFilter(
        citizen=citizen,
        request_id=request_id,
        correlation_id=correlation_id,
        client=client,
        system=system,
        operation=operation,
        direction=direction,
        purpose=purpose,
        outcome=outcome,
        since=_utc(since),
        until=_utc(until),
    )
    operation_name = "GET /v1/journal"
    with hub.db.reading() as connection:
        if (
            citizen is not None
            and connection.scalar(select(GOLDEN.c.id).where(GOLDEN.c.id == citizen)) is None
        ):
            _journal_read(hub, principal.name, operation_name, citizen, str(request.url.query), "not_found")
            raise ApiError(404, "not_found", f"no golden record {citizen!r}", {"citizen": citizen})
        page = search(
            connection,
            wanted,
            after=after,
            limit=limit,
            request_system=hub.config.master_data.portal_system,
        )
    _journal_read(hub, principal.name, operation_name, citizen, str(request.url.query), "ok")
    return {"entries": page.entries, "next_after": page.next_after}


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoints: list[Annotated[str, Field(max_length=MAX_NOTE_CHARS)]] = Field(
        default_factory=list,
        max_length=100,
        description="signed checkpoints kept outside the database (GET /v1/journal/checkpoint)",
    )


@router.get(
    "/verify",
    summary="Check the head's MAC, the hash chain and every row's MAC",
    response_model=None,
    responses={**typed(Verification, VERIFIED), **VERIFY_ERRORS},
)
def verify_chain(request: Request, principal: Annotated[Principal, Depends(AUDIT)]) -> dict[str, Any]:
    return _verify(request.app.state.hub, principal, "GET /v1/journal/verify", [])


@router.post(
    "/verify",
    summary="Verify as GET does, and that the journal still holds each checkpoint given",
    response_model=None,
    responses={**typed(Verification, VERIFIED), **VERIFY_WITH_CHECKPOINTS_ERRORS},
    openapi_extra=documented(VerifyBody),
)
def verify_with_checkpoints(
    request: Request,
    principal: Annotated[Principal, Depends(AUDIT)],
    body: Annotated[VerifyBody, json_body(VerifyBody)],
) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    opened = []
    for index, note in enumerate(body.checkpoints):
        try:
            opened.append(hub.checkpoint_signer.open(note))
        except CheckpointError as exc:
            _journal_read(hub, principal.name, "POST /v1/journal/verify", None, "", "invalid_checkpoint")
            raise ApiError(
                422,
                "invalid_checkpoint",
                f"checkpoints[{index}] is not a checkpoint of this journal: {exc}",
                {"index": index, "problem": str(exc)},
            ) from None
    return _verify(hub, principal, "POST /v1/journal/verify", opened)


def _verify(hub: Hub, principal: Principal, operation: str, checkpoints: list[Checkpoint]) -> dict[str, Any]:
    result = journal.verify(hub.db, hub.journal_key, checkpoints)
    _journal_read(hub, principal.name, operation, None, "", "ok" if result.ok else "broken")
    return {**asdict(result), "summary": result.describe()}


@router.get(
    "/checkpoint",
    summary="A signed checkpoint of the journal head (C2SP signed note), to keep outside the hub",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "the signed note"},
        **CHECKPOINT_ERRORS,
    },
    response_class=PlainTextResponse,
)
def get_checkpoint(request: Request, principal: Annotated[Principal, Depends(AUDIT)]) -> PlainTextResponse:
    hub: Hub = request.app.state.hub
    operation = "GET /v1/journal/checkpoint"
    try:
        made = checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key)
    except HeadRefused as exc:
        _journal_read(hub, principal.name, operation, None, "", "journal_head_not_authentic")
        raise ApiError(409, "journal_head_not_authentic", f"no checkpoint signed: {exc}") from None
    _journal_read(hub, principal.name, operation, None, "", "ok")
    return PlainTextResponse(made.note, media_type="text/plain; charset=utf-8")
