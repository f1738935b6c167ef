"""Source records as they arrive: a portal identity, or a system's CSV or JSON export.

A file is read and checked whole before anything is stored: one bad row stops the import with
``file:line`` and what would be valid, and nothing of the file is written (no partial import).

Other systems' identifiers a record states (:attr:`IdentityRecord.identifiers`) are, in CSV, one
column per system named ``id_<system>`` (``id_finances``: the finance system's id of the person,
an empty cell stating none); in JSON an object ``"identifiers": {"finances": "T-3"}``. Each system
must be one the hub knows, and not the file's own (its identifier is ``local_id``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from master_data.countries import FRANCE, country_code
from master_data.identity import CitizenIdentity
from master_data.records import IdentityRecord
from master_data.survivorship import parse_updated_at

# The fields of an export row; a row's ``identifiers`` come apart (see the module docstring).
FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(IdentityRecord) if f.name not in ("system", "identifiers")
)
IDENTIFIER_COLUMN = "id_"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PLACE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SourceIssue:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class SourceFileError(Exception):
    """Every problem of a file, so the export is fixed in one pass."""

    def __init__(self, issues: list[SourceIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def identifier_problems(
    systems: Collection[str], own_system: str, known_systems: Collection[str], label: str = "identifiers"
) -> list[str]:
    """What is wrong with the systems a record's identifiers name: each must be a system the hub
    knows and not the record's own (whose identifier is its local id). ``label`` says where."""
    problems = []
    for system in systems:
        if system == own_system:
            problems.append(f"{label}: {system!r} is the record's own system (its identifier is local_id)")
        elif system not in known_systems:
            valid = ", ".join(sorted(set(known_systems) - {own_system})) or "none"
            problems.append(f"{label}: unknown system {system!r}; valid: {valid}")
    return problems


def identifier_pairs(identifiers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``{system: local id}`` as the record holds it: sorted (system, local id) pairs."""
    return tuple(sorted((system, local_id) for system, local_id in identifiers.items()))


def from_identity(identity: CitizenIdentity, system: str, local_id: str) -> IdentityRecord:
    """The portal's identity (the request's ``citizen``) as a source record."""
    address = identity.address
    line = " ".join(part for part in (address.line1, address.line2) if part) if address else None
    return IdentityRecord(
        system=system,
        local_id=local_id,
        birth_name=identity.birth_name,
        used_name=identity.used_name,
        given_names=tuple(identity.given_names),
        birth_date=identity.birth_date.isoformat(),
        sex=identity.sex,
        birth_place=identity.birth_place.insee_code,
        address=line,
        postal_code=address.postal_code if address else None,
        city=address.city if address else None,
        email=identity.email,
        phone=identity.phone,
        identifiers=identifier_pairs(identity.identifiers or {}),
        updated_at=identity.updated_at.isoformat() if identity.updated_at else None,
    )


def read_records(path: Path, system: str, known_systems: Collection[str] = ()) -> list[IdentityRecord]:
    """A CSV (header row of :data:`FIELDS` and ``id_<system>`` columns) or JSON (a list of
    objects) export of ``system``; identifiers may name only ``known_systems``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceFileError([SourceIssue(str(path), 1, f"cannot read the file: {exc}")]) from None
    if path.suffix.lower() == ".json":
        rows = _json_rows(str(path), text)
    elif path.suffix.lower() == ".csv":
        rows = _csv_rows(str(path), text, system, known_systems)
    else:
        raise SourceFileError([SourceIssue(str(path), 1, "the file must end in .csv or .json")])
    issues: list[SourceIssue] = []
    records: list[IdentityRecord] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        problems, record = _record(row, system, known_systems)
        issues += [SourceIssue(str(path), line, problem) for problem in problems]
        if record is None:
            continue
        if record.local_id in seen:
            issues.append(
                SourceIssue(
                    str(path), line, f"local_id {record.local_id!r} repeats line {seen[record.local_id]}"
                )
            )
            continue
        seen[record.local_id] = line
        records.append(record)
    if issues:
        raise SourceFileError(issues)
    return records


