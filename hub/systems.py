"""Builds each configured back-end system's client: the adapter of its kind on its gateway.

The composition root (:mod:`hub.runtime`) asks here for a system's client; the flow runner and
``hub systems`` only ever see :class:`hub.runtime.SystemClient` (``call(operation, message,
context)``). Secrets arrive already resolved from ``${env:...}`` by the configuration.
"""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import paramiko
from sqlalchemy import select

from connectors.documents import DocumentsAdapter
from connectors.exchange import CallContext
from connectors.finances import FinancesConnector
from connectors.gateway import Gateway, SystemPolicy
from connectors.ged import GedConnector
from connectors.httpguard import HttpAuth
from connectors.rest import RestAdapter, load_openapi
from connectors.sftp import SftpAdapter
from connectors.soap import SoapAdapter
from hub.acks import SqlAckLedger
from hub.config import HubConfig, SystemConfig
from hub.db.engine import Database
from hub.db.models import JournalEntry

if TYPE_CHECKING:
    from hub.runtime import Hub


def policy_of(spec: SystemConfig) -> SystemPolicy:
    """The gateway policy of a system. One attempt per call: the worker reschedules a transient
    failure through the outbox (with the system's backoff) instead of sleeping on a thread."""
    return SystemPolicy(
        timeout_s=spec.timeout_s,
        max_attempts=1,
        breaker_failures=spec.breaker.failures,
        breaker_reset_s=spec.breaker.reset_s,
        breaker_failure_rate=spec.breaker.failure_rate,
        breaker_window=spec.breaker.window,
        max_concurrency=spec.max_concurrency,
    )


def http_auth(spec: SystemConfig) -> HttpAuth | None:
    credentials = spec.credentials
    if credentials is None:
        return None
    if credentials.token:
        return HttpAuth("bearer", credentials.token)
    if credentials.api_key:
        return HttpAuth("api_key", credentials.api_key, header=spec.api_key_header)
    if credentials.password is not None:
        return HttpAuth("basic", credentials.password, username=credentials.username)
    return None


def build_client(config: HubConfig, name: str, gateway: Gateway, db: Database) -> Any:
    """The client flows call for system ``name`` (its kind's adapter or connector)."""
    spec = config.systems[name]
    credentials = spec.credentials
    if spec.kind == "soap":
        assert spec.wsdl is not None
        return SoapAdapter(
            system=name,
            wsdl_path=config.resolve(spec.wsdl),
            endpoint=spec.endpoint,
            gateway=gateway,
            timeout_s=spec.timeout_s,
            username=credentials.username if credentials else None,
            password=credentials.password if credentials else None,
        )
    http = {
        "auth": http_auth(spec),
        "allow_hosts": spec.allow_hosts,
        "allow_redirects": spec.allow_redirects,
        "max_response_bytes": spec.max_response_bytes,
        "timeout_s": spec.timeout_s,
    }
    if spec.kind == "rest":
        assert spec.openapi is not None
        return RestAdapter(
            name, spec.endpoint, gateway, operations=load_openapi(config.resolve(spec.openapi)), **http
        )
    if spec.kind == "documents":
        return GedConnector(DocumentsAdapter(name, spec.endpoint, gateway, **http))
    assert spec.known_hosts is not None
    key = None
    if spec.private_key_file is not None:
        key = paramiko.PKey.from_path(config.resolve(spec.private_key_file))
    files = spec.files
    adapter = SftpAdapter(
        name,
        spec.endpoint,
        gateway,
        known_hosts=spec.known_hosts,
        password=None if key else (credentials.password if credentials else None),
        private_key=key,
        timeout_s=spec.timeout_s,
    )
    return FinancesConnector(
        adapter,
        SqlAckLedger(db),
        outgoing_dir=files.outgoing if files else "inbox",
        ack_dir=files.acknowledgements if files else "outbox",
        headers=dict(files.headers) if files else {},
    )


# ---------------------------------------------------------------------------- status and checks


@dataclass(frozen=True)
class SystemStatus:
    """What ``hub systems status`` shows for one system."""

    name: str
    kind: str
    endpoint: str
    reachable: bool
    reach_detail: str
    breaker: str  # closed | open | half_open, from this process or the journal's recent attempts
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
    """Reachability now, and the breaker, last error and latency from the journal's last
    ``window`` attempts (every process journals there; breakers themselves are per process)."""
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
    gateway = hub.built_gateway(name)
    breaker = gateway.breaker_state if gateway is not None else _breaker_from_journal(spec, rows)
    return SystemStatus(
        name=name,
        kind=spec.kind,
        endpoint=spec.endpoint,
        reachable=reachable,
        reach_detail=detail,
        breaker=breaker,
        last_error=failures[0].error_code if failures else None,
        last_error_at=_aware(failures[0].at) if failures else None,
        last_exchange_at=_aware(rows[0].at) if rows else None,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        recent_calls=len(rows),
        recent_failures=sum(1 for r in rows if r.outcome == "transient_error"),
    )


def _breaker_from_journal(spec: SystemConfig, rows: list[Any]) -> str:
    """The breaker as the journal shows it: open while attempts are refused with CIRCUIT_OPEN or
    the last ``failures`` attempts all failed transiently, half-open once ``reset_s`` has passed."""
    if not rows:
        return "closed"
    tail = 0
    for row in rows:
        if row.outcome == "transient_error" or row.error_code == "CIRCUIT_OPEN":
            tail += 1
        else:
            break
    if tail == 0 or (tail < spec.breaker.failures and rows[0].error_code != "CIRCUIT_OPEN"):
        return "closed"
    age = (datetime.now(UTC) - _aware(rows[0].at)).total_seconds()
    return "open" if age < spec.breaker.reset_s else "half_open"


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
