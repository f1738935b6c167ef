"""The école/enfance REST API: families, children and enrolment requests under ``/api/v1``.

It behaves like the school-services software of a commune: bearer-token auth, typed JSON errors
``{"error": {"code", "message", "details"}}``, find-or-create of families by the responsible adult's
identity, and idempotent POSTs honouring ``Idempotency-Key``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.ecole.idempotency import (
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    fingerprint,
)
from sandbox.ecole.state import DomainError, EcoleState, public
from sandbox.knobs import Knobs, KnobsMiddleware

DEFAULT_TOKEN = "sandbox-ecole-token"
PREFIX = "/api/v1"
COUNTERS_PATH = "/_sandbox/counters"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Adult(_Strict):
    birth_name: str = Field(min_length=1, max_length=100)
    used_name: str | None = Field(default=None, max_length=100)
    first_names: str = Field(min_length=1, max_length=200)
    birth_date: date
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, max_length=30)


class Address(_Strict):
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    postal_code: str = Field(pattern=r"^\d{5}$")
    city: str = Field(min_length=1, max_length=100)
    insee_code: str | None = Field(default=None, pattern=r"^(\d{5}|2[AB]\d{3})$")


class FamilyIn(_Strict):
    responsible: Adult
    address: Address | None = None
    quotient_familial: int | None = Field(default=None, ge=0)


class ChildIn(_Strict):
    birth_name: str = Field(min_length=1, max_length=100)
    first_names: str = Field(min_length=1, max_length=200)
    birth_date: date
    sex: Literal["F", "M"] | None = None


class EnrolmentIn(_Strict):
    child_id: str = Field(min_length=1)
    school_year: str = Field(pattern=r"^\d{4}-\d{4}$")
    kind: Literal["school", "periscolaire", "creche"]
    school: str = Field(min_length=1, max_length=200, description="school or crèche name/code")
    level: str | None = Field(default=None, max_length=50)


CitizenId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CitizenLinkIn(_Strict):
    """A notice of the citizen repository (the hub): these records are one person, or no longer."""

    event: Literal["merged", "unmerged"]
    event_id: str = Field(min_length=1, max_length=64, description="the repository's own event id")
    citizen_id: CitizenId = Field(description="the person the records are, after this notice")
    replaces: CitizenId | None = Field(default=None, description="merged: the citizen id retired")
    split_from: CitizenId | None = Field(default=None, description="unmerged: the person they no longer are")
    records: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=500)


class CancelIn(_Strict):
    reason: str | None = Field(default=None, max_length=500)


def page_of(items: list[Any], request: Request, limit: int, offset: int) -> dict[str, Any]:
    """One page of ``items`` and the relative link to the next one (``None`` on the last page)."""
    page = items[offset : offset + limit]
    following = None
    if offset + limit < len(items):
        following = str(request.url.include_query_params(limit=limit, offset=offset + limit))
        following = following[len(str(request.base_url)) - 1 :]  # relative: path and query
    return {"items": page, "count": len(items), "next": following}


def _error(status_code: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status_code)


def _json(record: dict[str, Any]) -> dict[str, Any]:
    return to_jsonable_python(public(record))


class BearerAuth:
    """Refuses every API call without the right bearer token, before the body is even read."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = _error(401, "unauthorized", "missing or invalid bearer token")
                response.headers["WWW-Authenticate"] = 'Bearer realm="ecole"'
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


