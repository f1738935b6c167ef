"""``when`` and ``where`` conditions, compiled once into predicates over (document, current item)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hub.mapping.paths import MISSING, CompiledPath, compile_path
from hub.mapping.spec import CONDITION_TESTS, Condition

Predicate = Callable[[Any, Any], bool]


def compile_condition(condition: Condition) -> Predicate:
    """Raise PathError (bad JSONPath) or ValueError (bad regex) at load, never per message."""
    if condition.all is not None:
        parts = tuple(compile_condition(c) for c in condition.all)
        return lambda doc, cur: all(p(doc, cur) for p in parts)
    if condition.any is not None:
        parts = tuple(compile_condition(c) for c in condition.any)
        return lambda doc, cur: any(p(doc, cur) for p in parts)
    if condition.not_ is not None:
        inner = compile_condition(condition.not_)
        return lambda doc, cur: not inner(doc, cur)
    assert condition.path is not None
    path = compile_path(condition.path)
    read = _reader(path)
    test = _test(condition)
    return lambda doc, cur: test(read(doc, cur))


def _reader(path: CompiledPath) -> Callable[[Any, Any], Any]:
    get = path.get
    if path.singular:
        return (lambda doc, cur: get(cur)) if path.relative else (lambda doc, cur: get(doc))

    def many(doc: Any, cur: Any) -> Any:
        values = get(cur if path.relative else doc)
        return values if values else MISSING

    return many


def _test(condition: Condition) -> Callable[[Any], bool]:
    present = lambda v: v is not MISSING and v is not None and v != ""  # noqa: E731
    if "equals" in condition.model_fields_set:
        expected = condition.equals
        return lambda v: v == expected
    if "not_equals" in condition.model_fields_set:
        unexpected = condition.not_equals
        return lambda v: v != unexpected
    if condition.in_ is not None:
        allowed = list(condition.in_)
        return lambda v: v in allowed
    if condition.not_in is not None:
        refused = list(condition.not_in)
        return lambda v: v not in refused
    if condition.exists is not None:
        wanted = condition.exists
        return lambda v: present(v) == wanted
    if "contains" in condition.model_fields_set:
        # A list found at a singular path, or the matches of a path with [*] or a filter (the
        # reader gives those as a list too): "ecole is among the systems of this event".
        item = condition.contains
        return lambda v: isinstance(v, list) and item in v
    if condition.matches is not None:
        try:
            pattern = re.compile(condition.matches)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    for name, compare in (
        ("gt", lambda a, b: a > b),
        ("gte", lambda a, b: a >= b),
        ("lt", lambda a, b: a < b),
        ("lte", lambda a, b: a <= b),
    ):
        bound = getattr(condition, name)
        if bound is not None:
            return lambda v, bound=bound, compare=compare: (
                isinstance(v, int | float) and not isinstance(v, bool) and compare(v, bound)
            )
    raise ValueError("empty condition")  # the spec model makes this unreachable


def condition_leaves(condition: Condition, location: tuple) -> list[tuple[Condition, tuple]]:
    """Each path test of a condition with its location (``when.all[1]``), for load-time checks."""
    for key, parts in (("all", condition.all), ("any", condition.any)):
        if parts is not None:
            return [
                leaf
                for number, part in enumerate(parts)
                for leaf in condition_leaves(part, (*location, key, number))
            ]
    if condition.not_ is not None:
        return condition_leaves(condition.not_, (*location, "not"))
    return [(condition, location)]


def describe(condition: Condition) -> str:
    """The condition in words for a request's timeline, e.g. ``$.data.systems contains 'ecole'``:
    an agent reading why a step was skipped sees the test, never a value read from the request."""
    if condition.all is not None:
        return "all of (" + "; ".join(describe(c) for c in condition.all) + ")"
    if condition.any is not None:
        return "any of (" + "; ".join(describe(c) for c in condition.any) + ")"
    if condition.not_ is not None:
        return f"not ({describe(condition.not_)})"
    for name in CONDITION_TESTS:
        if name in condition.model_fields_set:
            word = {"in_": "in", "exists": "exists:"}.get(name, name.replace("_", " "))
            return f"{condition.path} {word} {getattr(condition, name)!r}"
    raise ValueError("empty condition")  # the spec model makes this unreachable
