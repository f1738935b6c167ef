"""The composition root: one place builds the hub from ``config/`` and hands out its parts.

Entry points (API, worker, CLI, demo, tests) all start from :func:`build_hub`, so they run the
same definitions against the same database with the same connectors.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from connectors.gateway import Gateway, SystemPolicy
from connectors.soap import SoapAdapter, wsdl_operations
from hub.auth import ClientExists, ClientRegistry
from hub.config import HubConfig, load_config
from hub.db.engine import Database, database_url
from hub.db.migrate import upgrade
from hub.flows import Flow, load_flows
from hub.journal import JournalRecorder
from hub.mapping import Mapping, load_mappings
from hub.metrics import Metrics
from hub.yamlfile import ConfigError, ConfigIssue

CALLABLE_KINDS = ("soap",)


@dataclass
class Definitions:
    """Everything an integration engineer wrote, loaded and cross-checked."""

    config: HubConfig
    mappings: dict[str, Mapping]
    flows: dict[str, Flow]


def load_definitions(config_path: str | Path | None = None) -> Definitions:
    """Load hub.yaml, every mapping and every flow; raise :class:`ConfigError` with all issues."""
    config, document = load_config(config_path)
    mappings = load_mappings(config.resolve(config.paths.mappings))
    flows = load_flows(config.resolve(config.paths.flows), config, mappings)
    issues: list[ConfigIssue] = []
    for name, system in config.systems.items():
        if system.wsdl is not None and not config.resolve(system.wsdl).is_file():
            issues.append(
                document.issue(
                    ("systems", name, "wsdl"),
                    f"systems.{name}.wsdl: file {config.resolve(system.wsdl)} not found",
                )
            )
    operations = {
        name: wsdl_operations(config.resolve(system.wsdl))
        for name, system in config.systems.items()
        if system.wsdl is not None and config.resolve(system.wsdl).is_file()
    }
    for flow in flows.values():
        for index, step in enumerate(flow.steps):
            call = step.call or step.wait_until
            if call and call.system in operations and call.operation not in operations[call.system]:
                issues.append(
                    flow.document.issue(
                        ("steps", index, step.kind, "operation"),
                        f"system {call.system!r} has no operation {call.operation!r}; valid (its WSDL): "
                        f"{', '.join(sorted(operations[call.system]))}",
                    )
                )
            if call and config.systems[call.system].kind not in CALLABLE_KINDS:
                kind = config.systems[call.system].kind
                issues.append(
                    flow.document.issue(
                        ("steps", index, step.kind, "system"),
                        f"system {call.system!r} is of kind {kind}, which flows cannot call yet "
                        f"(callable kinds: {', '.join(CALLABLE_KINDS)})",
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
    return Definitions(config, mappings, flows)


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
    _adapters: dict[str, SoapAdapter] = field(default_factory=dict)
    _gateways: dict[str, Gateway] = field(default_factory=dict)
    _adapters_lock: threading.Lock = field(default_factory=threading.Lock)
    work_available: threading.Event = field(default_factory=threading.Event)

    def adapter(self, system: str) -> SoapAdapter:
        """The instrumented client of a system, built once (its WSDL parsed once)."""
        with self._adapters_lock:
            adapter = self._adapters.get(system)
            if adapter is None:
                adapter = self._adapters[system] = self._build_adapter(system)
            return adapter

    def _build_adapter(self, system: str) -> SoapAdapter:
        spec = self.config.systems[system]
        policy = SystemPolicy(
            timeout_s=spec.timeout_s,
            max_attempts=1,  # the worker reschedules through the outbox instead of sleeping
            breaker_failures=spec.breaker.failures,
            breaker_reset_s=spec.breaker.reset_s,
            max_concurrency=spec.max_concurrency,
        )
        gateway = self._gateways[system] = Gateway(system, policy, self.recorder, digest_key=self.digest_key)
        credentials = spec.credentials
        return SoapAdapter(
            system=system,
            wsdl_path=self.config.resolve(spec.wsdl) if spec.wsdl else Path(),
            endpoint=spec.endpoint,
            gateway=gateway,
            timeout_s=spec.timeout_s,
            username=credentials.username if credentials else None,
            password=credentials.password if credentials else None,
        )

    @property
    def digest_key(self) -> bytes:
        """Key of the journal's payload digests, derived from (and kept apart from) the pseudonym key."""
        return hmac.new(self.pseudonym_key, b"hub journal payload digests", hashlib.sha256).digest()

    def wake_workers(self) -> None:
        self.work_available.set()

    def close(self) -> None:
        self.db.dispose()


def build_hub(config_path: str | Path | None = None, url: str | None = None, *, migrate: bool = True) -> Hub:
    definitions = load_definitions(config_path)
    config = definitions.config
    data_dir = config.resolve(config.paths.data)
    url = url or database_url(data_dir / "hub.db")
    if migrate:
        upgrade(url)
    db = Database(url)
    gateways: dict[str, Gateway] = {}
    metrics = Metrics(db, lambda: {name: g.breaker_state for name, g in list(gateways.items())})
    recorder = JournalRecorder(db, metrics.exchanges)
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
        pseudonym_key=pseudonym_key(data_dir, url),
        recorder=recorder,
        metrics=metrics,
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
