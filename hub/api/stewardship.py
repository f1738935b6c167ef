"""``/v1/stewardship``: the data stewards' review queue, explanations and the thresholds report.

A pair whose match probability falls between the two thresholds becomes a task; the steward
answers ``link`` (same person: the golden records are merged) or ``not_same``. Decisions feed the
thresholds report. Reading needs ``stewardship:read`` (or write); deciding ``stewardship:write``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.answers import DecidedTask, ExplainedPair, TaskPage, ThresholdsReport, typed
from hub.api.body import documented, json_body
from hub.api.citizens import citizens_of
from hub.api.errors import ApiError
from hub.api.openapi import AUTHENTICATED, BODY, error_responses
from hub.api.security import require_any
from hub.auth import Principal
from hub.db.models import MAX_ID
from hub.master_store import MasterDataError

router = APIRouter(prefix="/v1/stewardship", tags=["stewardship"])
READ = require_any("stewardship:read", "stewardship:write")
WRITE = require_any("stewardship:write")
TASKS_ERRORS = error_responses(*AUTHENTICATED, "validation_failed")
DECIDE_ERRORS = error_responses(
    *AUTHENTICATED,
    *BODY,
    "invalid_characters",
    "task_already_decided",
    "decided_not_same",
    "same_golden_record",
    not_found="no such review task",
)
EXPLAIN_ERRORS = error_responses(
    *AUTHENTICATED, "invalid_characters", "validation_failed", not_found="no such source or golden record"
)
THRESHOLDS_ERRORS = error_responses(*AUTHENTICATED)


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["link", "not_same"] = Field(description="link: same person; not_same: two people")
    reason: str | None = Field(None, max_length=500)


@router.get(
    "/tasks",
    summary="Review tasks, oldest first",
    response_model=None,
    responses={**typed(TaskPage, "A page of tasks, with the two records each compares"), **TASKS_ERRORS},
)
def list_tasks(
    request: Request,
    principal: Annotated[Principal, Depends(READ)],
    status: Annotated[Literal["open", "linked", "not_same"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="id of the last task of the previous page")] = 0,
) -> dict[str, Any]:
    citizens = citizens_of(request)
    page = citizens.tasks(status, limit, after)
    citizens.journal_shown(principal.name, "GET /v1/stewardship/tasks", page.tasks)
    return {"tasks": page.tasks, "next_after": page.next_after}


@router.post(
    "/tasks/{task_id}",
    summary="Decide a review task: link or not_same",
    response_model=None,
    responses={**typed(DecidedTask, "The task decided, with the merge a link made"), **DECIDE_ERRORS},
    openapi_extra=documented(DecisionBody),
)
def decide(
    task_id: Annotated[int, Path(ge=0, le=MAX_ID, description="the task's id")],
    request: Request,
    principal: Annotated[Principal, Depends(WRITE)],
    body: Annotated[DecisionBody, json_body(DecisionBody)],
) -> dict[str, Any]:
    try:
        return citizens_of(request).decide(task_id, body.decision, actor=principal.name, reason=body.reason)
    except MasterDataError as error:
        raise ApiError(error.status, error.code, error.message, error.details) from None


@router.get(
    "/explain",
    summary="Field-by-field comparison of two records",
    response_model=None,
    responses={**typed(ExplainedPair, "Field by field, and the matcher's verdict"), **EXPLAIN_ERRORS},
)
def explain(
    request: Request,
    principal: Annotated[Principal, Depends(READ)],
    a: Annotated[str, Query(description="SYSTEM:LOCAL_ID or a golden id")],
    b: Annotated[str, Query(description="SYSTEM:LOCAL_ID or a golden id")],
) -> dict[str, Any]:
    citizens = citizens_of(request)
    try:
        result = citizens.explain(a, b)
    except MasterDataError as error:  # an attempt on data that is not there is traced too
        citizens.journal_access(principal.name, "GET /v1/stewardship/explain", None, outcome=error.code)
        raise ApiError(error.status, error.code, error.message, error.details) from None
    citizens.journal_explained(principal.name, "GET /v1/stewardship/explain", result)
    return result


@router.get(
    "/thresholds",
    summary="Stewards' decisions by probability, suggested thresholds",
    response_model=None,
    responses={**typed(ThresholdsReport, "Decisions by probability band and by rule"), **THRESHOLDS_ERRORS},
)
def thresholds(request: Request, _principal: Annotated[Principal, Depends(READ)]) -> dict[str, Any]:
    return citizens_of(request).thresholds_report().as_json()
