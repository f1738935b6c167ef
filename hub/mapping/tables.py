"""Code tables: the value maps back-ends need (sex M/F <-> 1/2, act types, country codes...).

A table is shared as a file in ``mappings/tables/`` (YAML ``table:/values:`` or a CSV whose first
column is the code), or written inline in a field. Fields use it as a transform::

    transforms: [{table: sex}]                                   # unknown code: the message fails
    transforms: [{table: {name: sex, default: "9"}}]             # unknown code: "9"
    transforms: [{table: {name: sex, reverse: true}}]            # the back-end's code -> ours
    transforms: [{table: {values: {O: true, N: false}}}]         # inline

Codes are compared as text (``1`` and ``"1"`` are the same code), so a table reads the same
from YAML, CSV or JSON input.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.mapping.spec import TableFile
from hub.mapping.transforms import Transform
from hub.validation import validate_document
from hub.yamlfile import ConfigError, ConfigIssue, load_yaml

_UNSET: Any = object()


@dataclass(frozen=True)
class Table:
    name: str
    path: str
    values: dict[str, Any]


class TableArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="a table of mappings/tables")
    values: dict[str, Any] | None = Field(None, description="an inline table: code -> value")
    default: Any = Field(None, description="the value for a code the table does not hold")
    reverse: bool = Field(False, description="look the value up and give its code")
    column: str | None = Field(None, description="for a CSV table: the column to give (default: the second)")

    @model_validator(mode="after")
    def _one_table(self) -> TableArgs:
        if (self.name is None) == (self.values is None):
            raise ValueError("a table transform names a table ('name') or holds one ('values')")
        return self


def code_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_table_transform(table: dict[str, Any], label: str, default: Any = _UNSET) -> Transform:
    def lookup(value: Any) -> Any:
        found = table.get(code_key(value), _UNSET)
        if found is not _UNSET:
            return found
        if default is not _UNSET:
            return default
        raise ValueError(f"code not in table {label}")

    # Every value the lookup can give: a flow reading the mapped field checks its conditions and
    # set_status against them at load (hub.flow_paths).
    lookup.outputs = (*table.values(), *(() if default is _UNSET else (default,)))  # type: ignore[attr-defined]
    return lookup


def outputs_of(transform: Transform) -> tuple[Any, ...] | None:
    """The values a table transform can give; None for any other transform (not known)."""
    return getattr(transform, "outputs", None)


def reversed_table(values: dict[str, Any], label: str) -> dict[str, Any]:
    """value -> code; a table whose values repeat cannot be read backwards (which code to give?)."""
    reverse: dict[str, Any] = {}
    for code, value in values.items():
        key = code_key(value)
        if key in reverse:
            raise ValueError(
                f"table {label} maps {reverse[key]!r} and {code!r} to the same value; not reversible"
            )
        reverse[key] = code
    return reverse


def load_tables(folder: Path) -> dict[str, Table]:
    """Every ``*.yaml`` and ``*.csv`` file of ``folder``; raise ConfigError with every issue."""
    tables: dict[str, Table] = {}
    issues: list[ConfigIssue] = []
    if not folder.is_dir():
        return tables
    for path in sorted(folder.iterdir()):
        try:
            if path.suffix in {".yaml", ".yml"}:
                table = _yaml_table(path)
            elif path.suffix == ".csv":
                table = _csv_table(path)
            else:
                continue
        except ConfigError as exc:
            issues += exc.issues
            continue
        if table.name in tables:
            issues.append(
                ConfigIssue(
                    str(path), 1, 1, f"table {table.name!r} also defined in {tables[table.name].path}"
                )
            )
            continue
        tables[table.name] = table
    if issues:
        raise ConfigError(issues)
    return tables


def _yaml_table(path: Path) -> Table:
    document = load_yaml(path)
    spec = validate_document(TableFile, document)
    return Table(spec.table, str(path), {code_key(k): v for k, v in spec.values.items()})


def _csv_table(path: Path) -> Table:
    """A CSV table: header line, first column the code; every column kept (``column:`` picks)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), 1, 1, f"cannot read table: {exc}")]) from None
    rows = list(csv.reader(text.splitlines(), delimiter=";" if ";" in text.partition("\n")[0] else ","))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ConfigError(
            [ConfigIssue(str(path), 1, 1, "a CSV table needs a header and at least two columns")]
        )
    header = rows[0]
    values: dict[str, Any] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ConfigError(
                [ConfigIssue(str(path), line, 1, f"expected {len(header)} columns, got {len(row)}")]
            )
        if row[0] in values:
            raise ConfigError([ConfigIssue(str(path), line, 1, f"duplicate code {row[0]!r}")])
        values[row[0]] = dict(zip(header[1:], row[1:], strict=True)) if len(header) > 2 else row[1]
    return Table(path.stem, str(path), values)


def table_transform(args: TableArgs, tables: dict[str, Table]) -> Transform:
    """Build the lookup for one ``{table: ...}`` declaration; raise ValueError naming what is wrong."""
    if args.name is not None:
        table = tables.get(args.name)
        if table is None:
            valid = ", ".join(sorted(tables)) or "none (mappings/tables is empty)"
            raise ValueError(f"unknown table {args.name!r}; valid: {valid}")
        values, label = table.values, args.name
    else:
        values, label = {code_key(k): v for k, v in (args.values or {}).items()}, "(inline)"
    if args.column is not None:
        columns = {tuple(v) for v in values.values() if isinstance(v, dict)}
        if not columns or args.column not in next(iter(columns)):
            raise ValueError(f"table {label} has no column {args.column!r}")
        values = {code: row[args.column] for code, row in values.items()}
    elif any(isinstance(v, dict) for v in values.values()):
        raise ValueError(f"table {label} has several columns; name one with 'column'")
    if args.reverse:
        values = reversed_table(values, label)
    default = args.default if "default" in args.model_fields_set else _UNSET
    return build_table_transform(values, label, default)
