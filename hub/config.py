"""``config/hub.yaml``: the municipality, its back-end systems, API clients and processing purposes.

Validated strictly at load (unknown keys, duplicates, wrong types, dangling references) so that a
typo stops the hub at start-up with ``file:line`` instead of misrouting a citizen's data later.
Secrets are never written in the file: credential values must be ``${env:NAME}`` references.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from hub.validation import validate_document
from hub.yamlfile import ConfigError, ConfigIssue, YamlDocument, load_yaml
from master_data.communes import CommuneFileError, CommuneTable, default_table, load_cog_movements
from master_data.survivorship import (
    ATTRIBUTES,
    Attribute,
    AttributeRule,
    Rule,
    SurvivorshipPolicy,
    default_rule,
)

DEFAULT_CONFIG = Path("config/hub.yaml")
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=64)]
Scope = Literal[
    "portal",
    "requests:read_all",
    "audit",
    "admin",
    "citizens:read",
    "stewardship:read",
    "stewardship:write",
    "documents:read",
]
# RGPD art. 6(1) (a) to (f)
LegalBasis = Literal[
    "consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"
]
SCOPES: tuple[str, ...] = get_args(Scope)
LEGAL_BASES: tuple[str, ...] = get_args(LegalBasis)


class Strict(BaseModel):
    # strict: a quoted number ("10") or a float where a count goes is a mistake in the file, not a
    # value to coerce silently; only paths convert (YAML has no path type).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Municipality(Strict):
    name: str = Field(min_length=1)
    insee_code: str = Field(pattern=r"^(\d{5}|2[AB]\d{3})$", description="code officiel (COG)")


class RetryPolicy(Strict):
    max_attempts: int = Field(5, ge=1, le=50)
    backoff_initial_s: float = Field(0.2, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        return self

    max_elapsed_s: float = Field(3600.0, gt=0, description="after this, the request is dead-lettered")


class BreakerPolicy(Strict):
    failures: int = Field(5, ge=1, description="consecutive failures that open the circuit")
    reset_s: float = Field(30.0, gt=0, description="open time before a half-open probe")
    failure_rate: float | None = Field(
        None, gt=0, le=1, description="also open when this share of the last `window` calls failed"
    )
    window: int = Field(20, ge=2, le=1000, description="calls the failure rate is measured over")


class Credentials(Strict):
    username: str | None = None
    password: str | None = None
    token: str | None = None
    api_key: str | None = None


class SftpFiles(Strict):
    """Where a file-based system takes files and leaves its acknowledgements (remote folders)."""

    outgoing: str = Field("inbox", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
    acknowledgements: str = Field("outbox", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
    headers: dict[Literal["billing", "aid_payment"], str] = Field(
        default_factory=dict, description="header line written first in each file of that kind"
    )

    @field_validator("outgoing", "acknowledgements")
    @classmethod
    def _no_parent(cls, value: str) -> str:
        if ".." in value.split("/") or "//" in value or value.endswith("/"):
            raise ValueError(f"{value!r}: a relative folder without '..' or empty segments")
        return value


_HTTP_KINDS = ("rest", "documents")


class SystemConfig(Strict):
    kind: Literal["soap", "rest", "sftp", "documents"]
    description: str = ""
    endpoint: str = Field(min_length=1)
    wsdl: Path | None = Field(None, strict=False, description="local WSDL file, relative to the config file")
    openapi: Path | None = Field(
        None, strict=False, description="local OpenAPI file (rest), relative to the config file"
    )
    data_categories: dict[str, list[str]] = Field(
        default_factory=dict, description="soap: personal-data categories each operation sends"
    )
    credentials: Credentials | None = None
    api_key_header: str = Field("X-Api-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    timeout_s: float = Field(10.0, gt=0, le=300)
    max_concurrency: int = Field(8, ge=1, le=256)
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    allow_hosts: list[str] = Field(
        default_factory=list, description="rest/documents: hosts (host:port) besides the endpoint's"
    )
    allow_redirects: bool = Field(
        False, description="rest/documents: follow redirects (allow-list still applies)"
    )
    max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1024**3)
    health_path: str = Field("health", description="rest/documents: path `hub systems check` reads")
    known_hosts: str | None = Field(None, description="pinned SSH host key line (sftp)")
    private_key_file: Path | None = Field(
        None, strict=False, description="sftp: private key file instead of a password"
    )
    files: SftpFiles | None = Field(None, description="sftp: remote folders and file headers")

    @model_validator(mode="after")
    def _kind_needs(self) -> SystemConfig:
        if self.kind == "soap" and self.wsdl is None:
            raise ValueError("a soap system needs 'wsdl': the local WSDL file (never fetched)")
        if self.kind != "soap" and self.wsdl is not None:
            raise ValueError(f"'wsdl' only applies to soap systems, not {self.kind}")
        if self.kind == "rest" and self.openapi is None:
            raise ValueError("a rest system needs 'openapi': the local OpenAPI file of its operations")
        if self.kind != "rest" and self.openapi is not None:
            raise ValueError(f"'openapi' only applies to rest systems, not {self.kind}")
        if self.kind != "soap" and self.data_categories:
            raise ValueError("'data_categories' is for soap systems (rest: x-data-categories in the OpenAPI)")
        if self.kind == "sftp" and not self.known_hosts:
            raise ValueError(
                "an sftp system needs 'known_hosts': the server's host key line, checked with its "
                "administrators (unknown keys are refused, never trusted on first use)"
            )
        if self.kind != "sftp" and (self.known_hosts or self.files or self.private_key_file):
            raise ValueError(
                f"'known_hosts', 'files' and 'private_key_file' only apply to sftp, not {self.kind}"
            )
        if self.kind not in _HTTP_KINDS and (self.allow_hosts or self.allow_redirects):
            raise ValueError("'allow_hosts' and 'allow_redirects' only apply to rest and documents systems")
        scheme = self.endpoint.split("://", 1)[0]
        expected = {
            "soap": ("http", "https"),
            "rest": ("http", "https"),
            "documents": ("http", "https"),
            "sftp": ("sftp",),
        }[self.kind]
        if scheme not in expected:
            raise ValueError(
                f"endpoint {self.endpoint!r} must start with {' or '.join(s + '://' for s in expected)}"
            )
        self._check_credentials()
        return self

    def _check_credentials(self) -> None:
        c = self.credentials or Credentials()
        if self.kind in _HTTP_KINDS:
            given = [n for n in ("token", "api_key") if getattr(c, n)] + (["basic"] if c.password else [])
            if len(given) > 1:
                raise ValueError(f"credentials: give one of token, api_key or username+password, not {given}")
            if (c.username is None) != (c.password is None):
                raise ValueError("credentials: basic auth needs both username and password")
        elif self.kind == "soap":
            if c.token or c.api_key:
                raise ValueError("credentials: soap systems take username+password (WS-Security)")
            if (c.username is None) != (c.password is None):
                raise ValueError("credentials: WS-Security needs both username and password")
        else:
            if c.token or c.api_key or c.username:
                raise ValueError("credentials: sftp takes a password (the user is in the endpoint URL)")
            if (c.password is None) == (self.private_key_file is None):
                raise ValueError("an sftp system needs credentials.password or private_key_file (one)")


class ClientConfig(Strict):
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the client key")
    scopes: list[Scope] = Field(min_length=1)


class Purpose(Strict):
    description: str = Field(min_length=1)
    legal_basis: LegalBasis
    legal_reference: str = ""
    data_categories: list[str] = Field(min_length=1)
    retention: str = Field(description="ISO 8601 duration, e.g. P5Y or P6M")

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        match = _DURATION.match(value)
        if not match or not any(match.groups()):
            raise ValueError(f"retention {value!r} must be an ISO 8601 duration such as P5Y, P6M")
        return value


class Paths(Strict):
    flows: Path = Field(Path("../flows"), strict=False)
    mappings: Path = Field(Path("../mappings"), strict=False)
    data: Path = Field(Path("../var"), strict=False)


class WorkerSettings(Strict):
    lease_s: float = Field(30.0, gt=0, description="a claimed message is reclaimed after this")
    poll_interval_s: float = Field(0.05, gt=0)
    concurrency: int = Field(4, ge=1, le=64)
    batch: int = Field(16, ge=1, le=500)


class ApiSettings(Strict):
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    db_concurrency: int = Field(8, ge=1, le=256, description="API calls using the database at once")


class SurvivorshipRule(Strict):
    rule: Rule
    order: list[Name] = Field(
        default_factory=list,
        description="systems in trust order (trusted_source); default: master_data.trusted_sources",
    )


class MatchThresholds(Strict):
    """Posterior match probabilities: at or above ``upper`` link, below ``lower`` a new record."""

    upper: float = Field(0.95, gt=0, lt=1)
    lower: float = Field(0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> MatchThresholds:
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower:g}) must not exceed upper ({self.upper:g})")
        return self


class MasterDataSettings(Strict):
    """The golden citizen record: who is the same person, and which value of theirs wins."""

    portal_system: Name = Field("portal", description="source system of the identities sent with requests")
    purpose: Name | None = Field(None, description="purpose journaled for 360° views and stewardship")
    thresholds: MatchThresholds = MatchThresholds()
    trusted_sources: list[Name] = Field(default_factory=lambda: ["etat_civil"])
    survivorship: dict[Attribute, SurvivorshipRule] = Field(default_factory=dict)
    max_candidates: int = Field(
        50, ge=1, le=10_000, description="candidates scored per record: those sharing the most blocking keys"
    )
    max_key_records: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        description="a blocking key held by more records is not read in real time when the record "
        "has another key (its block would grow with the population)",
    )
    merge_event_flow: str | None = Field(
        None, description="flow run for every merge/unmerge, to tell the systems concerned"
    )
    commune_movements: Path | None = Field(
        None,
        strict=False,
        description="INSEE COG 'mouvements des communes' CSV (v_mvt_commune_<year>.csv), relative to "
        "the config file: old commune codes compare as the communes they merged into",
    )
    # The commune table, read once at load (``_master_data_checks``) or at first use.
    _communes: CommuneTable | None = PrivateAttr(None)

    def communes(self, base: Path | None = None) -> CommuneTable:
        """The commune table normalisation uses: the shipped one, plus ``commune_movements``."""
        if self._communes is None:
            if self.commune_movements is None:
                self._communes = default_table()
            else:
                path = self.commune_movements
                if base is not None and not path.is_absolute():
                    path = (base / path).resolve()
                self._communes = CommuneTable(load_cog_movements(path))
        return self._communes

    def policy(self) -> SurvivorshipPolicy:
        """The survivorship rules as the pure core takes them (unlisted attributes: defaults)."""
        rules = {}
        for attribute in ATTRIBUTES:
            given = self.survivorship.get(attribute)  # type: ignore[call-overload]
            if given is None:
                rule = default_rule(attribute)
                rules[attribute] = AttributeRule(rule.rule, tuple(self.trusted_sources) or rule.order)
            else:
                rules[attribute] = AttributeRule(given.rule, tuple(given.order or self.trusted_sources))
        return SurvivorshipPolicy(rules)


class HubConfig(Strict):
    municipality: Municipality
    systems: dict[Name, SystemConfig] = Field(default_factory=dict)
    clients: dict[Name, ClientConfig] = Field(default_factory=dict)
    purposes: dict[Name, Purpose] = Field(default_factory=dict)
    paths: Paths = Paths()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()
    master_data: MasterDataSettings = MasterDataSettings()
    # Not in the file: where it was read from, for resolving relative paths.
    source: Path = Field(DEFAULT_CONFIG, exclude=True, strict=False)

    def resolve(self, path: Path) -> Path:
        """A path written in the config, relative to the config file's folder."""
        return path if path.is_absolute() else (self.source.parent / path).resolve()


