"""Write small mapping files (and their tables/fragments) into a temporary mappings folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

from hub.mapping import Mapping, load_mapping


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def mapping(folder: Path, fields: str, *, head: str = "") -> Mapping:
    """A mapping named ``t`` whose ``fields:`` block is ``fields`` (indented by two spaces)."""
    (folder / "tables").mkdir(exist_ok=True)
    body = (
        "mapping: t\n"
        + textwrap.dedent(head).lstrip()
        + "fields:\n"
        + textwrap.indent(textwrap.dedent(fields).strip(), "  ")
    )
    return load_mapping(write(folder, "t.yaml", body + "\n"))