def create_app(
    knobs: Knobs | None = None, *, token: str = DEFAULT_TOKEN, state: EcoleState | None = None
) -> tuple[ASGIApp, EcoleState]:
    """The ASGI app (auth and fault knobs included) and the state it serves."""
    state = state if state is not None else EcoleState()
    knobs = knobs if knobs is not None else Knobs()
    api = FastAPI(title="Sandbox école/enfance", docs_url=None, redoc_url=None, openapi_url=None)

    @api.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return _error(exc.status_code, exc.code, exc.message, exc.details)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        return _error(422, "invalid_request", "the request does not match the schema", details)

    def idempotent(
        request: Request,
        key: str | None,
        payload: Any,
        produce: Callable[[], tuple[int, dict[str, Any]]],
    ) -> JSONResponse:
        if key is None:
            status_code, body = produce()
            return JSONResponse(body, status_code=status_code)
        try:
            key = state.idempotency.check_key(key)
            digest = fingerprint(request.method, request.url.path, payload)
            stored = state.idempotency.lookup(key, digest)
        except InvalidIdempotencyKey as exc:
            return _error(400, "invalid_idempotency_key", str(exc))
        except IdempotencyKeyReused:
            return _error(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with another request",
            )
        if stored is not None:
            response = JSONResponse(stored.body, status_code=stored.status_code)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        status_code, body = produce()
        stored = state.idempotency.remember(key, digest, status_code, body)
        return JSONResponse(stored.body, status_code=stored.status_code)

    @api.post(f"{PREFIX}/families")
    async def create_family(
        body: FamilyIn, request: Request, idempotency_key: IdempotencyHeader = None
    ) -> JSONResponse:
        def produce() -> tuple[int, dict[str, Any]]:
            family, created = state.find_or_create_family(body.model_dump())
            return (201 if created else 200), _json(family)

        return idempotent(request, idempotency_key, body.model_dump(mode="json"), produce)

    @api.get(f"{PREFIX}/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @api.get(f"{PREFIX}/families")
    async def search_families(
        request: Request,
        birth_name: Annotated[str, Query(min_length=1)],
        birth_date: date | None = None,
        first_names: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> JSONResponse:
        found = state.search_families(birth_name, birth_date, first_names)
        return JSONResponse(page_of([_json(f) for f in found], request, limit, offset))

    @api.get(f"{PREFIX}/families/{{family_id}}")
    async def get_family(family_id: str) -> JSONResponse:
        return JSONResponse(_json(state.family(family_id)))

    @api.post(f"{PREFIX}/families/{{family_id}}/children")
    async def add_child(
        family_id: str, body: ChildIn, request: Request, idempotency_key: IdempotencyHeader = None
    ) -> JSONResponse:
        def produce() -> tuple[int, dict[str, Any]]:
            child, created = state.find_or_create_child(family_id, body.model_dump())
            return (201 if created else 200), _json(child)

        return idempotent(request, idempotency_key, body.model_dump(mode="json"), produce)

    @api.post(f"{PREFIX}/enrolments")
    async def create_enrolment(
        body: EnrolmentIn, request: Request, idempotency_key: IdempotencyHeader = None
    ) -> JSONResponse:
        def produce() -> tuple[int, dict[str, Any]]:
            return 201, _json(state.create_enrolment(body.model_dump()))

        return idempotent(request, idempotency_key, body.model_dump(mode="json"), produce)

    @api.get(f"{PREFIX}/enrolments/{{enrolment_id}}")
    async def get_enrolment(enrolment_id: str) -> JSONResponse:
        return JSONResponse(_json(state.enrolment(enrolment_id)))

    @api.delete(f"{PREFIX}/enrolments/{{enrolment_id}}")
    async def delete_enrolment(enrolment_id: str) -> JSONResponse:
        return JSONResponse(_json(state.cancel_enrolment(enrolment_id, None)))

    @api.post(f"{PREFIX}/enrolments/{{enrolment_id}}/cancel")
    async def cancel_enrolment(
        enrolment_id: str,
        request: Request,
        body: CancelIn | None = None,
        idempotency_key: IdempotencyHeader = None,
    ) -> JSONResponse:
        reason = body.reason if body else None

        def produce() -> tuple[int, dict[str, Any]]:
            return 200, _json(state.cancel_enrolment(enrolment_id, reason))

        return idempotent(request, idempotency_key, {"reason": reason}, produce)

    @api.post(f"{PREFIX}/citizen-links")
    async def link_citizen_records(
        body: CitizenLinkIn, request: Request, idempotency_key: IdempotencyHeader = None
    ) -> JSONResponse:
        def produce() -> tuple[int, dict[str, Any]]:
            return 201, _json(state.link_citizen_records(body.model_dump()))

        return idempotent(request, idempotency_key, body.model_dump(mode="json"), produce)

    @api.get(f"{PREFIX}/citizens/{{citizen_id}}")
    async def get_citizen(citizen_id: str) -> JSONResponse:
        return JSONResponse(state.citizen(citizen_id))

    @api.get(COUNTERS_PATH)
    async def counters() -> JSONResponse:
        return JSONResponse({**state.counters, "idempotent_replays": state.idempotency.replays})

    return KnobsMiddleware(BearerAuth(api, token), knobs), state
