"""JSON request bodies: one reading for every endpoint that takes one.

FastAPI's own body parsing reads the body before the dependencies (so before authentication),
accepts what Python's ``json`` accepts (``NaN``, ``Infinity``: not JSON, and PostgreSQL's json
columns refuse them), answers malformed JSON with a 422, and reads a body of any size. Every body
is read here instead, in this order: the caller is authenticated first (the route's own
dependencies come before the body's), then the size limit (``413 payload_too_large``), the content
type (``415 unsupported_media_type``), JSON as RFC 8259 defines it (``400 malformed_json``) and
the model (``422 validation_failed`` with the failing fields). Each refusal is journaled for the
authenticated caller (:func:`hub.api.errors.journal_refusal`), as every refused call is.

A route declares its body as a dependency and documents it with :func:`documented`::

    @router.post("/x", openapi_extra=documented(XBody))
    def x(principal: ..., body: Annotated[XBody, json_body(XBody)]): ...
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from hub.api.errors import ApiError, journal_refusal, validation_details

M = TypeVar("M", bound=BaseModel)

# The bodies' schemas, by model name, for the OpenAPI document's components (hub.api.app).
SCHEMAS: dict[str, dict[str, Any]] = {}


async def read_body(request: Request, limit: int) -> bytes:
    """The body's bytes, refused (413) as soon as it exceeds ``limit``: never read whole first."""
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


def parse_json(request: Request, raw: bytes) -> Any:
    """The body as JSON: declared so (else 415) and well formed, RFC 8259 only (else 400)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, 5,000-digit numbers, nesting
        readable = isinstance(exc, (json.JSONDecodeError, _NotJsonConstant))
        reason = str(exc) if readable else type(exc).__name__
        raise ApiError(400, "malformed_json", f"the body is not acceptable JSON: {reason}") from None


class _NotJsonConstant(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, JSON (RFC 8259) has no such values."""


def _refuse_constant(name: str) -> Any:
    # Accepted, NaN would pass a JSON Schema's bounds (every comparison with it is false) and then
    # be refused by PostgreSQL's json column: a 202-then-503 forever instead of a clear 400.
    raise _NotJsonConstant(f"{name} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def json_body(model: type[M]) -> Any:
    """The dependency that reads, parses and validates a body as ``model``."""

    async def read(request: Request) -> M:
        raw = b""  # an oversized body is refused unread
        try:
            raw = await read_body(request, request.app.state.hub.config.api.max_body_bytes)
            document = parse_json(request, raw)
            try:
                return model.model_validate(document)
            except ValidationError as exc:
                details = validation_details(list(exc.errors()))
                raise ApiError(422, "validation_failed", "the request is invalid", details) from None
        except ApiError as refused:
            # The route never runs: its refusal is journaled here, as the authenticated caller's
            # (the auditor sees what was attempted, with the digest of what was sent).
            await journal_refusal(request, refused.code, raw)
            raise

    return Depends(read)


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """The route's ``openapi_extra``: its JSON body, ``model``, as a component of the document."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    SCHEMAS.update(schema.pop("$defs", {}))
    SCHEMAS[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }
