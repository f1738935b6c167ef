"""The composition root: one place builds the hub from ``config/`` and hands out its parts.

Entry points (API, worker, CLI, demo, tests) all start from :func:`build_hub`, so they run the
same definitions against the same database with the same connectors.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paramiko
from lxml import etree
from sqlalchemy.exc import DBAPIError

from connectors.exchange import CallContext, digest
from connectors.finances import FinancesConnector
from connectors.gateway import Gateway
from connectors.ged import GedConnector
from connectors.rest import load_openapi
from connectors.sftp import SftpEndpoint, pinned_key
from connectors.soap import wsdl_operations
from hub.auth import ClientExists, ClientRegistry
from hub.breakers import SqlBreakerBoard
from hub.config import HubConfig, load_config
from hub.db.engine import Database, database_url, engine_url, unusable
from hub.db.migrate import upgrade
from hub.flows import Flow, load_flows
from hub.ids import new_id
from hub.journal import JournalRecorder, inbound_row, journal_key
from hub.journal_checkpoint import CheckpointSigner, journal_origin
from hub.mapping import Mapping, load_mappings
from hub.metrics import Metrics
from hub.systems import build_client, policy_of
from hub.yamlfile import ConfigError, ConfigIssue, YamlDocument

log = logging.getLogger("hub.runtime")

CALLABLE_KINDS = ("soap", "rest", "sftp", "documents")


class SystemClient(Protocol):
    """What the flow runner calls: one system's operations by name, through its gateway."""

    def call(
        self, operation: str, message: Any, context: CallContext, *, retry: bool = True
    ) -> dict[str, Any]: ...


@dataclass
class Definitions:
    """Everything an integration engineer wrote, loaded and cross-checked."""

    config: HubConfig
    mappings: dict[str, Mapping]
    flows: dict[str, Flow]
    # Operations flows may call, per system, with the personal-data categories each sends
    # (None: the operation does not declare them yet).
    operations: dict[str, dict[str, tuple[str, ...] | None]] = field(default_factory=dict)


def system_operations(
    config: HubConfig, document: YamlDocument
) -> tuple[dict[str, dict[str, tuple[str, ...] | None]], list[ConfigIssue]]:
    """Per system, the operations flows may call and their data categories, read from the local
    WSDL or OpenAPI file (SOAP, REST) or the connector of the kind (SFTP files, GED)."""
    catalogue: dict[str, dict[str, tuple[str, ...] | None]] = {}
    issues: list[ConfigIssue] = []
    for name, system in config.systems.items():
        if system.kind == "soap":
            assert system.wsdl is not None
            path = config.resolve(system.wsdl)
            if not path.is_file():
                issues.append(
                    document.issue(("systems", name, "wsdl"), f"systems.{name}.wsdl: file {path} not found")
                )
                continue
            try:
                operations = wsdl_operations(path)
            except etree.XMLSyntaxError as exc:  # the hub would fail at the first call instead
                issues.append(
                    document.issue(
                        ("systems", name, "wsdl"),
                        f"systems.{name}.wsdl: {path}:{exc.lineno}: not a well-formed WSDL: {exc.msg}",
                    )
                )
                continue
            for operation in system.data_categories:
                if operation not in operations:
                    issues.append(
                        document.issue(
                            ("systems", name, "data_categories", operation),
                            f"systems.{name}.data_categories: the WSDL has no operation {operation!r}; "
                            f"valid: {', '.join(sorted(operations))}",
                        )
                    )
            catalogue[name] = {
                op: tuple(system.data_categories[op]) if op in system.data_categories else None
                for op in operations
            }
        elif system.kind == "rest":
            assert system.openapi is not None
            try:
                rest_operations = load_openapi(config.resolve(system.openapi))
            except ValueError as exc:
                issues.append(document.issue(("systems", name, "openapi"), f"systems.{name}.openapi: {exc}"))
                continue
            catalogue[name] = {op.name: op.data_categories for op in rest_operations.values()}
        elif system.kind == "sftp":
            catalogue[name] = dict(FinancesConnector.DATA_CATEGORIES)
            try:
                pinned_key(system.known_hosts or "", SftpEndpoint.parse(system.endpoint))
            except (ValueError, paramiko.SSHException) as exc:
                issues.append(
                    document.issue(("systems", name, "known_hosts"), f"systems.{name}.known_hosts: {exc}")
                )
            key_file = system.private_key_file
            if key_file is not None and not config.resolve(key_file).is_file():
                issues.append(
                    document.issue(
                        ("systems", name, "private_key_file"),
                        f"systems.{name}.private_key_file: file {config.resolve(key_file)} not found",
                    )
                )
            elif key_file is not None:
                try:  # read now: an unreadable key would otherwise fail every transfer, later
                    paramiko.PKey.from_path(config.resolve(key_file))
                except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
                    encrypted = isinstance(exc, paramiko.PasswordRequiredException) or "encrypted" in str(exc)
                    reason = (
                        "the key is encrypted; give the hub an unencrypted key (file mode 0600)"
                        if encrypted
                        else f"not a private key paramiko can read ({exc or type(exc).__name__})"
                    )
                    issues.append(
                        document.issue(
                            ("systems", name, "private_key_file"),
                            f"systems.{name}.private_key_file: {config.resolve(key_file)}: {reason}",
                        )
                    )
        else:
            catalogue[name] = {op: GedConnector.DATA_CATEGORIES[op] for op in GedConnector.FLOW_OPERATIONS}
    return catalogue, issues


