"""In-memory records of the school-services system: families, children, enrolments.

Plain Python with no HTTP, so the rules (find-or-create by identity, one live enrolment per child,
year and kind, the cancel transition) read in one place and tests can inspect the counters.
"""

from __future__ import annotations

import itertools
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.ecole.idempotency import IdempotencyStore

KINDS = ("school", "periscolaire", "creche")
SCHOOL_LEVELS = ("TPS", "PS", "MS", "GS", "CP", "CE1", "CE2", "CM1", "CM2")
LIVE_STATUSES = ("requested", "accepted")
DECISIONS = ("accepted", "refused")
LINK_EVENTS = ("merged", "unmerged")


class DomainError(Exception):
    """A business rule refused the request; carries the HTTP status and the error code."""

    def __init__(
        self, status_code: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}


def identity_key(*parts: str | date) -> tuple[str, ...]:
    """Accent-, case- and spacing-insensitive identity, as agents compare names at the counter."""
    key = []
    for part in parts:
        if isinstance(part, date):
            key.append(part.isoformat())
            continue
        text = unicodedata.normalize("NFKD", part)
        text = "".join(c for c in text if not unicodedata.combining(c))
        key.append(" ".join(text.replace("-", " ").replace("'", " ").upper().split()))
    return tuple(key)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class EcoleState:
    """Everything the back-end knows; handlers run on one event loop, tests read from others."""

    families: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrolments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Notices of the citizen repository (the hub): which of our records are one person.
    citizen_links: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: IdempotencyStore = field(default_factory=IdempotencyStore)
    counters: dict[str, int] = field(
        default_factory=lambda: {
            "families_created": 0,
            "children_created": 0,
            "enrolments_created": 0,
            "enrolments_cancelled": 0,
            "citizen_links_received": 0,
        }
    )
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def enrolments_created(self) -> int:
        return self.counters["enrolments_created"]

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    # Families -------------------------------------------------------------------------------
    def find_or_create_family(self, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        adult = data["responsible"]
        key = identity_key(adult["birth_name"], adult["first_names"], adult["birth_date"])
        with self._lock:
            for family in self.families.values():
                if family["_identity"] == key:
                    return family, False
            family = {
                "id": self._new_id("FAM"),
                **data,
                "citizen_id": None,
                "children": [],
                "created_at": _now(),
                "_identity": key,
            }
            self.families[family["id"]] = family
            self.counters["families_created"] += 1
            return family, True

    def family(self, family_id: str) -> dict[str, Any]:
        try:
            return self.families[family_id]
        except KeyError:
            raise DomainError(404, "family_not_found", f"no family {family_id!r}") from None

    def search_families(
        self, birth_name: str, birth_date: date | None, first_names: str | None
    ) -> list[dict[str, Any]]:
        wanted_name = identity_key(birth_name)[0]
        wanted_first = identity_key(first_names)[0] if first_names else None
        found = []
        for family in list(self.families.values()):
            name, first, born = family["_identity"]
            if name != wanted_name:
                continue
            if birth_date is not None and born != birth_date.isoformat():
                continue
            if wanted_first is not None and first != wanted_first:
                continue
            found.append(family)
        return found

    # Children -------------------------------------------------------------------------------
    def find_or_create_child(self, family_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if data["birth_date"] > date.today():
            raise DomainError(422, "invalid_birth_date", "a child's birth date is in the past")
        key = identity_key(data["birth_name"], data["first_names"], data["birth_date"])
        with self._lock:
            family = self.family(family_id)
            for child_id in family["children"]:
                child = self.children[child_id]
                if child["_identity"] == key:
                    return child, False
            child = {
                "id": self._new_id("CHD"),
                "family_id": family_id,
                **data,
                "citizen_id": None,
                "created_at": _now(),
                "_identity": key,
            }
            self.children[child["id"]] = child
            family["children"].append(child["id"])
            self.counters["children_created"] += 1
            return child, True

    # Citizen links --------------------------------------------------------------------------
    def link_citizen_records(self, data: dict[str, Any]) -> dict[str, Any]:
        """Apply a notice of the citizen repository to the records it names, all or none.

        ``merged``: the records are one person, ``citizen_id``; the citizen id it ``replaces`` is
        retired (our records still carrying it take the new one). ``unmerged``: the records are no
        longer the person ``split_from``; they are ``citizen_id``. The software never merges its
        own records on such a notice: agents see them side by side and decide.
        """
        event = data["event"]
        other_key = "replaces" if event == "merged" else "split_from"
        if not data.get(other_key):
            raise DomainError(
                422,
                "invalid_request",
                f"a {event} notice names the citizen id in {other_key!r}",
                {"field": other_key},
            )
        with self._lock:
            records = [self._person_record(local_id) for local_id in data["records"]]
            unknown = [
                local_id for local_id, record in zip(data["records"], records, strict=True) if record is None
            ]
            if unknown:
                raise DomainError(
                    422, "unknown_record", "no family or child with these ids", {"records": unknown}
                )
            if event == "merged":
                named = {record["id"] for record in records}
                records += [
                    record
                    for record in self._people()
                    if record["citizen_id"] == data["replaces"] and record["id"] not in named
                ]
            for record in records:
                record["citizen_id"] = data["citizen_id"]
            link = {
                "id": self._new_id("LNK"),
                **data,
                "applied_to": sorted(record["id"] for record in records),
                "received_at": _now(),
            }
            self.citizen_links[link["id"]] = link
            self.counters["citizen_links_received"] += 1
            return link

    def citizen(self, citizen_id: str) -> dict[str, Any]:
        """Our records of one person of the citizen repository, and the notices that said so."""
        with self._lock:
            records = [
                {"id": record["id"], "kind": "child" if "family_id" in record else "family"}
                for record in self._people()
                if record["citizen_id"] == citizen_id
            ]
            links = [
                link["id"]
                for link in self.citizen_links.values()
                if citizen_id in (link["citizen_id"], link.get("replaces"), link.get("split_from"))
            ]
        if not records and not links:
            raise DomainError(404, "citizen_not_found", f"no record linked to citizen {citizen_id!r}")
        return {"citizen_id": citizen_id, "records": records, "links": links}

    def _person_record(self, local_id: str) -> dict[str, Any] | None:
        return self.families.get(local_id) or self.children.get(local_id)

    def _people(self) -> list[dict[str, Any]]:
        return [*self.families.values(), *self.children.values()]

    # Enrolments -----------------------------------------------------------------------------
    def create_enrolment(self, data: dict[str, Any]) -> dict[str, Any]:
        child = self.children.get(data["child_id"])
        if child is None:
            raise DomainError(422, "unknown_child", f"no child {data['child_id']!r}", {"field": "child_id"})
        _check_enrolment(data)
        with self._lock:
            for other in self.enrolments.values():
                if (
                    other["child_id"] == data["child_id"]
                    and other["school_year"] == data["school_year"]
                    and other["kind"] == data["kind"]
                    and other["status"] in LIVE_STATUSES
                ):
                    raise DomainError(
                        409,
                        "duplicate_enrolment",
                        "this child already has a live enrolment of this kind for this year",
                        {"enrolment_id": other["id"]},
                    )
            enrolment = {
                "id": self._new_id("ENR"),
                **data,
                "family_id": child["family_id"],
                "status": "requested",
                "created_at": _now(),
                "updated_at": None,
                "cancel_reason": None,
            }
            self.enrolments[enrolment["id"]] = enrolment
            self.counters["enrolments_created"] += 1
            return enrolment

    def enrolment(self, enrolment_id: str) -> dict[str, Any]:
        try:
            return self.enrolments[enrolment_id]
        except KeyError:
            raise DomainError(404, "enrolment_not_found", f"no enrolment {enrolment_id!r}") from None

    def cancel_enrolment(self, enrolment_id: str, reason: str | None) -> dict[str, Any]:
        """Cancel a live enrolment; cancelling twice is a no-op, like a DELETE should be."""
        with self._lock:
            enrolment = self.enrolment(enrolment_id)
            if enrolment["status"] == "cancelled":
                return enrolment
            if enrolment["status"] not in LIVE_STATUSES:
                raise DomainError(
                    409,
                    "invalid_transition",
                    f"an enrolment in status {enrolment['status']!r} cannot be cancelled",
                )
            enrolment.update(status="cancelled", updated_at=_now(), cancel_reason=reason)
            self.counters["enrolments_cancelled"] += 1
            return enrolment

    def decide(self, enrolment_id: str, decision: str) -> dict[str, Any]:
        """What an agent does in the back-office; tests and the demo call it directly."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
        with self._lock:
            enrolment = self.enrolment(enrolment_id)
            if enrolment["status"] != "requested":
                raise DomainError(409, "invalid_transition", f"enrolment is already {enrolment['status']}")
            enrolment.update(status=decision, updated_at=_now())
            return enrolment


def _check_enrolment(data: dict[str, Any]) -> None:
    start, _, end = data["school_year"].partition("-")
    if int(end) != int(start) + 1:
        raise DomainError(
            422,
            "invalid_school_year",
            "school_year spans two consecutive years, e.g. 2025-2026",
            {"field": "school_year"},
        )
    if data["kind"] == "school" and data.get("level") not in SCHOOL_LEVELS:
        raise DomainError(
            422,
            "invalid_level",
            f"a school enrolment needs a level among {list(SCHOOL_LEVELS)}",
            {"field": "level"},
        )


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the API shows it: without the private identity key."""
    return {k: v for k, v in record.items() if not k.startswith("_")}
