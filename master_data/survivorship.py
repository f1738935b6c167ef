"""Survivorship: which source's value becomes the golden value of each attribute, and why.

Pure: the golden store hands in the current version of every source record linked to a golden
record, and gets back one value per attribute with its lineage (which source record, which system,
which journal exchange, when, by which rule). Golden values are always derived from the sources,
never edited in place, so a merge or an unmerge re-derives them and cannot drift.

The order of the sources given never changes the result: every rule breaks its ties the same way
(most recent observation, then system, then local id, then source record id).

"Most recent" is the source's own time when it gives one: a version's *changed time* is the
record's ``updated_at`` (when the source last changed it) if stated, else ``received_at`` (when
the hub received it), and never later than ``received_at`` (a source cannot have changed a record
after sending it: a date in the future is a clock or data error, not news). An initial load of an
old export therefore does not beat a recent portal request merely by arriving later.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from master_data.nir import trusted_nir
from master_data.records import IdentityRecord

Rule = Literal["trusted_source", "most_recent", "most_complete", "most_frequent"]
RULES: tuple[str, ...] = get_args(Rule)

# The golden record's attributes. ``address`` survives as one block (line, postal code, city):
# a street from one system and a city from another would describe nowhere.
Attribute = Literal[
    "birth_name",
    "used_name",
    "given_names",
    "birth_date",
    "sex",
    "birth_place",
    "nir",
    "address",
    "email",
    "phone",
]
ATTRIBUTES: tuple[str, ...] = get_args(Attribute)
BIRTH_IDENTITY: tuple[str, ...] = ("birth_name", "given_names", "birth_date", "sex", "birth_place", "nir")


@dataclass(frozen=True)
class AttributeRule:
    """How one attribute survives; ``order`` (trusted systems first) also breaks other rules' ties."""

    rule: Rule
    order: tuple[str, ...] = ()


@dataclass(frozen=True)
class SurvivorshipPolicy:
    rules: Mapping[str, AttributeRule] = field(default_factory=dict)

    def rule_for(self, attribute: str) -> AttributeRule:
        return self.rules.get(attribute) or default_rule(attribute)


def default_rule(attribute: str) -> AttributeRule:
    """État civil wins for the birth identity; contact details follow the latest news."""
    if attribute in BIRTH_IDENTITY:
        return AttributeRule("trusted_source", ("etat_civil",))
    return AttributeRule("most_recent")


@dataclass(frozen=True)
class SourceVersion:
    """One stored version of a source record: what a system said about a person, and when."""

    id: int
    record: IdentityRecord
    received_at: datetime
    exchange_id: int | None = None

    @property
    def system(self) -> str:
        return self.record.system

    @property
    def local_id(self) -> str:
        return self.record.local_id

    @property
    def updated_at(self) -> datetime | None:
        """The source's own modification time of the record, if it gave a valid one."""
        return parse_updated_at(self.record.updated_at)

    @property
    def changed_at(self) -> datetime:
        """When the source last changed the record as far as the hub knows: its ``updated_at``
        when given (but not after ``received_at``), else ``received_at``."""
        updated = self.updated_at
        return self.received_at if updated is None else min(updated, self.received_at)


def parse_updated_at(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime: a date alone is its midnight, a time
    without an offset is UTC. None for None or an invalid value (imports refuse those)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class Lineage:
    """Where a golden value comes from."""

    source_record_id: int
    system: str
    local_id: str
    exchange_id: int | None
    observed_at: datetime
    rule: str
    updated_at: datetime | None = None  # the source's own time (what ``most_recent`` compared)

    def as_json(self) -> dict[str, Any]:
        data = {
            "source_record_id": self.source_record_id,
            "system": self.system,
            "local_id": self.local_id,
            "exchange_id": self.exchange_id,
            "observed_at": self.observed_at.isoformat(),
            "rule": self.rule,
        }
        # Only when the source gave one: versions written before sources could say so compare equal.
        if self.updated_at is not None:
            data["updated_at"] = self.updated_at.isoformat()
        return data


@dataclass(frozen=True)
class GoldenValue:
    attribute: str
    value: Any  # str, list[str] (given names) or dict (address block)
    lineage: Lineage


def attribute_value(record: IdentityRecord, attribute: str) -> Any:
    """The value a record gives for an attribute, or None when it gives none."""
    if attribute == "given_names":
        names = [name for name in record.given_names if name and name.strip()]
        return names or None
    if attribute == "address":
        block = {"line": record.address, "postal_code": record.postal_code, "city": record.city}
        return block if any(_present(v) for v in block.values()) else None
    if attribute == "nir":
        # Only a NIR whose key is valid and which agrees with the record's sex and birth date (not
        # a parent's, held for a child "ayant droit") may become the golden one and be sent on.
        return trusted_nir(record.nir, record.sex, record.birth_date)
    value = getattr(record, attribute)
    return value if _present(value) else None


def derive(sources: Sequence[SourceVersion], policy: SurvivorshipPolicy) -> dict[str, GoldenValue]:
    """The golden value of every attribute some source gives, each with its lineage."""
    golden: dict[str, GoldenValue] = {}
    for attribute in ATTRIBUTES:
        offers = [(s, v) for s in sources if (v := attribute_value(s.record, attribute)) is not None]
        if not offers:
            continue
        rule = policy.rule_for(attribute)
        source, value = _choose(rule, offers)
        golden[attribute] = GoldenValue(
            attribute,
            value,
            Lineage(
                source.id,
                source.system,
                source.local_id,
                source.exchange_id,
                source.received_at,
                rule.rule,
                source.updated_at,
            ),
        )
    return golden


def _choose(rule: AttributeRule, offers: list[tuple[SourceVersion, Any]]) -> tuple[SourceVersion, Any]:
    def recency(offer: tuple[SourceVersion, Any]) -> tuple:
        source = offer[0]
        # Later first (the source's own time when it gives one, see SourceVersion.changed_at);
        # then a fixed order so that equal times never depend on the input order.
        return (-source.changed_at.timestamp(), _trust(rule.order, source.system), *_identity(source))

    if rule.rule == "trusted_source":
        return min(offers, key=lambda o: (_trust(rule.order, o[0].system), *recency(o)))
    if rule.rule == "most_recent":
        return min(offers, key=recency)
    if rule.rule == "most_complete":
        return min(offers, key=lambda o: (*(-n for n in _completeness(o[1])), *recency(o)))
    # most_frequent: the value most sources agree on (compared folded), its latest spelling.
    counts: dict[Any, int] = {}
    for _source, value in offers:
        counts[_fold_value(value)] = counts.get(_fold_value(value), 0) + 1
    return min(offers, key=lambda o: (-counts[_fold_value(o[1])], *recency(o)))


def _trust(order: tuple[str, ...], system: str) -> int:
    return order.index(system) if system in order else len(order)


def _identity(source: SourceVersion) -> tuple[str, str, int]:
    return (source.system, source.local_id, source.id)


def _completeness(value: Any) -> tuple[int, int]:
    """(parts given, characters given): more given names, fuller address blocks, longer values."""
    if isinstance(value, dict):
        parts = [v for v in value.values() if _present(v)]
        return len(parts), sum(len(str(v)) for v in parts)
    if isinstance(value, list):
        return len(value), sum(len(v) for v in value)
    return 1, len(str(value).strip())


def _fold_value(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _fold_value(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_fold_value(v) for v in value)
    if isinstance(value, str):
        plain = unicodedata.normalize("NFKD", value)
        return " ".join("".join(c for c in plain if not unicodedata.combining(c)).casefold().split())
    return value


def _present(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or bool(value.strip()))
