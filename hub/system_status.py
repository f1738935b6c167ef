"""How each back-end system is doing, for ``hub systems status`` and ``hub systems check``.

Status reads the database every process writes to, so an operator sees the workers from any
shell: the breakers' real states from the breaker board (:mod:`hub.breakers`: each process's
gateways report their state changes there), the last error and recent latency from the journal.
A check is a harmless call through the system's gateway, journaled like any other.
"""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select

from connectors.exchange import CallContext
from connectors.ged import GedConnector
from connectors.rest import RestAdapter
from connectors.soap import SoapAdapter
from hub.config import SystemConfig
from hub.db.models import JournalEntry

if TYPE_CHECKING:
    from hub.runtime import Hub


@dataclass(frozen=True)
class SystemStatus:
    """What ``hub systems status`` shows for one system."""

    name: str
    kind: str
    endpoint: str
    reachable: bool
    reach_detail: str
    breaker: str  # closed | open | half_open: the worst among the processes' breakers
    breaker_detail: str  # e.g. "open in 1 of 2 process(es) (since 10:41:02, probe at 10:41:12 UTC)"
    last_error: str | None
    last_error_at: datetime | None
    last_exchange_at: datetime | None
    p50_ms: float | None
    p99_ms: float | None
    recent_calls: int
    recent_failures: int


def reachability(spec: SystemConfig, timeout_s: float = 2.0) -> tuple[bool, str]:
    """A TCP connection to the system's host and port, nothing sent: is anything listening?"""
    parts = urlsplit(spec.endpoint)
    port = parts.port or {"http": 80, "https": 443, "sftp": 22}[parts.scheme]
    started = time.perf_counter()
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout_s).close()
    except OSError as exc:
        return False, f"{type(exc).__name__} at {parts.hostname}:{port}"
    return True, f"{(time.perf_counter() - started) * 1000:.1f} ms to connect"


def status_of(hub: Hub, name: str, *, window: int = 200, probe: bool = True) -> SystemStatus:
    """Reachability now, the breakers of every process (the breaker board), and the last error
    and latency from the journal's last ``window`` attempts (every process journals there)."""
    spec = hub.config.systems[name]
    with hub.db.sessions() as session:
        rows = session.execute(
            select(JournalEntry.at, JournalEntry.outcome, JournalEntry.error_code, JournalEntry.latency_ms)
            .where(JournalEntry.direction == "outbound", JournalEntry.system == name)
            .order_by(JournalEntry.id.desc())
            .limit(window)
        ).all()
    latencies = sorted(r.latency_ms for r in rows if r.outcome != "rejected")
    failures = [r for r in rows if r.error_code]
    reachable, detail = reachability(spec) if probe else (False, "not probed")
    breakers = hub.breakers.summary(name)
    return SystemStatus(
        name=name,
        kind=spec.kind,
        endpoint=spec.endpoint,
        reachable=reachable,
        reach_detail=detail,
        breaker=breakers.state,
        breaker_detail=breakers.detail,
        last_error=failures[0].error_code if failures else None,
        last_error_at=_aware(failures[0].at) if failures else None,
        last_exchange_at=_aware(rows[0].at) if rows else None,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        recent_calls=len(rows),
        recent_failures=sum(1 for r in rows if r.outcome == "transient_error"),
    )


def check_system(hub: Hub, name: str) -> dict[str, Any]:
    """A harmless call through the system's gateway (journaled like any call): the WSDL for
    SOAP, the health path for REST and documents, a listing of the acknowledgement folder for
    SFTP (which also proves the pinned host key and the credentials)."""
    spec = hub.config.systems[name]
    client = hub.adapter(name)
    context = CallContext(correlation_id=f"systems-check-{uuid.uuid4()}", client="hub-cli")
    if isinstance(client, SoapAdapter):
        return client.check(context)
    if isinstance(client, RestAdapter):
        return client.request("Health", "GET", spec.health_path, context, retry=False)
    if isinstance(client, GedConnector):
        return client.adapter.health("Health", context, spec.health_path)
    return client.call("Health", {}, context, retry=False)


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
