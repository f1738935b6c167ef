"""``hub citizens``: the golden citizen record in the terminal — initial load, explanations, the
data stewards' review queue, merges and unmerges, the thresholds report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Prompt
from rich.table import Table

from hub.master_store import MasterDataError

app = typer.Typer(help="The golden citizen record (master data).", no_args_is_help=True)
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # a file:line stays on one line
Actor = Annotated[str, typer.Option(help="who acts (journaled)")]
DEFAULT_ACTOR = os.environ.get("USER", "steward")


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="hub.yaml (default: $HUB_CONFIG or config/hub.yaml)")
]


def _citizens(config: Path | None):
    from hub.citizens import Citizens
    from hub.cli import _hub  # at call time: hub.cli imports this module to register it

    return Citizens(_hub(config))


def _fail(message: str) -> None:
    errors.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(1)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="the system's export: .csv (header row) or .json (a list)")],
    system: Annotated[str, typer.Option("--system", help="the system the export comes from")],
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="batch engine: deduplicate the whole file and link it to the stored golden records at once",
        ),
    ] = False,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="estimate the match weights again (EM) from the stored records and this file together, "
            "before matching (stored: every later resolution uses them)",
        ),
    ] = False,
    actor: Actor = DEFAULT_ACTOR,
    config: ConfigOption = None,
) -> None:
    """Build golden records from a system's export; running it again changes nothing."""
    from master_data.sources import SourceFileError, read_records

    citizens = _citizens(config)
    settings = citizens.hub.config
    known = sorted({*settings.systems, settings.master_data.portal_system})
    if system not in known:
        _fail(f"unknown system {system!r}; valid: {', '.join(known)}")
    try:
        records = read_records(file, system, known)
    except SourceFileError as exc:
        for issue in exc.issues:
            errors.print(str(issue), markup=False, highlight=False)
        _fail(f"{len(exc.issues)} problem(s) in {file}; nothing was imported")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    arguments = {"source": file.name, "raw": file.read_bytes(), "actor": actor, "estimate": estimate}
    try:
        if batch:
            # The matching steps show their own bar (stderr) before the golden records are written.
            summary = _import_batch(citizens, system, records, arguments, columns)
        else:
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task(f"importing {system}", total=len(records))
                summary = citizens.import_records(
                    system, records, progress=lambda n: progress.advance(task, n), **arguments
                )
    except MasterDataError as exc:
        _fail(exc.message)
    title = f"{file.name} ({system}): {summary.records} records, {summary.mode}"
    table = Table("outcome", "records", title=title)
    if summary.mode.startswith("batch"):
        rows = {
            "records": summary.records,
            "golden records created": summary.golden_records_created,
            "linked to an existing golden record": summary.outcomes.get("link", 0),
            "linked to a new golden record": summary.outcomes.get("joined", 0),
            "review tasks": summary.review_tasks + summary.outcomes.get("review", 0),
            "known record, changed": summary.outcomes.get("updated", 0),
            "known record, unchanged": summary.outcomes.get("unchanged", 0),
        }
    else:
        labels = {
            "new": "new golden record",
            "link": "linked to an existing golden record",
            "review": "new golden record + review task",
            "updated": "known record, changed",
            "unchanged": "known record, unchanged",
        }
        rows = {label: summary.outcomes.get(outcome, 0) for outcome, label in labels.items()}
    for label, count in rows.items():
        table.add_row(label, str(count))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)
    console.print(f"match weights: {summary.model}; journal exchange {summary.exchange_id}")


def _import_batch(
    citizens: Any, system: str, records: list[Any], arguments: dict[str, Any], columns: Any
) -> Any:
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"importing {system}", total=len(records), start=False)

        def advance(n: int) -> None:
            progress.start_task(task)
            progress.advance(task, n)

        def stage(name: str) -> None:
            progress.update(task, description=f"{name} ({system})")

        return citizens.import_batch(system, records, progress=advance, steps=True, stage=stage, **arguments)


@app.command("explain")
def explain_command(
    a: Annotated[str, typer.Argument(help="SYSTEM:LOCAL_ID or a golden id")],
    b: Annotated[str, typer.Argument(help="SYSTEM:LOCAL_ID or a golden id")],
    actor: Actor = DEFAULT_ACTOR,
    config: ConfigOption = None,
) -> None:
    """Compare two records field by field: comparison level, weight, total, probability."""
    citizens = _citizens(config)
    try:
        result = citizens.explain(a, b)
    except MasterDataError as exc:
        citizens.journal_access(actor, "hub citizens explain", None, outcome=exc.code)
        _fail(exc.message)
    citizens.journal_explained(actor, "hub citizens explain", result)
    _print_explanation(result)


