"""The run-time error of a mapping, safe to log and to show an operator."""

from __future__ import annotations

from typing import Any


def mask(value: Any) -> str:
    """A stand-in for a personal value: its type and size, the first character of a string.

    Logs, the journal and the request timeline carry this, never the value: ``'D…' (7 chars)``.
    """
    if isinstance(value, str):
        return f"'{value[:1]}…' ({len(value)} chars)" if value else "''"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        return f"a number ({len(str(value))} digits)"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    return type(value).__name__


class MappingFailed(Exception):
    """A message the mapping cannot turn into its target: a permanent error for the request.

    It names the mapping, the target field (with item indexes), the source path and the offending
    value masked; the raw value stays in ``value`` for the engineer's own tools (``hub mappings
    test``), never in ``str(error)``.
    """

    code = "mapping_failed"

    def __init__(self, mapping: str, field: str, source: str | None, reason: str, value: Any = None) -> None:
        self.mapping, self.field, self.source, self.reason, self.value = mapping, field, source, reason, value
        where = f" from {source}" if source else ""
        shown = f" (value {mask(value)})" if value is not None else ""
        super().__init__(f"mapping {mapping}: field {field}{where}: {reason}{shown}")
