"""Idempotent POSTs the way payment and public APIs do them (Stripe, Etalab guidelines).

The first answer to a key is remembered with a fingerprint of the request; a retry with the same key
and the same request gets that answer again and causes no second effect; the same key with another
request is a client bug and answers 422. Only successful answers are remembered, so a request that
failed validation can be corrected and retried under the same key.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(Exception):
    """The key was first used for a different request."""


class InvalidIdempotencyKey(ValueError):
    """The key is empty or longer than :data:`MAX_KEY_LENGTH`."""


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status_code: int
    body: dict[str, Any]
    stored_at: float


def fingerprint(method: str, path: str, payload: Any) -> str:
    """Digest of what makes two requests "the same": method, path and canonical JSON payload."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class IdempotencyStore:
    """Remembered answers by key; safe to use from several threads."""

    def __init__(self, ttl_s: float = 24 * 3600) -> None:
        self._ttl_s = ttl_s
        self._answers: dict[str, StoredAnswer] = {}
        self._lock = threading.Lock()
        self.replays = 0

    @staticmethod
    def check_key(key: str) -> str:
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidIdempotencyKey(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible characters")
        return key

    def lookup(self, key: str, request_fingerprint: str) -> StoredAnswer | None:
        """The answer to replay, None for a new key; raises if the key served another request."""
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None and time.time() - answer.stored_at > self._ttl_s:
                del self._answers[key]
                answer = None
            if answer is None:
                return None
            if answer.fingerprint != request_fingerprint:
                raise IdempotencyKeyReused(key)
            self.replays += 1
            return answer

    def remember(
        self, key: str, request_fingerprint: str, status_code: int, body: dict[str, Any]
    ) -> StoredAnswer:
        """Store the first answer; if a concurrent request stored one first, that one wins."""
        with self._lock:
            existing = self._answers.get(key)
            if existing is not None:
                return existing
            answer = StoredAnswer(request_fingerprint, status_code, body, time.time())
            self._answers[key] = answer
            return answer

    def __len__(self) -> int:
        return len(self._answers)
