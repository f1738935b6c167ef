"""API clients, their keys and scopes.

Keys are 256-bit random tokens, so a plain SHA-256 of the key is enough to store them (no password
stretching needed: there is nothing to brute-force). Clients come from hub.yaml (declared with the
deployment) and from the database (added with ``hub clients add``, usable without a restart;
revoked with ``hub clients revoke``: its key then answers 401 within the cache's 10 seconds, and
each refused call is journaled under the client's name, like a call beyond its scopes).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from hub.config import SCOPES, ClientConfig
from hub.db.engine import Database
from hub.db.models import JOURNAL, ApiClient, utcnow

_CACHE_TTL_S = 10.0
MISSING = object()  # "not in the cache", as opposed to "known to be invalid" (None)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one API request."""

    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class Revoked:
    """A key that was a client's until an operator revoked it: refused (401), and since its holder
    is known, the refusal is journaled under the client's name."""

    name: str


class ClientExists(ValueError):
    pass


class UnknownClient(LookupError):
    pass


# The names hub.yaml allows (hub.config.Name): they go into the journal, request rows and logs.
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
NAME_RULE = "a lower-case letter, then lower-case letters, digits, '-' or '_'; at most 64 characters"


def new_key() -> str:
    return "hub_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ClientRegistry:
    """Resolves a presented key to a :class:`Principal`; caches database clients briefly."""

    def __init__(self, declared: dict[str, ClientConfig], db: Database) -> None:
        self._declared = {c.key_sha256: Principal(name, frozenset(c.scopes)) for name, c in declared.items()}
        self._names = set(declared)
        self._db = db
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def check_names(self) -> None:
        """Refuse a hub.yaml client named like one created in the database: they would share
        idempotency keys and each other's requests."""
        if not self._names:
            return
        with self._db.sessions() as session:
            clash = session.scalars(select(ApiClient.name).where(ApiClient.name.in_(self._names))).all()
        if clash:
            raise ClientExists(
                f"client(s) {', '.join(sorted(clash))} declared in hub.yaml also exist in the database "
                "(created with `hub clients add`); rename one of them"
            )

    def cached(self, key: str) -> Principal | Revoked | object | None:
        """The principal for ``key`` without I/O, or :data:`MISSING` if the database must be asked."""
        digest = hash_key(key)
        for known, principal in self._declared.items():
            if hmac.compare_digest(known, digest):
                return principal
        with self._lock:
            cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        return MISSING

    def authenticate(self, key: str) -> Principal | Revoked | None:
        """The principal for ``key``, :class:`Revoked` for a revoked client's, ``None`` if unknown;
        asking the database if need be."""
        found = self.cached(key)
        if found is not MISSING:
            return found  # type: ignore[return-value]
        digest = hash_key(key)
        now = time.monotonic()
        principal: Principal | Revoked | None = None
        with self._db.sessions() as session:
            row = session.scalar(select(ApiClient).where(ApiClient.key_sha256 == digest))
            if row is not None and row.revoked_at is not None:
                principal = Revoked(row.name)
            elif row is not None:
                principal = Principal(row.name, frozenset(row.scopes.split()))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + _CACHE_TTL_S, principal)
        return principal

    def add(self, name: str, scopes: list[str]) -> str:
        """Create a client; return its key (shown once, never stored)."""
        if not NAME.fullmatch(name):
            raise ValueError(f"invalid client name {name!r}: {NAME_RULE} (as in hub.yaml)")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise ValueError(f"unknown scope(s) {', '.join(unknown)}; valid: {', '.join(SCOPES)}")
        if not scopes:
            raise ValueError(f"give at least one scope; valid: {', '.join(SCOPES)}")
        if name in self._names:
            raise ClientExists(f"client {name!r} is declared in hub.yaml")
        key = new_key()
        with self._db.transaction() as session:
            if session.get(ApiClient, name) is not None:
                raise ClientExists(f"client {name!r} already exists")
            session.add(ApiClient(name=name, key_sha256=hash_key(key), scopes=" ".join(sorted(set(scopes)))))
        return key

    def revoke(self, name: str, journal_row: dict[str, Any]) -> datetime | None:
        """Revoke a database client's key, writing ``journal_row`` (who revoked it) in the same
        transaction; return when it had already been revoked (nothing changes then), else None."""
        if name in self._names:
            raise ClientExists(
                f"client {name!r} is declared in hub.yaml: remove it there (and restart) to revoke its key"
            )
        with self._db.transaction() as session:
            client = session.get(ApiClient, name)
            if client is None:
                known = session.scalars(select(ApiClient.name).order_by(ApiClient.name)).all()
                raise UnknownClient(
                    f"no client {name!r}; clients added with `hub clients add`: {', '.join(known) or 'none'}"
                )
            if client.revoked_at is not None:
                return client.revoked_at
            session.execute(update(ApiClient).where(ApiClient.name == name).values(revoked_at=utcnow()))
            session.execute(insert(JOURNAL), journal_row)
        with self._lock:
            self._cache.clear()  # this process refuses the key at once; others within _CACHE_TTL_S
        return None

    def list(self) -> list[tuple[str, str, str]]:
        """(name, scopes, origin) of every client."""
        rows = [(p.name, " ".join(sorted(p.scopes)), "hub.yaml") for p in self._declared.values()]
        with self._db.sessions() as session:
            for client in session.scalars(select(ApiClient).order_by(ApiClient.name)):
                revoked = client.revoked_at
                origin = f"revoked {revoked:%Y-%m-%d %H:%M} UTC" if revoked else "database"
                rows.append((client.name, client.scopes, origin))
        return rows
