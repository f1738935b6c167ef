"""The strict YAML reader: files an engineer wrote come back as data or as errors at file:line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.yamlfile import ConfigError, load_yaml


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    return [str(issue) for issue in caught.value.issues]


def test_a_latin1_file_is_an_error_at_the_line_and_column_of_its_first_bad_byte(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_bytes("flow: x\ntitle: Demande d'acte\n# déjà vu\nx: naïve\n".encode("latin-1"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:3:4: not UTF-8 (byte 0xe9"), error
    assert "save the file as UTF-8" in error


def test_the_column_of_a_bad_byte_counts_characters_not_bytes(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_bytes("title: é".encode() + "é".encode("latin-1") + b"\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1:9: not UTF-8"), error


def test_aliases_are_refused_at_each_alias(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("retry: &r {max_attempts: 3}\na: {retry: *r}\nb:\n  retry: *r\n", encoding="utf-8")
    errors = errors_of(path)
    assert [e.split(": ", 1)[0] for e in errors] == [f"{path}:2:12", f"{path}:4:10"], errors
    assert all("YAML alias *r is not allowed" in e for e in errors)


def test_a_scalar_alias_is_refused_too(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("a: &name etat_civil\nb: *name\n", encoding="utf-8")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:2:4: YAML alias *name"), error


def test_a_recursive_anchor_is_an_error_not_a_recursion_error(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text("steps: &s [1, *s]\n", encoding="utf-8")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1:15: YAML alias *s"), error


def alias_chain(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_chain_is_refused_at_once(tmp_path):
    """Ten to the ninth copies of one value if expanded: refused without expanding anything."""
    path = tmp_path / "hub.yaml"
    path.write_text(alias_chain(9), encoding="utf-8")
    started = time.perf_counter()
    errors = errors_of(path)
    assert time.perf_counter() - started < 2
    assert len(errors) == 90 and errors[0].startswith(f"{path}:2:")


def test_config_check_refuses_an_alias_chain_quickly(tmp_path):
    """The auditor's case through the command, in a process of its own (it never finished)."""
    config = tmp_path / "hub.yaml"
    config.write_text(alias_chain(9), encoding="utf-8")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "config", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert time.perf_counter() - started < 30
    assert f"{config}:2:" in result.stderr and "YAML alias *l0 is not allowed" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_files_still_load(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text("a: [1, 2]\nb: {c: déjà}\n", encoding="utf-8")
    document = load_yaml(path)
    assert document.data == {"a": [1, 2], "b": {"c": "déjà"}}
    assert document.locate(("b", "c")) == (2, 5)