def _json_rows(path: str, text: str) -> list[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", 1)
        raise SourceFileError([SourceIssue(path, line, f"invalid JSON: {exc}")]) from None
    if not isinstance(data, list):
        raise SourceFileError([SourceIssue(path, 1, "a JSON export must be a list of records")])
    lines = _object_lines(text)
    return [(lines[i] if i < len(lines) else 1, row) for i, row in enumerate(data)]


def _object_lines(text: str) -> list[int]:
    """Line where each top-level object of a JSON list starts (to report ``file:line``)."""
    lines, depth, line, in_string, escaped = [], 0, 1, False, False
    for char in text:
        if char == "\n":
            line += 1
        if in_string:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string, escaped = True, False
        elif char in "[{":
            if depth == 1 and char == "{":
                lines.append(line)
            depth += 1
        elif char in "]}":
            depth -= 1
    return lines


def _csv_rows(path: str, text: str, system: str, known_systems: Collection[str]) -> list[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in FIELDS and not name.startswith(IDENTIFIER_COLUMN)]
    if unknown or "local_id" not in header:
        message = (
            f"unknown column(s) {', '.join(unknown)}" if unknown else "the header must have a local_id column"
        )
        valid = f"{', '.join(FIELDS)}, and id_<system> for another system's identifier"
        raise SourceFileError([SourceIssue(path, 1, f"{message}; valid columns: {valid}")])
    id_columns = {name: name.removeprefix(IDENTIFIER_COLUMN) for name in header if name not in FIELDS}
    problems = [
        problem
        for column, named in id_columns.items()
        for problem in identifier_problems([named], system, known_systems, f"column {column}")
    ]
    if problems:
        raise SourceFileError([SourceIssue(path, 1, problem) for problem in problems])
    rows = []
    try:
        for row in reader:
            if None in row:
                rows.append((reader.line_num, {"__extra__": row[None]}))
                continue
            values = {k: v for k, v in row.items() if v is not None and v.strip()}
            stated = {id_columns[k]: values.pop(k) for k in list(values) if k in id_columns}
            if stated:
                values["identifiers"] = stated
            rows.append((reader.line_num, values))
    except csv.Error as exc:
        raise SourceFileError([SourceIssue(path, reader.line_num, f"invalid CSV: {exc}")]) from None
    return rows


def _record(row: Any, system: str, known_systems: Collection[str]) -> tuple[list[str], IdentityRecord | None]:
    if not isinstance(row, dict):
        return ["each record must be an object"], None
    if "__extra__" in row:
        return ["more values than columns"], None
    valid = (*FIELDS, "identifiers")
    problems = [f"unknown field {key!r}; valid: {', '.join(valid)}" for key in row if key not in valid]
    values: dict[str, Any] = {}
    for key, value in row.items():
        if key not in valid or value is None:
            continue
        if key == "identifiers":
            stated, wrong = _identifiers(value)
            problems += wrong or identifier_problems(stated, system, known_systems)
            values[key] = identifier_pairs(stated)
            continue
        if key == "given_names":
            names = _given_names(value)
            if names is None:
                problems.append("given_names must be a list of strings or a comma-separated string")
                continue
            values[key] = names
            continue
        if not isinstance(value, str | int):
            problems.append(f"{key} must be a string")
            continue
        text = str(value).strip()
        if _CONTROL.search(text):
            problems.append(f"{key}: control characters are not allowed")
        elif len(text) > 200:
            problems.append(f"{key}: at most 200 characters")
        elif text:
            values[key] = text
    local_id = values.get("local_id")
    if not local_id:
        problems.append("local_id is required (the record's identifier in its system)")
    if "birth_date" in values and not _ISO_DATE.match(values["birth_date"]):
        problems.append(f"birth_date {values['birth_date']!r} must be yyyy-mm-dd")
    if "sex" in values:
        values["sex"] = values["sex"].upper()
        if values["sex"] not in ("M", "F"):
            problems.append("sex must be M or F")
    if "birth_place" in values:
        place = values["birth_place"].upper()
        named = None if _PLACE.match(place) else country_code(place)  # a birth abroad, by country
        if named is not None and named != FRANCE:
            place = named
        values["birth_place"] = place
        if not _PLACE.match(place):
            problems.append(
                f"birth_place {values['birth_place']!r} must be an INSEE code (5 chars, 2A/2B), 99xxx, "
                "or a foreign country's name (Espagne)"
            )
    if "updated_at" in values and parse_updated_at(values["updated_at"]) is None:
        problems.append(
            f"updated_at {values['updated_at']!r} must be an ISO 8601 date or date-time "
            "(yyyy-mm-dd, yyyy-mm-ddThh:mm:ss, optionally with Z or ±hh:mm)"
        )
    if problems:
        return problems, None
    return [], IdentityRecord(system=system, **values)


def _identifiers(value: Any) -> tuple[dict[str, str], list[str]]:
    """A record's ``identifiers``: an object of system -> local id (strings, at most 200 characters)."""
    if not isinstance(value, dict):
        return {}, ['identifiers must be an object {"system": "local id", ...}']
    stated, problems = {}, []
    for system, local_id in value.items():
        text = str(local_id).strip() if isinstance(local_id, str | int) else None
        if not text:
            problems.append(f"identifiers.{system} must be a non-empty string")
        elif _CONTROL.search(text) or len(text) > 200:
            problems.append(f"identifiers.{system}: at most 200 characters, no control characters")
        else:
            stated[str(system)] = text
    return stated, problems


def _given_names(value: Any) -> tuple[str, ...] | None:
    """A JSON list, or a CSV cell in civil-registry style: ``Jean, Pierre`` (commas separate names;
    without commas, spaces do)."""
    if isinstance(value, list):
        if not all(isinstance(name, str) for name in value):
            return None
        return tuple(name.strip() for name in value if name.strip())
    if not isinstance(value, str):
        return None
    parts = value.split(",") if "," in value else value.split()
    return tuple(part.strip() for part in parts if part.strip())
