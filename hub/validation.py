"""Turn pydantic validation errors on engineer-written YAML into ``file:line: what, what is valid``."""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hub.yamlfile import ConfigError, ConfigIssue, Location, YamlDocument

M = TypeVar("M", bound=BaseModel)


def validate_document(model: type[M], document: YamlDocument, **context: Any) -> M:
    """Validate a YAML document into ``model``; raise :class:`ConfigError` naming file:line."""
    try:
        return model.model_validate(document.data, context=context or None)
    except ValidationError as exc:
        raise ConfigError(issues_from(exc, model, document)) from None


def issues_from(
    exc: ValidationError, model: type[BaseModel], document: YamlDocument, prefix: Location = ()
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
        full = (*prefix, *loc)
        field = ".".join(str(part) for part in full) or "(document)"
        if error["type"] == "extra_forbidden":
            valid = _valid_keys(model, loc[:-1])
            hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
            message = f"unknown key {loc[-1]!r}{hint}"
        elif error["type"] == "missing":
            message = f"{field}: required key is missing"
            full = full[:-1]
        else:
            message = f"{field}: {error['msg'].removeprefix('Value error, ')}"
            if error["type"] not in {"value_error", "assertion_error"} and "input" in error:
                shown = repr(error["input"])
                message += f" (got {shown if len(shown) < 60 else shown[:57] + '...'})"
        issues.append(document.issue(full, message))
    return issues


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts union member names such as "function-after[...]" into locations
    return isinstance(part, str) and ("[" in part and part.endswith("]"))


def _valid_keys(model: type[BaseModel], loc: Location) -> list[str]:
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    current = _unwrap_model(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or name for name, f in current.model_fields.items())
    return []


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap_model(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (dict, typing.Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    return None


def _unwrap_model(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


__all__ = ["ConfigError", "issues_from", "validate_document"]
