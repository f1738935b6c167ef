"""Authentication and scopes, checked before anything else in a request."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.api.errors import ApiError, operation_of
from hub.api.threads import in_db_thread
from hub.auth import MISSING, Principal, Revoked
from hub.intake import journal_refused

# Declared for OpenAPI (the "Authorize" button in /docs); the check itself is below.
_bearer = HTTPBearer(auto_error=False, description="the client key given by `hub clients add`")


def require_any(*scopes: str) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and checks it holds one of ``scopes``."""

    async def dependency(
        request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "unauthorized",
                "missing client key: send 'Authorization: Bearer <key>'",
                headers=challenge,
            )
        clients = request.app.state.hub.clients
        key = key.strip()
        principal = clients.cached(key)
        if principal is MISSING:  # not seen lately: ask the database, off the event loop
            principal = await in_db_thread(request, clients.authenticate, key)
        if principal is None:
            raise ApiError(401, "unauthorized", "invalid client key", headers=challenge)
        hub = request.app.state.hub
        if isinstance(principal, Revoked):
            # A key whose holder is known (a revoked client): the auditor sees who still uses it.
            await in_db_thread(
                request, journal_refused, hub, principal.name, operation_of(request), "unauthorized"
            )
            raise ApiError(401, "unauthorized", "this client key was revoked", headers=challenge)
        if not any(principal.has(scope) for scope in scopes):
            # A known client reaching beyond its scopes: the auditor sees the attempt.
            await in_db_thread(
                request, journal_refused, hub, principal.name, operation_of(request), "forbidden"
            )
            raise ApiError(
                403,
                "forbidden",
                f"client {principal.name!r} lacks the scope for this call",
                {"required_any_of": list(scopes), "granted": sorted(principal.scopes)},
            )
        # For the refusals FastAPI makes after this dependency (an invalid parameter): journaled
        # as this client's (hub.api.errors).
        request.state.principal = principal
        return principal

    return dependency
