"""``hub mappings``: test, apply and explain mapping files without a server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hub.mapping import Mapping, MappingFailed, load_mapping, load_mappings
from hub.mapping.cases import case_files, run_case
from hub.yamlfile import ConfigError

app = typer.Typer(help="Test, apply and explain mapping files.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)
InputOption = Annotated[Path, typer.Option("--input", "-i", help="JSON document to map ('-' for stdin)")]


def _default_folder() -> Path:
    from hub.config import load_config

    try:
        config, _ = load_config(None)
    except ConfigError:
        return Path("mappings")
    return config.resolve(config.paths.mappings)


def _load(files: list[Path]) -> list[Mapping]:
    """Mappings named by FILES (mapping files, or folders of them), else every shipped mapping."""
    try:
        if not files:
            return list(load_mappings(_default_folder()).values())
        mappings: list[Mapping] = []
        for path in files:
            if path.is_dir():
                mappings += load_mappings(path).values()
            else:
                mappings.append(load_mapping(path))
        return mappings
    except ConfigError as exc:
        for issue in exc.issues:
            errors.print(str(issue), markup=False)
        errors.print(f"{len(exc.issues)} mapping error(s)", style="bold red")
        raise typer.Exit(1) from None


def _read_input(path: Path) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        errors.print(f"{path}: cannot read a JSON document: {exc}", markup=False)
        raise typer.Exit(2) from None


@app.command("test")
def test(files: Annotated[list[Path] | None, typer.Argument(help="mapping files or folders")] = None) -> None:
    """Run the test cases of the mappings (mappings/tests/<name>/*.yaml); exit 1 on a failure."""
    mappings = _load(files or [])
    passed = failed = 0
    without_cases = []
    for mapping in mappings:
        cases = case_files(mapping)
        if not cases:
            without_cases.append(mapping.name)
        for case in cases:
            result = run_case(mapping, case)
            if result.passed:
                passed += 1
                console.print(f"[green]PASS[/] {mapping.name} :: {case.stem}")
                continue
            failed += 1
            console.print(f"[red]FAIL[/] {mapping.name} :: {case.stem}  ({case})")
            for difference in result.differences:
                console.print(f"     {difference}", markup=False)
    for name in without_cases:
        console.print(f"[yellow]NO CASES[/] {name}")
    style = "bold red" if failed else "bold green"
    console.print(
        f"{passed} passed, {failed} failed, {len(without_cases)} mapping(s) without cases", style=style
    )
    if failed:
        raise typer.Exit(1)


@app.command("apply")
def apply(file: Path, input: InputOption) -> None:
    """Map the input document and print the result (JSON, a file line, or XML)."""
    (mapping,) = _load([file])
    document = _read_input(input)
    try:
        result = mapping.render(document)
    except MappingFailed as exc:
        errors.print(f"{exc.code}: {exc}", markup=False)
        raise typer.Exit(1) from None
    if isinstance(result, dict):
        console.print_json(json.dumps(result, ensure_ascii=False, default=str))
    else:
        console.print(result, markup=False)


@app.command("explain")
def explain(file: Path, input: InputOption) -> None:
    """For every target field: the source path, the transforms, the value read and the value written."""
    (mapping,) = _load([file])
    traces, error = mapping.explain(_read_input(input))
    table = Table(title=f"{mapping.name}  ({mapping.path})")
    for column in ("target", "source", "transforms", "read", "written"):
        table.add_column(column, overflow="fold")
    for trace in traces:
        table.add_row(
            trace.target,
            trace.source or "(constant)",
            " → ".join(trace.transforms) or "-",
            _shown(trace.raw),
            _shown(trace.value),
        )
    console.print(table)
    if error is not None:
        errors.print(f"{error.code}: {error}", markup=False)
        raise typer.Exit(1)


@app.command("schema")
def schema(
    output: Annotated[Path | None, typer.Option(help="write to this file instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of mapping files (docs/schemas/mapping.schema.json) for editors."""
    from hub.mapping.jsonschema import mapping_file_schema

    text = json.dumps(mapping_file_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _shown(value: Any) -> str:
    from hub.mapping.paths import MISSING

    if value is MISSING:
        return "(missing)"
    return json.dumps(value, ensure_ascii=False, default=str)
