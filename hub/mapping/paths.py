"""JSONPath expressions of mapping files: parsed once by jsonpath-ng, then run as plain lookups.

jsonpath-ng parses and validates every expression when a file is loaded. The common shapes
(``$.a.b``, ``@.x[0]``, ``$.items[*].amount``, slices) are then turned into a tuple of steps run
by a small loop over dicts and lists, about ten times cheaper than ``JSONPath.find``, which
builds a context object per node; anything else (filters, descendants, functions) keeps
jsonpath-ng's ``find`` on the expression parsed at load. Nothing is parsed per message.

A path is *singular* when it can match at most one node (only names and single indexes): it
yields the value or ``MISSING``. Otherwise it yields the list of matched values, possibly empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import jsonpath as ast
from jsonpath_ng.ext import parse as parse_jsonpath
from jsonpath_ng.ext.filter import Filter

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()


class PathError(ValueError):
    """An expression jsonpath-ng cannot parse, or one a mapping cannot use."""


@dataclass(frozen=True)
class Step:
    kind: str  # "field", "index", "slice", "wildcard"
    arg: Any = None


@dataclass(frozen=True)
class CompiledPath:
    text: str
    relative: bool  # starts at the current item (@) instead of the document ($)
    singular: bool
    steps: tuple[Step, ...] | None  # None: evaluated by jsonpath-ng's find
    get: Callable[[Any], Any]  # node -> value | MISSING (singular) or list of values
    # The leading steps a schema can check: all of ``steps``, or for a path jsonpath-ng runs
    # itself, those before its first descendant (..) or function, a filter counting as [*]
    # (``$.data.refs[?(@.system == 'ecole')].id`` is checked as ``$.data.refs[*].id``).
    checked: tuple[Step, ...] = ()

    @property
    def field_names(self) -> tuple[str, ...] | None:
        """The keys of a path made only of names (``$.a.b``), for the compiler to inline."""
        if self.steps is None or any(step.kind != "field" for step in self.steps):
            return None
        return tuple(step.arg for step in self.steps)


def compile_path(text: str) -> CompiledPath:
    if not isinstance(text, str) or not text.strip():
        raise PathError("a JSONPath must be a non-empty string")
    stripped = text.strip()
    if not stripped.startswith(("$", "@")):
        raise PathError("a JSONPath starts with $ (the document) or @ (the current item)")
    try:
        expression = parse_jsonpath(stripped)
    except Exception as exc:  # jsonpath-ng raises lexer, parser and plain errors alike
        raise PathError(f"invalid JSONPath {text!r}: {exc}") from None
    relative = stripped.startswith("@")
    steps = _flatten(expression)
    if steps is None:

        def find(node: Any, _expression: ast.JSONPath = expression) -> list[Any]:
            return [match.value for match in _expression.find(node)]

        return CompiledPath(text, relative, False, None, find, _checkable(expression))
    singular = all(step.kind == "field" or (step.kind == "index") for step in steps)
    getter = _singular(steps) if singular else _plural(steps)
    return CompiledPath(text, relative, singular, steps, getter, steps)


def _checkable(node: ast.JSONPath) -> tuple[Step, ...]:
    """The steps of the longest prefix of ``node`` a schema can check (see CompiledPath.checked)."""
    chain: list[ast.JSONPath] = []
    while isinstance(node, ast.Child):
        chain.append(node.right)
        node = node.left
    if not isinstance(node, ast.Root | ast.This):
        return ()
    found: list[Step] = []
    for part in reversed(chain):
        step = (Step("wildcard"),) if isinstance(part, Filter) else _leaf(part)
        if step is None:
            break
        found += step
    return tuple(found)


def _flatten(node: ast.JSONPath) -> tuple[Step, ...] | None:
    if isinstance(node, ast.Root | ast.This):
        return ()
    if isinstance(node, ast.Child):
        left, right = _flatten(node.left), _flatten(node.right) if not _is_leaf(node.right) else None
        if left is None:
            return None
        if right is not None:
            return left + right
        step = _leaf(node.right)
        return None if step is None else (*left, *step)
    return None


def _is_leaf(node: ast.JSONPath) -> bool:
    return not isinstance(node, ast.Child | ast.Root | ast.This)


def _leaf(node: ast.JSONPath) -> tuple[Step, ...] | None:
    if isinstance(node, ast.Fields):
        if len(node.fields) == 1 and node.fields[0] != "*":
            return (Step("field", node.fields[0]),)
        return (Step("wildcard"),) if node.fields == ("*",) else None
    if isinstance(node, ast.Index):
        return (Step("index", node.indices[0]),) if len(node.indices) == 1 else None
    if isinstance(node, ast.Slice):
        return (Step("slice", slice(node.start, node.end, node.step)),)
    if isinstance(node, ast.Wildcard):
        return (Step("wildcard"),)
    return None


def _singular(steps: tuple[Step, ...]) -> Callable[[Any], Any]:
    plan = tuple((step.kind == "field", step.arg) for step in steps)

    def get(node: Any) -> Any:
        for is_field, arg in plan:
            if is_field:
                if not isinstance(node, dict):
                    return MISSING
                node = node.get(arg, MISSING)
                if node is MISSING:
                    return MISSING
            else:
                if not isinstance(node, list) or not -len(node) <= arg < len(node):
                    return MISSING
                node = node[arg]
        return node

    return get


def _plural(steps: tuple[Step, ...]) -> Callable[[Any], list[Any]]:
    def get(node: Any) -> list[Any]:
        nodes = [node]
        for step in steps:
            found: list[Any] = []
            for current in nodes:
                if step.kind == "field":
                    if isinstance(current, dict) and step.arg in current:
                        found.append(current[step.arg])
                elif step.kind == "index":
                    if isinstance(current, list) and -len(current) <= step.arg < len(current):
                        found.append(current[step.arg])
                elif step.kind == "slice":
                    if isinstance(current, list):
                        found.extend(current[step.arg])
                elif isinstance(current, list):
                    found.extend(current)
                elif isinstance(current, dict):
                    found.extend(current.values())
            nodes = found
        return nodes

    return get


# ---------------------------------------------------------------------------- schemas


def sub_schema(
    path: CompiledPath, schema: dict[str, Any] | None, root: dict[str, Any]
) -> dict[str, Any] | None:
    """The schema of what ``path`` reaches from a node of ``schema``; None when unknown.

    Raise :class:`PathError` when the schema proves the path can never match: a property the
    schema closes out, an index into something that is not an array, a name on a non-object.
    """
    if schema is None:
        return None
    reached = reach(path.checked, schema, root, "$" if not path.relative else "@")
    return reached if path.steps is not None else None  # only a prefix was walked


def reach(
    steps: tuple[Step, ...],
    schema: dict[str, Any] | None,
    root: dict[str, Any],
    walked: str,
    name: str = "the source schema",
) -> dict[str, Any] | None:
    """The schema ``steps`` reach from ``schema`` (``$ref`` read in ``root``), or None when the
    schema does not say; raise :class:`PathError` when it proves they can never match.
    ``walked`` is the path up to ``schema`` and ``name`` what the schema is, for the message."""
    current: dict[str, Any] | None = schema
    for step in steps:
        if current is None:
            return None
        current = _resolve(current, root)
        types = _types(current)
        if step.kind == "field":
            if types and "object" not in types:
                raise PathError(f"{walked} is {'/'.join(sorted(types))} in {name}, it has no {step.arg!r}")
            properties = current.get("properties", {})
            if step.arg in properties:
                current = properties[step.arg]
            elif current.get("additionalProperties") is False:
                valid = ", ".join(sorted(properties)) or "none"
                raise PathError(f"{name} has no {walked}.{step.arg}; valid here: {valid}")
            else:
                extra = current.get("additionalProperties")
                current = extra if isinstance(extra, dict) else None
            walked += f".{step.arg}"
        else:
            if step.kind == "wildcard" and (not types or "object" in types):
                return None
            if types and "array" not in types:
                raise PathError(f"{walked} is {'/'.join(sorted(types))} in {name}, not an array")
            items = current.get("items")
            current = items if isinstance(items, dict) else None
            walked += "[]"
    return _resolve(current, root) if current is not None else None


def values_of(schema: dict[str, Any] | None) -> list[Any] | None:
    """The values a schema allows when it lists them (``enum``, ``const``), else None."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        reference = schema["$ref"]
        if not reference.startswith("#/"):
            return {}
        node: Any = root
        for part in reference[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
        schema, seen = node, seen + 1
    if isinstance(schema, dict):
        branches = [b for b in schema.get("anyOf") or schema.get("oneOf") or [] if b != {"type": "null"}]
        if len(branches) > 1:
            return {}  # several shapes: the path may match one of them; not checked further
        if branches:
            return _resolve(branches[0], root)
    return schema if isinstance(schema, dict) else {}


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return set()
    return {kind} if isinstance(kind, str) else set(kind)
