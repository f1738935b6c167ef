"""``hub systems``: the back-end systems as an operator sees them (thin over :mod:`hub.system_status`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from connectors.errors import ConnectorError

systems_app = typer.Typer(help="Back-end systems: list, status, check.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _hub(config):
    from hub.cli import _hub as build

    return build(config)


def _known(hub, name: str) -> None:
    if name not in hub.config.systems:
        errors.print(
            f"error: unknown system {name!r}; valid: {', '.join(hub.config.systems) or 'none'}", markup=False
        )
        raise typer.Exit(2)


@systems_app.command("list")
def systems_list(config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
    """Configured systems: kind, endpoint, operations flows may call."""
    from hub.runtime import load_definitions

    hub = _hub(config)
    operations = load_definitions(hub.config.source).operations
    table = Table("name", "kind", "endpoint", "operations", "description")
    for name, spec in hub.config.systems.items():
        table.add_row(
            name, spec.kind, spec.endpoint, ", ".join(sorted(operations.get(name, {}))), spec.description
        )
    console.print(table)
    hub.close()


@systems_app.command("status")
def systems_status(
    config: Annotated[str | None, typer.Option("--config", "-c")] = None,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="open a TCP connection to each")] = True,
) -> None:
    """Reachability, circuit breaker, last error and recent latency of every system.

    The breaker is the real state of every running process's breaker (they record their state
    changes in the database), the worst first; errors and latency come from the journal's last
    200 attempts (all processes); reachability is a TCP connection made now, nothing sent."""
    from hub.system_status import status_of

    hub = _hub(config)
    table = Table("system", "kind", "reachable", "breaker", "last error", "p50 ms", "p99 ms", "recent")
    for name in hub.config.systems:
        status = status_of(hub, name, probe=probe)
        reach = ("yes" if status.reachable else "NO") + f" ({status.reach_detail})" if probe else "-"
        error = (
            f"{status.last_error} at {status.last_error_at:%Y-%m-%d %H:%M:%S}" if status.last_error else "-"
        )
        table.add_row(
            name,
            status.kind,
            reach,
            status.breaker_detail,
            error,
            "-" if status.p50_ms is None else f"{status.p50_ms:g}",
            "-" if status.p99_ms is None else f"{status.p99_ms:g}",
            f"{status.recent_calls} calls, {status.recent_failures} transient failures",
        )
    console.print(table)
    hub.close()


@systems_app.command("check")
def systems_check(name: str, config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
    """Make a harmless, journaled call to one system (exit 1 if it fails)."""
    from hub.system_status import check_system

    hub = _hub(config)
    _known(hub, name)
    try:
        answer = check_system(hub, name)
    except ConnectorError as exc:
        kind = "transient" if exc.transient else "permanent"
        errors.print(f"{name}: FAILED ({kind}) {exc.code}: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    finally:
        hub.close()
    console.print(f"{name}: OK {answer}", markup=False, highlight=False)
