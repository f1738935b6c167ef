"""``/v1/requests/{id}/documents/{document_id}``: an agent retrieves a document a request filed.

Needs ``documents:read``. The bytes stream from the GED through its instrumented client and are
checked against the request's claim check (:mod:`hub.documents`); every attempt is journaled.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from connectors.errors import CircuitOpenError, ConnectorError
from hub.api.errors import ApiError
from hub.api.openapi import AUTHENTICATED, error_responses
from hub.api.security import require_any
from hub.auth import Principal
from hub.documents import DocumentError, retrieve

router = APIRouter(prefix="/v1/requests", tags=["documents"])
ERRORS = error_responses(
    *AUTHENTICATED,
    "invalid_characters",
    "document_changed",
    not_found="no such request, or it filed no such document",
    system_unknown="the documents system it was filed in is no longer configured",
    system_unavailable="the GED's circuit is open; retry after Retry-After",
    open_codes={502: "the GED's error code, lower case (document_not_found, http_5xx, timeout, …)"},
)


@router.get(
    "/{request_id}/documents/{document_id}",
    summary="Retrieve a document the request filed in the GED (claim check verified)",
    responses={
        200: {
            "description": "The document's bytes, as filed (X-Content-SHA256 is their digest)",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **ERRORS,
    },
    response_class=StreamingResponse,
)
def get_document(
    request_id: str,
    document_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_any("documents:read"))],
) -> StreamingResponse:
    try:
        retrieved = retrieve(request.app.state.hub, request_id, document_id, principal.name)
    except DocumentError as error:
        raise ApiError(error.status, error.code, error.message) from None
    except CircuitOpenError as error:
        retry_after = str(max(1, round(error.retry_after_s)))
        raise ApiError(
            503, "system_unavailable", error.message, headers={"Retry-After": retry_after}
        ) from None
    except ConnectorError as error:
        raise ApiError(502, error.code.lower(), error.message) from None
    claim = retrieved.claim
    return StreamingResponse(
        retrieved.chunks(),
        media_type=claim.get("content_type") or "application/octet-stream",
        headers={
            "X-Content-SHA256": claim["sha256"],
            "Content-Disposition": f'attachment; filename="{document_id}"',
        },
    )