def _print_explanation(result: dict[str, Any]) -> None:
    for side, golden_id in sorted(result.get("merged_into", {}).items()):
        console.print(f"{result[side]} was merged into {golden_id}: compared as {golden_id}")
    table = Table("field", "level", "weight")
    for comparison in result["comparisons"]:
        weight = comparison["weight"]
        style = "green" if weight > 0 else "red" if weight < 0 else "dim"
        table.add_row(comparison["field"], comparison["level"], f"[{style}]{weight:+.2f}[/]")
    console.print(table)
    rule = f", rule {result['rule']}" if result.get("rule") else ""
    # explain says what the matcher decides; a task's explanation has no outcome (a steward decides).
    outcome = f" → [bold]{result['outcome']}[/]" if result.get("outcome") else ""
    console.print(f"total {result['total']:+.2f}, probability {result['probability']:.4f}{rule}{outcome}")


@app.command("review")
def review_command(
    actor: Actor = DEFAULT_ACTOR,
    limit: Annotated[int, typer.Option(help="tasks to go through in this session")] = 20,
    config: ConfigOption = None,
) -> None:
    """Go through open review tasks: l = link (same person), n = not the same, s = skip, q = quit."""
    citizens = _citizens(config)
    tasks = citizens.tasks("open", limit).tasks
    citizens.journal_shown(actor, "hub citizens review", tasks)
    if not tasks:
        console.print("no open review task")
        return
    decided = 0
    for task in tasks:
        _print_task(task)
        choice = Prompt.ask("same person?", choices=["l", "n", "s", "q"], default="s", console=console)
        if choice == "q":
            break
        if choice == "s":
            continue
        try:
            result = citizens.decide(task["id"], "link" if choice == "l" else "not_same", actor=actor)
        except MasterDataError as exc:
            errors.print(f"task {task['id']}: {exc.message}", markup=False)
            continue
        decided += 1
        merge = result.get("merge")
        console.print(
            f"task {task['id']}: {result['status']}"
            + (f"; {merge['other_id']} merged into {merge['golden_id']}" if merge else "")
        )
    console.print(f"{decided} decision(s) recorded")


def _print_task(task: dict[str, Any]) -> None:
    table = Table(
        "", "incoming record", "candidate", title=f"task {task['id']} — p = {task['probability']:.3f}"
    )
    record, candidate = task.get("record") or {}, task.get("candidate") or {}
    for key in (
        "system",
        "local_id",
        "birth_name",
        "used_name",
        "given_names",
        "birth_date",
        "sex",
        "birth_place",
        "address",
        "postal_code",
        "city",
        "email",
        "phone",
    ):
        left, right = record.get(key), candidate.get(key)
        if left is None and right is None:
            continue
        show = lambda v: ", ".join(v) if isinstance(v, list) else ("" if v is None else str(v))  # noqa: E731
        table.add_row(key, show(left), show(right))
    console.print(table)
    rule = f" [dim]({task['rule']})[/]" if task.get("rule") else ""
    console.print(f"[bold]why you are asked[/]: {task['why']}{rule}")
    _print_explanation(task["explanation"])


@app.command("merge")
def merge_command(
    survivor: str,
    absorbed: str,
    reason: Annotated[str | None, typer.Option()] = None,
    actor: Actor = DEFAULT_ACTOR,
    config: ConfigOption = None,
) -> None:
    """Merge golden record ABSORBED into SURVIVOR (values re-derived from all their sources)."""
    try:
        result = _citizens(config).merge(survivor, absorbed, actor=actor, reason=reason)
    except MasterDataError as exc:
        _fail(exc.message)
    console.print(
        f"merged {absorbed} into {survivor}: {len(result['moved'])} record(s) moved; "
        f"systems concerned: {', '.join(result['systems']) or 'none'}"
    )


@app.command("unmerge")
def unmerge_command(
    survivor: str,
    restored: str,
    reason: Annotated[str | None, typer.Option()] = None,
    actor: Actor = DEFAULT_ACTOR,
    config: ConfigOption = None,
) -> None:
    """Split RESTORED back out of SURVIVOR: the records its merge moved go back to it."""
    try:
        result = _citizens(config).unmerge(survivor, restored, actor=actor, reason=reason)
    except MasterDataError as exc:
        _fail(exc.message)
    console.print(f"split {restored} back out of {survivor}: {len(result['moved'])} record(s) moved back")