def load_definitions(config_path: str | Path | None = None) -> Definitions:
    """Load hub.yaml, every mapping and every flow; raise :class:`ConfigError` with all issues."""
    config, document = load_config(config_path)
    # A mistyped folder would load no flow at all and answer every request 404 unknown_flow.
    missing = [
        document.issue(("paths", name), f"paths.{name}: no folder {folder} (relative to hub.yaml)")
        for name in ("mappings", "flows")
        if not (folder := config.resolve(getattr(config.paths, name))).is_dir()
    ]
    if missing:
        raise ConfigError(missing)
    mappings = load_mappings(config.resolve(config.paths.mappings))
    flows = load_flows(config.resolve(config.paths.flows), config, mappings)
    catalogue, issues = system_operations(config, document)
    for flow in flows.values():
        allowed = set(config.purposes[flow.spec.purpose].data_categories)
        for index, step in enumerate(flow.steps):
            filed = step.file_document
            if filed is not None and not set(filed.data_categories) <= allowed:
                outside = ", ".join(sorted(set(filed.data_categories) - allowed))
                issues.append(
                    flow.document.issue(
                        ("steps", index, "file_document", "data_categories"),
                        f"the document holds {outside}, outside the data categories of purpose "
                        f"{flow.spec.purpose!r} ({', '.join(sorted(allowed))})",
                    )
                )
            call = step.call or step.wait_until
            if call is None or call.system not in catalogue:
                continue
            operations = catalogue[call.system]
            where = ("steps", index, step.kind, "operation")
            if call.operation not in operations:
                issues.append(
                    flow.document.issue(
                        where,
                        f"system {call.system!r} has no operation {call.operation!r}; valid "
                        f"({_source(config, call.system)}): {', '.join(sorted(operations))}",
                    )
                )
                continue
            categories = operations[call.operation]
            if categories is None:
                issues.append(
                    flow.document.issue(
                        where,
                        f"{call.system}.{call.operation} does not declare the personal-data categories it "
                        f"sends: add systems.{call.system}.data_categories.{call.operation} to hub.yaml",
                    )
                )
            elif not set(categories) <= allowed:
                outside = ", ".join(sorted(set(categories) - allowed))
                issues.append(
                    flow.document.issue(
                        where,
                        f"{call.system}.{call.operation} sends {outside}, "
                        f"outside the data categories of purpose {flow.spec.purpose!r} "
                        f"({', '.join(sorted(allowed))})",
                    )
                )
    event_flow = config.master_data.merge_event_flow
    if event_flow is not None and event_flow not in flows:
        issues.append(
            document.issue(
                ("master_data", "merge_event_flow"),
                f"master_data.merge_event_flow: no flow {event_flow!r}; valid: {', '.join(sorted(flows))}",
            )
        )
    if issues:
        raise ConfigError(issues)
    return Definitions(config, mappings, flows, catalogue)