def config_path() -> Path:
    return Path(os.environ.get("HUB_CONFIG", str(DEFAULT_CONFIG)))


def load_config(path: str | Path | None = None) -> tuple[HubConfig, YamlDocument]:
    """Read and validate hub.yaml; raise :class:`ConfigError` with every issue at once."""
    path = Path(path) if path is not None else config_path()
    document = load_yaml(path)
    issues = _substitute_env(document, document.data, ())
    if issues:
        raise ConfigError(issues)
    if not isinstance(document.data, dict):
        raise ConfigError([document.issue((), "hub.yaml must be a mapping of sections")])
    document.data["source"] = str(path)
    config = validate_document(HubConfig, document)
    issues = _cross_checks(config, document)
    if issues:
        raise ConfigError(issues)
    return config, document


def _cross_checks(config: HubConfig, document: YamlDocument) -> list[ConfigIssue]:
    """Rules spanning sections, reported where the engineer would change something."""
    issues = []
    for name, system in config.systems.items():
        # A worker renews its lease before each call; a call that outlives the lease would let a
        # second worker run the same step at the same time.
        if system.timeout_s + 1 > config.worker.lease_s:
            issues.append(
                document.issue(
                    ("worker", "lease_s"),
                    (
                        f"worker.lease_s ({config.worker.lease_s:g} s) must exceed systems.{name}.timeout_s "
                        f"({system.timeout_s:g} s) by at least 1 s"
                    ),
                )
            )
    owners: dict[str, str] = {}
    for name, client in config.clients.items():
        if client.key_sha256 in owners:
            issues.append(
                document.issue(
                    ("clients", name, "key_sha256"),
                    f"clients {owners[client.key_sha256]} and {name} have the same key_sha256",
                )
            )
        owners.setdefault(client.key_sha256, name)
    return issues + _master_data_checks(config, document)


