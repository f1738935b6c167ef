"""Mapping files (first form): JSONPath in, back-end message out.

A mapping is compiled once at load: every JSONPath is parsed then, and each target field becomes a
small closure, so mapping a message is only lookups and transforms. The full language (code
tables, conditions, arrays, fragments) grows from this in the mapping-language issue.

A file looks like::

    mapping: etat-civil-request-act-copy
    description: Portal request -> état civil RequestActCopy
    fields:
      birthName: {path: $.citizen.birth_name, transforms: [trim, upper]}
      givenNames: {path: $.citizen.given_names, transforms: [{join: " "}]}
      birthDate: {path: $.citizen.birth_date, transforms: [{date: {from: "%Y-%m-%d", to: "%Y-%m-%d"}}]}
      copyType: {path: $.data.copy_type, transforms: [upper], required: true}
      deliveryAddress:
        fields:
          line1: {path: $.citizen.address.line1}
      channel: {value: PORTAIL}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as parse_jsonpath
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.validation import validate_document
from hub.yamlfile import ConfigError, YamlDocument, load_yaml

Transform = Callable[[Any], Any]
_MISSING = object()


class MappingFailed(Exception):
    """A message the mapping cannot turn into a target (a permanent error for the request)."""

    code = "mapping_failed"

    def __init__(self, mapping: str, field: str, source: str | None, reason: str) -> None:
        self.mapping, self.field, self.source, self.reason = mapping, field, source, reason
        where = f" from {source}" if source else ""
        super().__init__(f"mapping {mapping}: field {field}{where}: {reason}")


# ---------------------------------------------------------------------------- file model


class DateFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field("%Y-%m-%d", alias="from")
    to: str = "%Y-%m-%d"


class TransformSpec(BaseModel):
    """One of: a bare name (upper, lower, trim, string) or ``{join: sep}`` / ``{date: {...}}``."""

    model_config = ConfigDict(extra="forbid")
    join: str | None = None
    date: DateFormat | None = None


SIMPLE_TRANSFORMS: dict[str, Transform] = {
    "upper": lambda v: v.upper() if isinstance(v, str) else v,
    "lower": lambda v: v.lower() if isinstance(v, str) else v,
    "trim": lambda v: v.strip() if isinstance(v, str) else v,
    "string": lambda v: v if isinstance(v, str) else str(v),
}


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    value: Any = None
    default: Any = None
    required: bool = False
    transforms: list[str | TransformSpec] = Field(default_factory=list)
    fields: dict[str, FieldSpec] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        sources = [name for name in ("path", "value", "fields") if getattr(self, name) is not None]
        if len(sources) != 1:
            raise ValueError(
                f"a field needs exactly one of path, value, fields (got {', '.join(sources) or 'none'})"
            )
        for transform in self.transforms:
            if isinstance(transform, str) and transform not in SIMPLE_TRANSFORMS:
                raise ValueError(
                    f"unknown transform {transform!r}; valid: {', '.join(SIMPLE_TRANSFORMS)}, join, date"
                )
            if isinstance(transform, TransformSpec) and (transform.join is None) == (transform.date is None):
                raise ValueError("a transform object holds exactly one of join, date")
        return self


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mapping: str = Field(pattern=r"^[a-z0-9][a-z0-9_./-]*$")
    description: str = ""
    fields: dict[str, FieldSpec] = Field(min_length=1)


# ---------------------------------------------------------------------------- compiled form


@dataclass(frozen=True)
class CompiledField:
    target: str
    source: str | None
    getter: Callable[[Any], Any]
    transforms: tuple[Transform, ...]
    required: bool
    default: Any
    children: tuple[CompiledField, ...] | None


class Mapping:
    """A compiled mapping file; :meth:`apply` maps one document."""

    def __init__(self, name: str, path: str, fields: tuple[CompiledField, ...]) -> None:
        self.name, self.path, self.fields = name, path, fields

    def apply(self, document: Any) -> dict[str, Any]:
        return self._apply(self.fields, document, "")

    def _apply(self, fields: tuple[CompiledField, ...], document: Any, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in fields:
            name = prefix + field.target
            if field.children is not None:
                nested = self._apply(field.children, document, name + ".")
                if nested:
                    out[field.target] = nested
                continue
            value = field.getter(document)
            if value is _MISSING or value is None or value == "":
                if field.default is not None:
                    value = field.default
                elif field.required:
                    raise MappingFailed(self.name, name, field.source, "required value is missing")
                else:
                    continue
            for transform in field.transforms:
                try:
                    value = transform(value)
                except (ValueError, TypeError) as exc:
                    raise MappingFailed(self.name, name, field.source, str(exc)) from None
            out[field.target] = value
        return out


def _join(separator: str) -> Transform:
    def join(value: Any) -> Any:
        return separator.join(str(v) for v in value) if isinstance(value, list) else value

    return join


def _date(spec: DateFormat) -> Transform:
    def date(value: Any) -> str:
        if not isinstance(value, str):
            value = str(value)
        try:
            return datetime.strptime(value, spec.from_).strftime(spec.to)
        except ValueError:
            raise ValueError(f"date does not match {spec.from_!r}") from None

    return date


def _getter(expression: JSONPath) -> Callable[[Any], Any]:
    def get(document: Any) -> Any:
        matches = expression.find(document)
        if not matches:
            return _MISSING
        return matches[0].value if len(matches) == 1 else [m.value for m in matches]

    return get


def _compile_fields(
    specs: dict[str, FieldSpec], document: YamlDocument, location: tuple, issues: list
) -> tuple[CompiledField, ...]:
    compiled = []
    for target, spec in specs.items():
        here = (*location, target)
        children = None
        getter: Callable[[Any], Any]
        if spec.fields is not None:
            children = _compile_fields(spec.fields, document, (*here, "fields"), issues)
            getter = lambda _doc: _MISSING  # noqa: E731 - nested blocks read through their children
        elif spec.path is not None:
            try:
                getter = _getter(parse_jsonpath(spec.path))
            except Exception as exc:  # jsonpath-ng raises lexer, parser and plain errors alike
                issues.append(document.issue((*here, "path"), f"invalid JSONPath {spec.path!r}: {exc}"))
                continue
        else:
            constant = spec.value
            getter = lambda _doc, constant=constant: constant  # noqa: E731
        transforms: list[Transform] = []
        for transform in spec.transforms:
            if isinstance(transform, str):
                transforms.append(SIMPLE_TRANSFORMS[transform])
            elif transform.join is not None:
                transforms.append(_join(transform.join))
            elif transform.date is not None:
                transforms.append(_date(transform.date))
        compiled.append(
            CompiledField(target, spec.path, getter, tuple(transforms), spec.required, spec.default, children)
        )
    return tuple(compiled)


def load_mapping(path: str | Path) -> Mapping:
    document = load_yaml(path)
    spec = validate_document(MappingFile, document)
    issues: list = []
    fields = _compile_fields(spec.fields, document, ("fields",), issues)
    if issues:
        raise ConfigError(issues)
    return Mapping(spec.mapping, str(path), fields)


def load_mappings(folder: Path) -> dict[str, Mapping]:
    """Every ``*.yaml`` under ``folder`` (test cases under ``tests/`` excluded), by mapping name."""
    mappings: dict[str, Mapping] = {}
    issues = []
    for path in sorted(folder.rglob("*.yaml")):
        if "tests" in path.relative_to(folder).parts:
            continue
        try:
            mapping = load_mapping(path)
        except ConfigError as exc:
            issues += exc.issues
            continue
        if mapping.name in mappings:
            issues.append(
                load_yaml(path).issue(
                    ("mapping",),
                    (f"mapping name {mapping.name!r} already used by {mappings[mapping.name].path}"),
                )
            )
            continue
        mappings[mapping.name] = mapping
    if issues:
        raise ConfigError(issues)
    return mappings
