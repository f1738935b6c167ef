"""``/v1/citizens``: the 360° view of a citizen — golden values with their lineage, the systems
that know them, every version, every request — and the data stewards' merge and unmerge.

Reads need ``citizens:read``; merges ``stewardship:write``. Every call naming a citizen is
journaled (who looked at whom, when, for which purpose), found or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.answers import CitizenHistory, CitizenRequests, CitizenView, MergeEvent, typed
from hub.api.body import documented, json_body
from hub.api.errors import ApiError
from hub.api.openapi import AUTHENTICATED, BODY, error_responses
from hub.api.security import require_any
from hub.auth import Principal
from hub.citizens import Citizens
from hub.master_store import MasterDataError

router = APIRouter(prefix="/v1/citizens", tags=["citizens"])
READ = require_any("citizens:read")
WRITE = require_any("stewardship:write")
READ_ERRORS = error_responses(*AUTHENTICATED, "invalid_characters", not_found="no such golden record")
MERGE_ERRORS = error_responses(
    *AUTHENTICATED,
    *BODY,
    "invalid_characters",
    "golden_record_not_active",
    not_found="no such golden record",
)
UNMERGE_ERRORS = error_responses(
    *AUTHENTICATED,
    *BODY,
    "invalid_characters",
    "golden_record_not_active",
    "nothing_to_unmerge",
)


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    other: str = Field(min_length=1, max_length=36, description="the golden record absorbed into this one")
    reason: str | None = Field(None, max_length=500)


class UnmergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    restore: str = Field(min_length=1, max_length=36, description="the golden record split back out")
    reason: str | None = Field(None, max_length=500)


def citizens_of(request: Request) -> Citizens:
    """One service per app, made on first use (it caches the match model)."""
    state = request.app.state
    if getattr(state, "citizens", None) is None:
        state.citizens = Citizens(state.hub)
    return state.citizens


def answer(
    citizens: Citizens, principal: Principal, operation: str, golden_id: str, read: Callable[[], Any]
) -> Any:
    """Run ``read`` and journal the access, found or not (RGPD: every view of a person is traced)."""
    try:
        result = read()
    except MasterDataError as error:
        citizens.journal_access(principal.name, operation, golden_id, outcome=error.code)
        raise ApiError(error.status, error.code, error.message, error.details) from None
    citizens.journal_access(principal.name, operation, golden_id)
    return result


@router.get(
    "/{golden_id}",
    summary="360° view: golden values with lineage, cross-references",
    response_model=None,
    responses={**typed(CitizenView, "The golden record as it is now"), **READ_ERRORS},
)
def get_citizen(golden_id: str, request: Request, principal: Annotated[Principal, Depends(READ)]) -> Any:
    citizens = citizens_of(request)
    return answer(citizens, principal, "GET /v1/citizens/{id}", golden_id, lambda: citizens.view(golden_id))


@router.get(
    "/{golden_id}/history",
    summary="Every version of the golden record, merges and unmerges",
    response_model=None,
    responses={**typed(CitizenHistory, "Its versions, oldest first, and its merge events"), **READ_ERRORS},
)
def get_history(golden_id: str, request: Request, principal: Annotated[Principal, Depends(READ)]) -> Any:
    citizens = citizens_of(request)
    return answer(
        citizens, principal, "GET /v1/citizens/{id}/history", golden_id, lambda: citizens.history(golden_id)
    )


@router.get(
    "/{golden_id}/requests",
    summary="The citizen's requests across services",
    response_model=None,
    responses={**typed(CitizenRequests, "Its requests and those of records merged into it"), **READ_ERRORS},
)
def get_requests(golden_id: str, request: Request, principal: Annotated[Principal, Depends(READ)]) -> Any:
    citizens = citizens_of(request)
    return answer(
        citizens, principal, "GET /v1/citizens/{id}/requests", golden_id, lambda: citizens.requests(golden_id)
    )


@router.post(
    "/{golden_id}/merge",
    summary="Merge another golden record into this one",
    response_model=None,
    responses={**typed(MergeEvent, "Merged: the event, the records moved"), **MERGE_ERRORS},
    openapi_extra=documented(MergeBody),
)
def merge(
    golden_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(WRITE)],
    body: Annotated[MergeBody, json_body(MergeBody)],
) -> Any:
    citizens = citizens_of(request)
    try:
        return citizens.merge(golden_id, body.other, actor=principal.name, reason=body.reason)
    except MasterDataError as error:
        raise ApiError(error.status, error.code, error.message, error.details) from None


@router.post(
    "/{golden_id}/unmerge",
    summary="Split a merged golden record back out",
    response_model=None,
    responses={**typed(MergeEvent, "Split back: the event, the records moved back"), **UNMERGE_ERRORS},
    openapi_extra=documented(UnmergeBody),
)
def unmerge(
    golden_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(WRITE)],
    body: Annotated[UnmergeBody, json_body(UnmergeBody)],
) -> Any:
    citizens = citizens_of(request)
    try:
        return citizens.unmerge(golden_id, body.restore, actor=principal.name, reason=body.reason)
    except MasterDataError as error:
        raise ApiError(error.status, error.code, error.message, error.details) from None
