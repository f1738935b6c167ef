"""``/v1/journal``: the exchange journal for auditors and the DPO (scope ``audit``).

``GET /v1/journal`` pages through the rows an auditor selects (a citizen, a request, a system, a
purpose, a client, a period); ``GET /v1/journal/verify`` checks the hash chain and the rows' MACs as
``hub audit verify`` does. Rows hold references and digests, never payloads. Each read is itself
journaled — who read the journal, when, about which citizen — since the journal answers questions
about people.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator
from sqlalchemy import insert, select

from hub import journal
from hub.api.errors import ApiError
from hub.api.openapi import AUTHENTICATED, error_responses
from hub.api.security import require_any
from hub.auth import Principal
from hub.db.master_models import GOLDEN
from hub.db.models import JOURNAL, MAX_ID, storable_time
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


@router.get("", summary="Journal rows an auditor selects, in journal order", responses=LIST_ERRORS)
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


@router.get("/verify", summary="Check the hash chain and every row's MAC", responses=VERIFY_ERRORS)
def verify_chain(request: Request, principal: Annotated[Principal, Depends(AUDIT)]) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    result = journal.verify(hub.db, hub.journal_key)
    _journal_read(hub, principal.name, "GET /v1/journal/verify", None, "", "ok" if result.ok else "broken")
    return {**asdict(result), "summary": result.describe()}
