"""Strict YAML reading for everything an integration engineer writes (config, flows, mappings).

PyYAML keeps the last of two duplicate keys without a word, which is how a Camel route silently
loses a branch; here a duplicate key is an error. Every value's line is remembered so a validation
error anywhere later can still name ``file:line``.

Anchors and aliases (``&name`` / ``*name``) are refused, like merge keys: a value written once and
used in several places would have no single line to report its errors at, and an alias chain
expands exponentially (nine levels of ``[*a, *a]`` is 2^9 copies of the innermost value; a file
of a few lines kept ``hub config check`` busy for minutes). Mappings share fields with fragments,
and nothing else an engineer writes needs repetition that large. A file that is not UTF-8 is
refused at the line and column of its first invalid byte, not with a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # the C composer is several times faster; both build the same node tree
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a file an engineer wrote, located precisely."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigError(Exception):
    """Raised with every issue found, so an engineer fixes a file in one pass, not one error a run."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


@dataclass
class YamlDocument:
    """Plain data (dicts, lists, scalars) plus the line and column of every key path."""

    path: str
    data: Any
    lines: dict[Location, tuple[int, int]] = field(default_factory=dict)

    def locate(self, location: Location) -> tuple[int, int]:
        """Position of the deepest known prefix of ``location`` (a pydantic ``loc`` works as is)."""
        location = tuple(location)
        while location:
            if location in self.lines:
                return self.lines[location]
            location = location[:-1]
        return self.lines.get((), (1, 1))

    def issue(self, location: Location, message: str) -> ConfigIssue:
        line, column = self.locate(location)
        return ConfigIssue(self.path, line, column, message)


def misnamed_yaml(paths: Iterable[Path]) -> list[ConfigIssue]:
    """An issue for each YAML file not named ``*.yaml``: the flow and mapping loaders read that
    suffix only, so a ``birth-certificate.yml`` would be skipped without a word (a démarche or a
    mapping missing at run time) rather than loaded or refused."""
    return [
        ConfigIssue(
            str(path),
            1,
            1,
            f"{path.name}: files here are read only when named *.yaml; rename it {path.stem}.yaml",
        )
        for path in sorted(paths)
        if path.suffix.lower() in (".yml", ".yaml") and path.suffix != ".yaml" and path.is_file()
    ]


def load_yaml(path: str | Path, *, text: str | None = None) -> YamlDocument:
    """Read one YAML file strictly: one document, no duplicate keys, string keys only."""
    path = str(path)
    if text is None:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError([ConfigIssue(path, 1, 1, f"cannot read file: {exc.strerror}")]) from exc
        text = decode_utf8(path, raw)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([ConfigIssue(path, line, column, f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(path, 1, 1, f"invalid YAML: {exc}")]) from exc
    document = YamlDocument(path=path, data=None)
    if node is None:
        document.data = {}
        return document
    issues: list[ConfigIssue] = []
    aliased: list[bool] = []
    document.data = _build(node, (), document, issues, set(), aliased)
    if aliased:
        issues += _alias_issues(path, text)
    if issues:
        raise ConfigError(sorted(issues, key=lambda i: (i.line, i.column)))
    return document


def decode_utf8(path: str, raw: bytes) -> str:
    """The file's text; a file saved in another encoding (Latin-1, Windows-1252) is an error at the
    line and column of its first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8")) + 1  # in characters
        byte = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            [
                ConfigIssue(
                    path,
                    line,
                    column,
                    f"not UTF-8 (byte 0x{byte}: {exc.reason}); save the file as UTF-8 "
                    "(it was probably written as Latin-1 or Windows-1252)",
                )
            ]
        ) from None


def _alias_issues(path: str, text: str) -> list[ConfigIssue]:
    """One issue per alias of the file, at the alias itself (the composed tree only knows anchors)."""
    return [
        ConfigIssue(
            path,
            event.start_mark.line + 1,
            event.start_mark.column + 1,
            f"YAML alias *{event.anchor} is not allowed (nor anchors): write the value out where it "
            "is used (mappings share fields with fragments)",
        )
        for event in yaml.parse(text, Loader=_Loader)
        if isinstance(event, yaml.AliasEvent)
    ]


def _build(
    node: yaml.Node,
    location: Location,
    doc: YamlDocument,
    issues: list[ConfigIssue],
    seen: set[int],
    aliased: list[bool],
) -> Any:
    # An alias is the same node object met again (even inside itself, for a recursive anchor):
    # never expanded, so no alias chain can blow up; reported at the aliases' lines after.
    if id(node) in seen:
        if not aliased:
            aliased.append(True)
        return None
    seen.add(id(node))
    doc.lines.setdefault(location, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key, str):
                issues.append(ConfigIssue(doc.path, *position, f"key {key!r} must be a string"))
                continue
            if key == "<<":
                issues.append(ConfigIssue(doc.path, *position, "YAML merge keys (<<) are not allowed"))
                continue
            if key in result:
                first = doc.lines[(*location, key)]
                issues.append(
                    ConfigIssue(
                        doc.path, *position, f"duplicate key {key!r} (first defined at line {first[0]})"
                    )
                )
                continue
            doc.lines[(*location, key)] = position
            result[key] = _build(value_node, (*location, key), doc, issues, seen, aliased)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*location, i), doc, issues, seen, aliased) for i, item in enumerate(node.value)]
    return _scalar(node)


_constructor = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    return _constructor.construct_object(node, deep=True)
