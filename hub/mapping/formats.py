"""Output formats: how a mapped record leaves the hub.

``json`` and ``soap`` give the mapped dict itself (httpx sends it as JSON; zeep takes it as the
operation's keyword arguments). ``csv`` and ``fixed_width`` give one line of a file (finance
files over SFTP): the top-level fields, in the order the mapping declares them. ``xml`` gives a
document (GED metadata) built with lxml: nested objects become elements, lists repeat their
element, keys starting with ``@`` become attributes.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from lxml import etree

from hub.mapping.errors import MappingFailed
from hub.mapping.spec import FieldSpec, TargetSpec

_QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "never": csv.QUOTE_NONE}


class Renderer:
    """Turns the mapped dict into the target format; built once per mapping."""

    def __init__(self, mapping: str, target: TargetSpec | None, fields: dict[str, FieldSpec]) -> None:
        self.mapping = mapping
        self.format = target.format if target else "json"
        self.columns = tuple(fields)
        self.target = target

    def header(self) -> str | None:
        """The header line of a CSV file (None for other formats or ``header: false``)."""
        if (
            self.format != "csv"
            or self.target is None
            or not (self.target.csv is None or self.target.csv.header)
        ):
            return None
        return self._csv_line(list(self.columns))

    def render(self, record: dict[str, Any]) -> Any:
        if self.format in ("json", "soap"):
            return record
        if self.format == "csv":
            return self._csv_line([_cell(record.get(column)) for column in self.columns])
        if self.format == "fixed_width":
            return self._fixed_line(record)
        return self._xml(record)

    def _csv_line(self, cells: list[str]) -> str:
        options = self.target.csv if self.target and self.target.csv else None
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=options.delimiter if options else ";",
            quoting=_QUOTING[options.quote if options else "minimal"],
            lineterminator="",
            escapechar="\\" if options and options.quote == "never" else None,
        )
        writer.writerow(cells)
        return buffer.getvalue()

    def _fixed_line(self, record: dict[str, Any]) -> str:
        assert self.target is not None and self.target.fixed_width is not None
        spec = self.target.fixed_width
        parts = []
        for column, layout in spec.columns.items():
            text = _cell(record.get(column))
            if len(text) > layout.width:
                if spec.overflow == "error":
                    raise MappingFailed(
                        self.mapping,
                        column,
                        None,
                        f"{len(text)} characters do not fit the {layout.width} of the column",
                        text,
                    )
                text = text[: layout.width]
            parts.append(
                text.ljust(layout.width, layout.fill)
                if layout.align == "left"
                else text.rjust(layout.width, layout.fill)
            )
        return "".join(parts)

    def _xml(self, record: dict[str, Any]) -> str:
        assert self.target is not None and self.target.xml is not None
        namespace = self.target.xml.namespace
        qualify = (lambda name: f"{{{namespace}}}{name}") if namespace else (lambda name: name)
        root = etree.Element(qualify(self.target.xml.root), nsmap={None: namespace} if namespace else None)
        _fill(root, record, qualify)
        return etree.tostring(root, pretty_print=True, encoding="unicode", xml_declaration=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise MappingFailed("", "", None, "a file line holds text and numbers, not objects or lists")
    return str(value)


def _fill(element: etree._Element, value: Any, qualify: Any) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            if key.startswith("@"):
                element.set(key[1:], _cell(child))
                continue
            for item in child if isinstance(child, list) else [child]:
                _fill(etree.SubElement(element, qualify(key)), item, qualify)
        return
    element.text = _cell(value)