def _source(config: HubConfig, system: str) -> str:
    kind = config.systems[system].kind
    return {"soap": "its WSDL", "rest": "its OpenAPI file"}.get(kind, f"the {kind} connector")


@dataclass
class Hub:
    config: HubConfig
    mappings: dict[str, Mapping]
    flows: dict[str, Flow]
    db: Database
    clients: ClientRegistry
    pseudonym_key: bytes
    recorder: JournalRecorder
    metrics: Metrics
    breakers: SqlBreakerBoard
    _adapters: dict[str, SystemClient] = field(default_factory=dict)
    _gateways: dict[str, Gateway] = field(default_factory=dict)
    _adapters_lock: threading.Lock = field(default_factory=threading.Lock)
    work_available: threading.Event = field(default_factory=threading.Event)

    def adapter(self, system: str) -> SystemClient:
        """The instrumented client of a system, built once (its WSDL or OpenAPI parsed once)."""
        with self._adapters_lock:
            adapter = self._adapters.get(system)
            if adapter is None:
                gateway = self._gateway(system)
                adapter = self._adapters[system] = build_client(self.config, system, gateway, self.db)
            return adapter

    def gateway(self, system: str) -> Gateway:
        """The gateway of a system (breaker, limits, journal), shared by all its calls."""
        with self._adapters_lock:
            return self._gateway(system)

    def _gateway(self, system: str) -> Gateway:
        gateway = self._gateways.get(system)
        if gateway is None:
            gateway = self._gateways[system] = Gateway(
                system,
                policy_of(self.config.systems[system]),
                self.recorder,
                digest_key=self.digest_key,
                breaker_listener=self.breakers,
            )
        return gateway

    @functools.cached_property
    def digest_key(self) -> bytes:
        """Key of the journal's payload digests, derived from (and kept apart from) the pseudonym key;
        derived once (every accepted request digests its body with it)."""
        return hmac.new(self.pseudonym_key, b"hub journal payload digests", hashlib.sha256).digest()

    @property
    def journal_key(self) -> bytes:
        """Key of the journal rows' MACs (:func:`hub.journal.row_mac`): the recorder's, derived once
        from the pseudonym key, which lives outside the database (environment or ``var/``)."""
        return self.recorder.key

    @functools.cached_property
    def checkpoint_signer(self) -> CheckpointSigner:
        """Signs the journal's checkpoints (:mod:`hub.journal_checkpoint`) with the Ed25519 key
        derived from the journal key; its verifier key is what auditors check them with."""
        return CheckpointSigner(journal_origin(self.config.municipality.insee_code), self.journal_key)

    def request_context(
        self,
        *,
        request_id: str | None,
        flow_name: str | None,
        correlation_id: str,
        client: str,
        citizen_ref: str | None,
        golden_id: str | None = None,
        previous_attempts: int = 0,
    ) -> CallContext:
        """The journal's context of an exchange made for a request: the purpose and legal basis
        of its flow, and the citizen as the golden record once resolved (else the portal's
        pseudonym), so every row about one person names them the same way."""
        flow = self.flows.get(flow_name) if flow_name is not None else None
        purpose = flow.spec.purpose if flow is not None else None
        return CallContext(
            correlation_id=correlation_id,
            request_id=request_id,
            client=client,
            purpose=purpose,
            legal_basis=self.config.purposes[purpose].legal_basis if purpose is not None else None,
            citizen_ref=golden_id or citizen_ref,
            previous_attempts=previous_attempts,
        )

    def call_row(
        self,
        client: str,
        operation: str,
        outcome: str,
        payload: Any,
        *,
        citizen_ref: str | None = None,
        purpose: str | None = None,
        latency_ms: float = 0.0,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """The journal row of one call into the hub that files no request (a refusal, a 360° view,
        a steward's action, an auditor's read): its own correlation id, the purpose's legal basis,
        the digest of ``payload``, and the request it is about if any (an Idempotency-Key reused
        points to one); to insert in the caller's transaction."""
        legal_basis = self.config.purposes[purpose].legal_basis if purpose is not None else None
        context = CallContext(
            correlation_id=new_id(),
            request_id=request_id,
            client=client[:64],
            purpose=purpose,
            legal_basis=legal_basis,
            citizen_ref=citizen_ref,
        )
        return inbound_row(
            key=self.journal_key,
            context=context,
            operation=operation,
            outcome=outcome,
            latency_ms=latency_ms,
            payload_digest=digest(payload, self.digest_key),
            error_code=error_code,
        )

    def wake_workers(self) -> None:
        # Already set (the worker has not looked since): skip the Event's lock and notify, which
        # every accepted request would otherwise take while the worker is busy.
        if not self.work_available.is_set():
            self.work_available.set()

    def close(self) -> None:
        """Close the systems' connections (HTTP pools, SSH sessions), then the database."""
        with self._adapters_lock:
            adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            close = getattr(adapter, "close", None)
            if close is not None:
                close()
        if self._gateways:  # this process's breakers end with it
            try:
                self.breakers.forget()
            except Exception:
                log.exception("could not remove this process's breaker states")
        self.db.dispose()


def build_hub(config_path: str | Path | None = None, url: str | None = None, *, migrate: bool = True) -> Hub:
    definitions = load_definitions(config_path)
    config = definitions.config
    data_dir = config.resolve(config.paths.data)
    given = url or database_url(data_dir / "hub.db")
    url = engine_url(given)
    secret = pseudonym_key(data_dir, url)
    if migrate:
        try:
            upgrade(url, journal_key=journal_key(secret))
        except DBAPIError as exc:  # refused, no such database, authentication, permissions...
            raise unusable(given, exc) from None
    db = Database(url)
    gateways: dict[str, Gateway] = {}
    metrics = Metrics(
        db, lambda: {name: g.breaker_state for name, g in list(gateways.items())}, lambda: dict(gateways)
    )
    recorder = JournalRecorder(db, journal_key(secret), metrics.exchanges)
    clients = ClientRegistry(config.clients, db)
    try:
        clients.check_names()
    except ClientExists as exc:
        raise ConfigError([ConfigIssue(str(config.source), 1, 1, f"clients: {exc}")]) from None
    return Hub(
        config=config,
        mappings=definitions.mappings,
        flows=definitions.flows,
        db=db,
        clients=clients,
        pseudonym_key=secret,
        recorder=recorder,
        metrics=metrics,
        breakers=SqlBreakerBoard(db),
        _gateways=gateways,
    )


def pseudonym_key(data_dir: Path, url: str) -> bytes:
    """``HUB_PSEUDONYM_KEY`` (64+ hex characters), or on the embedded SQLite default a key file made
    once in the data folder. Several hosts sharing PostgreSQL must share the key, or one citizen
    would get a different reference on each host: there it must come from the environment."""
    value = os.environ.get("HUB_PSEUDONYM_KEY")
    if value:
        try:
            key = bytes.fromhex(value)
        except ValueError:
            raise ConfigError([ConfigIssue("HUB_PSEUDONYM_KEY", 1, 1, "must be hexadecimal")]) from None
        if len(key) < 32:
            raise ConfigError(
                [ConfigIssue("HUB_PSEUDONYM_KEY", 1, 1, "must hold at least 32 bytes (64 hex)")]
            )
        return key
    if not url.startswith("sqlite"):
        raise ConfigError(
            [
                ConfigIssue(
                    "HUB_PSEUDONYM_KEY",
                    1,
                    1,
                    (
                        "set HUB_PSEUDONYM_KEY (64 hex characters, e.g. from `openssl rand -hex 32`) "
                        "on every host sharing this database; it keys the journal's citizen "
                        "references and digests"
                    ),
                )
            ]
        )
    path = data_dir / "pseudonym.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name, then linked: a concurrent start reads a full key.
        temporary = data_dir / f".pseudonym.key.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            temporary.unlink()
    return bytes.fromhex(path.read_text().strip())