def _master_data_checks(config: HubConfig, document: YamlDocument) -> list[ConfigIssue]:
    """Survivorship may only trust systems the hub knows; the journaled purpose must exist."""
    settings = config.master_data
    known = {*config.systems, settings.portal_system}
    issues = []
    places = [
        (("master_data", "trusted_sources", i), name) for i, name in enumerate(settings.trusted_sources)
    ]
    for attribute, rule in settings.survivorship.items():
        places += [
            (("master_data", "survivorship", attribute, "order", i), n) for i, n in enumerate(rule.order)
        ]
    for location, name in places:
        if name not in known:
            issues.append(
                document.issue(
                    location,
                    f"{'.'.join(map(str, location[:-1]))}: unknown system {name!r}; "
                    f"valid: {', '.join(sorted(known))}",
                )
            )
    if settings.purpose is not None and settings.purpose not in config.purposes:
        issues.append(
            document.issue(
                ("master_data", "purpose"),
                f"master_data.purpose: unknown purpose {settings.purpose!r}; "
                f"valid: {', '.join(sorted(config.purposes))}",
            )
        )
    if settings.commune_movements is not None:
        # Read once, here: a missing or malformed file stops the hub at start-up, not at the first
        # birth place compared.
        try:
            settings.communes(config.source.parent)
        except (OSError, CommuneFileError) as exc:
            issues.append(
                document.issue(
                    ("master_data", "commune_movements"),
                    f"master_data.commune_movements: {exc}",
                )
            )
    return issues


