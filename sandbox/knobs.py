"""Fault knobs every sandbox back-end honours: latency, error rate and downtime.

Tests turn them through ``PUT /_sandbox/knobs`` (JSON) or directly on the :class:`Knobs` object, so
a fault scenario reads like the incident it reproduces: "the registry is down for 2 s, then back".
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_PATH = "/_sandbox/knobs"


@dataclass
class Knobs:
    """Mutable fault settings of one back-end; safe to change from another thread."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    down_until: float = 0.0  # time.time() before which every call answers 503
    seed: int | None = None
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def down_for(self, seconds: float) -> None:
        self.down_until = time.time() + seconds

    def update(self, values: dict[str, Any]) -> None:
        allowed = {"latency_ms", "error_rate", "down_until", "seed", "down_for"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}; valid: {sorted(allowed)}")
        with self._lock:
            for key, value in values.items():
                if key == "down_for":
                    self.down_until = time.time() + float(value)
                elif key == "seed":
                    self.seed = value
                    self._random.seed(value)
                else:
                    setattr(self, key, float(value))

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it would deep-copy the lock.
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def should_fail(self) -> bool:
        with self._lock:
            self.calls += 1
            if time.time() < self.down_until:
                return True
            return self.error_rate > 0 and self._random.random() < self.error_rate


class KnobsMiddleware:
    """ASGI middleware applying the knobs to every request and serving the admin endpoint."""

    def __init__(self, app: ASGIApp, knobs: Knobs) -> None:
        self.app = app
        self.knobs = knobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == ADMIN_PATH:
            await self._admin(scope, receive, send)
            return
        if self.knobs.latency_ms:
            await asyncio.sleep(self.knobs.latency_ms / 1000)
        if self.knobs.should_fail():
            await _send_json(send, 503, {"error": "sandbox: service unavailable (fault knob)"})
            return
        await self.app(scope, receive, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "PUT":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            try:
                self.knobs.update(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                await _send_json(send, 400, {"error": str(exc)})
                return
        await _send_json(send, 200, self.knobs.as_dict())


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
