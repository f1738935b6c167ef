"""Test cases beside the mappings: an input and the expected output (or the expected error).

``mappings/tests/<mapping name>/<case>.yaml``::

    description: a child born abroad keeps the country code
    input_file: ../../../../sandbox/samples/05-garcia-lopez-ne-a-l-etranger.json   # or input: {...}
    expect: {...}              # the exact output (a dict, or the line / XML text for file formats)
    # or
    expect_error: {field: birthDate, reason: does not match}

A failing case reports a diff by field path, so an engineer sees ``children[1].birthDate:
expected '2015-06-01', got '01/06/2015'`` rather than two dumps to compare by eye.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from hub.mapping.errors import MappingFailed
from hub.mapping.loader import Mapping
from hub.mapping.spec import CaseFile
from hub.validation import validate_document
from hub.yamlfile import ConfigError, ConfigIssue, load_yaml


@dataclass
class CaseResult:
    mapping: str
    case: Path
    description: str
    differences: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.differences


def cases_folder(mapping: Mapping) -> Path | None:
    """``<mappings root>/tests/<mapping name>``, the root being the folder holding ``tests/``."""
    for parent in Path(mapping.path).resolve().parents:
        if (parent / "tests").is_dir():
            return parent / "tests" / mapping.name
    return None


def case_files(mapping: Mapping) -> list[Path]:
    folder = cases_folder(mapping)
    return sorted(folder.glob("*.yaml")) if folder and folder.is_dir() else []


def load_case(path: Path) -> tuple[CaseFile, Any]:
    """The case and its input document; ConfigError (file:line) when the case file is wrong."""
    document = load_yaml(path)
    case = validate_document(CaseFile, document)
    if case.input_file is None:
        return case, case.input
    source = (path.parent / case.input_file).resolve()
    try:
        return case, json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise ConfigError([document.issue(("input_file",), f"cannot read {source}: {exc}")]) from None


def run_case(mapping: Mapping, path: Path) -> CaseResult:
    try:
        case, document = load_case(path)
    except ConfigError as exc:
        return CaseResult(mapping.name, path, "", [str(issue) for issue in exc.issues])
    result = CaseResult(mapping.name, path, case.description)
    try:
        actual = mapping.render(document)
    except MappingFailed as exc:
        if case.expect_error is None:
            result.differences.append(f"expected an output, the mapping failed: {exc}")
        elif exc.field != case.expect_error.field:
            result.differences.append(
                f"error on field {exc.field!r}, expected on {case.expect_error.field!r}: {exc}"
            )
        elif case.expect_error.reason and case.expect_error.reason not in exc.reason:
            result.differences.append(
                f"error reason {exc.reason!r} does not contain {case.expect_error.reason!r}"
            )
        return result
    if case.expect_error is not None:
        result.differences.append(f"expected an error on {case.expect_error.field!r}, the mapping succeeded")
        return result
    if mapping.format == "xml" and isinstance(case.expect, str):
        result.differences += _xml_differences(case.expect, actual)
    else:
        result.differences += differences(case.expect, actual)
    return result


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Readable differences by field path: ``a.b[2]: expected 'x', got 'y'``."""
    where = path or "(output)"
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in expected:
            child = f"{path}.{key}" if path else key
            if key not in actual:
                found.append(f"{child}: expected {expected[key]!r}, missing")
            else:
                found += differences(expected[key], actual[key], child)
        for key in actual:
            if key not in expected:
                child = f"{path}.{key}" if path else key
                found.append(f"{child}: not expected, got {actual[key]!r}")
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        found = []
        for index in range(max(len(expected), len(actual))):
            child = f"{path}[{index}]"
            if index >= len(actual):
                found.append(f"{child}: expected {expected[index]!r}, missing")
            elif index >= len(expected):
                found.append(f"{child}: not expected, got {actual[index]!r}")
            else:
                found += differences(expected[index], actual[index], child)
        return found
    if expected != actual or (type(expected) is not type(actual) and not _same_number(expected, actual)):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    return []


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    )


def _xml_differences(expected: str, actual: str) -> list[str]:
    try:
        canonical = etree.canonicalize(expected, strip_text=True)
    except etree.XMLSyntaxError as exc:
        return [f"expected XML is not well-formed: {exc}"]
    if canonical == etree.canonicalize(actual, strip_text=True):
        return []
    expected_lines = expected.strip().splitlines()
    actual_lines = actual.strip().splitlines()
    found = []
    for number in range(max(len(expected_lines), len(actual_lines))):
        want = expected_lines[number].strip() if number < len(expected_lines) else "(nothing)"
        got = actual_lines[number].strip() if number < len(actual_lines) else "(nothing)"
        if want != got:
            found.append(f"line {number + 1}: expected {want}, got {got}")
    return found or ["XML differs"]


def missing_cases(mappings: dict[str, Mapping]) -> list[ConfigIssue]:
    """Mappings shipped without a single test case (the suite refuses them)."""
    return [
        mapping.document.issue(("mapping",), f"mapping {name} has no test case")
        for name, mapping in mappings.items()
        if not case_files(mapping)
    ]
