"""Builds each configured back-end system's client: the adapter of its kind on its gateway.

The composition root (:mod:`hub.runtime`) asks here for a system's client; the flow runner and
``hub systems`` only ever see :class:`hub.runtime.SystemClient` (``call(operation, message,
context)``). Secrets arrive already resolved from ``${env:...}`` by the configuration.
"""

from __future__ import annotations

from typing import Any

import paramiko

from connectors.documents import DocumentsAdapter
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