def _substitute_env(document: YamlDocument, node: Any, location: tuple) -> list[ConfigIssue]:
    """Replace ``${env:NAME}`` / ``${env:NAME:-default}`` in place; a credential must be exactly one
    ``${env:NAME}``, with no default (a default would be a secret written in the file)."""
    issues: list[ConfigIssue] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        here = (*location, key)
        if isinstance(value, dict | list):
            issues += _substitute_env(document, value, here)
            continue
        if not isinstance(value, str):
            continue
        reference = _ENV_REF.fullmatch(value)
        if "credentials" in location and (reference is None or reference.group(2) is not None):
            issues.append(
                document.issue(
                    here,
                    (
                        f"{'.'.join(map(str, here))}: secrets are not stored in the file, "
                        f"not even as a default; write ${{env:HUB_...}} and set the variable"
                    ),
                )
            )
            continue
        variable = reference.group(1) if reference is not None else None
        given = os.environ.get(variable) if variable is not None else None
        if "credentials" in location and given is not None and not given.strip():
            # An empty variable (HUB_ECOLE_TOKEN= in an env file) is a secret not given: taken as
            # set, every call would go out unauthenticated.
            issues.append(
                document.issue(
                    here,
                    (
                        f"{'.'.join(map(str, here))}: environment variable {variable} is set "
                        "but empty; a credential needs its value"
                    ),
                )
            )
            continue
        missing = [
            m.group(1)
            for m in _ENV_REF.finditer(value)
            if m.group(1) not in os.environ and m.group(2) is None
        ]
        if missing:
            issues.append(
                document.issue(
                    here, (f"{'.'.join(map(str, here))}: environment variable {missing[0]} is not set")
                )
            )
            continue
        node[key] = _ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    return issues