@app.command("show")
def show_command(golden_id: str, actor: Actor = DEFAULT_ACTOR, config: ConfigOption = None) -> None:
    """The 360° view of a golden record: values with lineage, cross-references (journaled)."""
    citizens = _citizens(config)
    try:
        view = citizens.view(golden_id)
    except MasterDataError as exc:
        citizens.journal_access(actor, "hub citizens show", golden_id, outcome=exc.code)
        _fail(exc.message)
    citizens.journal_access(actor, "hub citizens show", golden_id)
    console.print(f"[bold]{view['id']}[/] {view['status']} v{view['version']}")
    if view["merged_into"]:
        # A merged record holds no values: the person lives in the survivor now.
        console.print(f"merged into {view['merged_into']}: see hub citizens show {view['merged_into']}")
        return
    if view["merged_from"]:
        console.print(f"merged from: {', '.join(view['merged_from'])}")
    values = Table("attribute", "value", "from", "rule", "changed")
    for attribute, value in view["values"].items():
        shown = value["value"]
        shown = (
            ", ".join(shown)
            if isinstance(shown, list)
            else (" ".join(str(v) for v in shown.values() if v) if isinstance(shown, dict) else str(shown))
        )
        lineage = value["lineage"]
        values.add_row(
            attribute,
            shown,
            f"{lineage['system']}:{lineage['local_id']}",
            lineage["rule"],
            (lineage.get("updated_at") or lineage["observed_at"])[:19],
        )
    console.print(values)
    xrefs = Table("system", "local id", "link", "probability")
    for xref in view["cross_references"]:
        probability = "" if xref["probability"] is None else f"{xref['probability']:.3f}"
        xrefs.add_row(xref["system"], xref["local_id"], xref["link"], probability)
    console.print(xrefs)
    if view["stated_identifiers"]:
        stated = Table("stated identifier", "stated by", "held by")
        for item in view["stated_identifiers"]:
            by = item["stated_by"]
            holder = item["held_by"]
            held = "this record" if holder == view["id"] else (holder or "no record yet")
            stated.add_row(f"{item['system']}:{item['local_id']}", f"{by['system']}:{by['local_id']}", held)
        console.print(stated)


@app.command("thresholds")
def thresholds_command(config: ConfigOption = None) -> None:
    """Stewards' decisions by match probability, and the thresholds they support."""
    report = _citizens(config).thresholds_report()
    table = Table(
        "probability",
        "decided",
        "linked",
        "not same",
        "linked share",
        title=f"thresholds: upper {report.upper:g}, lower {report.lower:g}",
    )
    for band in report.bands:
        share = "" if band.linked_share is None else f"{band.linked_share:.0%}"
        table.add_row(
            f"{band.low:.2f}–{band.high:.2f}",
            str(band.decided),
            str(band.linked),
            str(band.decided - band.linked),
            share,
        )
    console.print(table)
    if report.by_rule:
        ruled = Table("rule", "decided", "linked", "not same", title="tasks a rule made (not in the bands)")
        for rule in report.by_rule:
            ruled.add_row(rule.rule, str(rule.decided), str(rule.linked), str(rule.decided - rule.linked))
        console.print(ruled)
    console.print(f"{report.decided} decided ({report.scored} on the score's band), {report.pending} open")
    fmt = lambda v: "not enough decisions" if v is None else f"{v:.3f}"  # noqa: E731
    console.print(
        f"suggested upper: {fmt(report.suggested_upper)}; suggested lower: {fmt(report.suggested_lower)}"
    )


@app.command("reindex")
def reindex_command(config: ConfigOption = None) -> None:
    """Rebuild the blocking-key index (after the blocking rules changed with an upgrade)."""
    citizens = _citizens(config)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("reindexing", total=citizens.population())
        count = citizens.reindex(lambda n: progress.advance(task, n))
    console.print(f"{count} records indexed again")


@app.command("estimate")
def estimate_command(config: ConfigOption = None) -> None:
    """Estimate the match weights again (EM) from the stored records; workers pick them up."""
    try:
        count = _citizens(config).estimate()
    except MasterDataError as exc:
        _fail(exc.message)
    console.print(f"weights estimated from {count} records and stored")
