"""The GED REST API under ``/api``: upload, metadata, streamed download and metadata search.

Uploads are ``multipart/form-data`` (metadata fields plus a ``file`` part) or a raw body with the
metadata in the query string; either way the content streams to disk. Auth is an ``X-Api-Key``
header; errors are ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.ecole.idempotency import (
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    fingerprint,
)
from sandbox.ged.multipart import MalformedMultipart, PartHeaders, boundary_of, read_parts
from sandbox.ged.store import METADATA_FIELDS, SEARCH_FIELDS, GedState, Incoming, TooLarge
from sandbox.knobs import Knobs, KnobsMiddleware

DEFAULT_API_KEY = "sandbox-ged-key"
PREFIX = "/api"
MAX_FIELD_BYTES = 4096


class ApiError(Exception):
    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return JSONResponse({"error": body}, status_code=self.status_code)


class ApiKeyAuth:
    """Refuses API calls without the right ``X-Api-Key`` before any byte of the body is read."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            given = dict(scope["headers"]).get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.expected):
                error = ApiError(401, "unauthorized", "missing or invalid X-Api-Key header")
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bounded_int(value: str, name: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise ApiError(422, "invalid_paging", f"{name} must be an integer from {low} to {high}")
    return int(value)


def _check_fields(names: set[str], where: str) -> None:
    unknown = names - set(METADATA_FIELDS)
    if unknown:
        raise ApiError(
            422,
            "unknown_metadata",
            f"unknown {where} {sorted(unknown)}",
            {"valid": list(METADATA_FIELDS)},
        )


async def _receive_multipart(request: Request, incoming: Incoming) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    current: PartHeaders | None = None
    value = b""
    file_parts = 0
    async for event in read_parts(request.stream(), boundary_of(request.headers["content-type"])):
        if isinstance(event, PartHeaders):
            current, value = event, b""
            if current.name == "file":
                file_parts += 1
                if file_parts > 1:
                    raise ApiError(422, "too_many_files", "one document per upload")
                metadata.setdefault("filename", current.filename)
                if current.content_type:
                    metadata.setdefault("content_type", current.content_type)
            else:
                _check_fields({current.name}, "form field")
        elif isinstance(event, bytes):
            assert current is not None
            if current.name == "file":
                incoming.write(event)
            else:
                value += event
                if len(value) > MAX_FIELD_BYTES:
                    raise ApiError(413, "field_too_large", f"field {current.name!r} too long")
        else:
            assert current is not None
            if current.name != "file":
                metadata[current.name] = value.decode("utf-8", "replace")
    if not file_parts:
        raise ApiError(422, "missing_file", "a multipart upload needs a part named 'file'")
    return metadata


async def _receive_raw(request: Request, incoming: Incoming) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(request.query_params)
    _check_fields(set(metadata), "query parameter")
    metadata.setdefault("content_type", request.headers.get("content-type"))
    async for chunk in request.stream():
        incoming.write(chunk)
    return metadata


def create_app(
    knobs: Knobs | None = None, *, api_key: str = DEFAULT_API_KEY, state: GedState | None = None
) -> tuple[ASGIApp, GedState]:
    """The ASGI app (auth and fault knobs included) and the store it serves."""
    state = state if state is not None else GedState()
    knobs = knobs if knobs is not None else Knobs()

    async def upload(request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None:
            try:
                key = state.idempotency.check_key(key)
            except InvalidIdempotencyKey as exc:
                raise ApiError(400, "invalid_idempotency_key", str(exc)) from None
        incoming = state.begin_upload()
        try:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("multipart/form-data"):
                try:
                    metadata = await _receive_multipart(request, incoming)
                except MalformedMultipart as exc:
                    raise ApiError(400, "malformed_multipart", str(exc)) from None
            else:
                metadata = await _receive_raw(request, incoming)
            sha256 = incoming.finish()
            metadata["content_type"] = metadata.get("content_type") or "application/octet-stream"
            metadata.setdefault("title", metadata.get("filename"))
            missing = [name for name in ("title", "type") if not metadata.get(name)]
            if missing:
                raise ApiError(
                    422,
                    "missing_metadata",
                    f"required metadata missing: {missing}",
                    {"required": ["title (or a filename)", "type"]},
                )
            if key is None:
                return JSONResponse(state.add(incoming, sha256, metadata), status_code=201)
            digest = fingerprint("POST", request.url.path, {**metadata, "sha256": sha256})
            try:
                stored = state.idempotency.lookup(key, digest)
            except IdempotencyKeyReused:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with another document",
                ) from None
            if stored is not None:
                incoming.discard()
                response = JSONResponse(stored.body, status_code=stored.status_code)
                response.headers["Idempotent-Replayed"] = "true"
                return response
            record = state.add(incoming, sha256, metadata)
            stored = state.idempotency.remember(key, digest, 201, record)
            return JSONResponse(stored.body, status_code=stored.status_code)
        except TooLarge as exc:
            raise ApiError(413, "document_too_large", str(exc)) from None
        finally:
            incoming.discard()

    def _record(request: Request) -> dict[str, Any]:
        document_id = request.path_params["document_id"]
        record = state.documents.get(document_id)
        if record is None:
            raise ApiError(404, "document_not_found", f"no document {document_id!r}")
        return record

    async def metadata(request: Request) -> Response:
        return JSONResponse(_record(request))

    async def content(request: Request) -> Response:
        record = _record(request)
        return FileResponse(
            state.content_path(record["id"]),
            media_type=record["content_type"],
            filename=record["filename"],
            headers={"X-Content-SHA256": record["sha256"]},
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def search(request: Request) -> Response:
        criteria = dict(request.query_params)
        limit = _bounded_int(criteria.pop("limit", "50"), "limit", 1, 500)
        offset = _bounded_int(criteria.pop("offset", "0"), "offset", 0, 10**9)
        unknown = set(criteria) - set(SEARCH_FIELDS)
        if unknown:
            raise ApiError(
                422,
                "unknown_search_key",
                f"cannot search by {sorted(unknown)}",
                {"valid": list(SEARCH_FIELDS)},
            )
        found = state.search(criteria)
        following = None
        if offset + limit < len(found):
            following = f"{PREFIX}/documents?" + urlencode(
                {**criteria, "limit": limit, "offset": offset + limit}
            )
        return JSONResponse({"items": found[offset : offset + limit], "count": len(found), "next": following})

    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    app = Starlette(
        routes=[
            Route(f"{PREFIX}/documents", upload, methods=["POST"]),
            Route(f"{PREFIX}/documents", search, methods=["GET"]),
            Route(f"{PREFIX}/health", health, methods=["GET"]),
            Route(f"{PREFIX}/documents/{{document_id}}", metadata, methods=["GET"]),
            Route(f"{PREFIX}/documents/{{document_id}}/content", content, methods=["GET"]),
        ],
        exception_handlers={ApiError: on_api_error},
    )
    return KnobsMiddleware(ApiKeyAuth(app, api_key), knobs), state
