"""``hub``: the command line of operators and integration engineers (thin over the services)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hub.documents_cli import documents_app
from hub.mapping_cli import app as mappings_app
from hub.systems_cli import systems_app
from hub.yamlfile import ConfigError

app = typer.Typer(help="Municipal integration hub.", no_args_is_help=True, pretty_exceptions_enable=False)
config_app = typer.Typer(help="Check the configuration, flows and mappings.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
clients_app = typer.Typer(help="API clients and their keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The exchange journal.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(clients_app, name="clients")
app.add_typer(audit_app, name="audit")
dead_app = typer.Typer(
    help="Requests stopped on a permanent error or exhausted retries.", no_args_is_help=True
)
app.add_typer(dead_app, name="dead-letters")
app.add_typer(mappings_app, name="mappings")
app.add_typer(systems_app, name="systems")
app.add_typer(documents_app, name="documents")

console = Console()
errors = Console(stderr=True)
# The name an operator's journaled action carries when --operator is not given: the login's.
DEFAULT_OPERATOR = os.environ.get("USER", "operator")
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="hub.yaml (default: $HUB_CONFIG or config/hub.yaml)")
]


def _hub(config: Path | None, *, migrate: bool = True):
    from hub.db.engine import DatabaseUnusable
    from hub.runtime import build_hub

    try:
        return build_hub(config, migrate=migrate)
    except ConfigError as exc:
        _print_config_errors(exc)
        raise typer.Exit(1) from None
    except DatabaseUnusable as exc:  # one line, not the driver's traceback
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _print_config_errors(exc: ConfigError) -> None:
    for issue in exc.issues:  # one line each, never wrapped: editors and CI logs parse file:line
        errors.print(str(issue), markup=False, highlight=False, soft_wrap=True)
    errors.print(f"{len(exc.issues)} configuration error(s)", style="bold red")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate hub.yaml, every flow and mapping; print a summary (exit 1 on errors)."""
    from hub.runtime import load_definitions

    try:
        definitions = load_definitions(config)
    except ConfigError as exc:
        _print_config_errors(exc)
        raise typer.Exit(1) from None
    cfg = definitions.config
    console.print(f"[bold]{cfg.municipality.name}[/] (INSEE {cfg.municipality.insee_code}) — {cfg.source}")
    table = Table("kind", "name", "details")
    for name, system in cfg.systems.items():
        table.add_row("system", name, f"{system.kind} {system.endpoint}")
    for name, client in cfg.clients.items():
        table.add_row("client", name, " ".join(client.scopes))
    for name, purpose in cfg.purposes.items():
        table.add_row("purpose", name, f"{purpose.legal_basis}, retention {purpose.retention}")
    for name, flow in definitions.flows.items():
        table.add_row("flow", name, f"{len(flow.steps)} steps, purpose {flow.spec.purpose}")
    for name in definitions.mappings:
        table.add_row("mapping", name, "")
    console.print(table)
    console.print(
        f"OK: {len(cfg.systems)} systems, {len(cfg.clients)} clients, {len(cfg.purposes)} purposes, "
        f"{len(definitions.flows)} flows, {len(definitions.mappings)} mappings"
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply the database migrations (HUB_DATABASE_URL or the embedded SQLite file)."""
    hub = _hub(config)
    # One line whatever the terminal's width: scripts read it.
    url = hub.db.engine.url.render_as_string(hide_password=True)
    console.print(f"database at head: {url}", soft_wrap=True)
    hub.close()


@clients_app.command("add")
def clients_add(
    name: str,
    scopes: Annotated[
        list[str], typer.Option("--scopes", "-s", help="portal, requests:read_all, audit, admin")
    ],
    config: ConfigOption = None,
) -> None:
    """Create an API client; its key is printed once, alone on the last line."""
    from hub.auth import ClientExists

    hub = _hub(config)
    flat = [part for value in scopes for part in value.replace(",", " ").split()]
    try:
        key = hub.clients.add(name, flat)
    except (ClientExists, ValueError) as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"client {name} created with scopes {' '.join(sorted(set(flat)))}; its key (shown once):")
    print(key)


@clients_app.command("list")
def clients_list(config: ConfigOption = None) -> None:
    """List API clients (keys are never shown: only their hashes are stored)."""
    hub = _hub(config)
    table = Table("name", "scopes", "origin")
    table.columns[0].no_wrap = True  # the name `hub clients revoke` takes
    for row in hub.clients.list():
        table.add_row(*row)
    console.print(table)


@clients_app.command("revoke")
def clients_revoke(
    name: str,
    operator: Annotated[str, typer.Option(help="who revokes it (journaled)")] = DEFAULT_OPERATOR,
    config: ConfigOption = None,
) -> None:
    """Revoke the key of a client added with `hub clients add`: it answers 401 from then on (within
    10 s in running hub processes), each use journaled under the client's name."""
    from hub.auth import ClientExists, UnknownClient

    hub = _hub(config)
    row = hub.call_row(operator, "revoke client key", "accepted", {"client": name})
    try:
        already = hub.clients.revoke(name, row)
    except (ClientExists, UnknownClient) as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        hub.close()
    if already is not None:
        console.print(f"client {name} was already revoked (at {already:%Y-%m-%d %H:%M:%S} UTC)", markup=False)
        return
    console.print(
        f"client {name} revoked: its key answers 401 (within 10 s in running hub processes)", markup=False
    )


@audit_app.command("verify")
def audit_verify(
    config: ConfigOption = None,
    seal_first: Annotated[bool, typer.Option("--seal/--no-seal", help="seal pending rows first")] = True,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="a checkpoint kept outside the database (`hub audit checkpoint`); repeatable",
        ),
    ] = None,
) -> None:
    """Check the journal head's MAC and the hash chain; exit 1 naming the first problem.

    With --checkpoint, each checkpoint's position must still hold its hash and the head must not
    be behind it (a rollback). Exit 2: a checkpoint file that cannot be read or is not this
    journal's (edited, forged, another hub's)."""
    from hub import journal
    from hub.journal_checkpoint import CheckpointError

    hub = _hub(config)
    opened = []
    for path in checkpoints or []:
        try:
            opened.append(hub.checkpoint_signer.open(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            errors.print(f"{path}: cannot read the checkpoint: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except CheckpointError as exc:
            errors.print(f"{path}: not a checkpoint of this journal: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    if seal_first:
        with contextlib.suppress(journal.HeadNotAuthentic):  # verify names the problem
            journal.seal(hub.db, hub.journal_key)
    result = journal.verify(hub.db, hub.journal_key, opened)
    (console if result.ok else errors).print(result.describe(), markup=False, soft_wrap=True)
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    config: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write it to this new file (else print it)")
    ] = None,
    seal_first: Annotated[bool, typer.Option("--seal/--no-seal", help="seal pending rows first")] = True,
) -> None:
    """A signed checkpoint of the journal head, for an auditor to keep outside the database.

    A C2SP signed note (Ed25519); `hub audit verify --checkpoint FILE` later proves the journal
    was not rolled back behind it. Exit 1 if the head fails its MAC (nothing is signed), 2 if FILE
    exists or cannot be written."""
    from hub import journal
    from hub.journal_checkpoint import HeadRefused, checkpoint

    if out is not None and out.exists():
        errors.print(
            f"{out} exists: checkpoints are kept, not overwritten; choose a new name",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    hub = _hub(config)
    if seal_first:
        with contextlib.suppress(journal.HeadNotAuthentic):  # the checkpoint refuses that head below
            journal.seal(hub.db, hub.journal_key)
    try:
        made = checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key)
    except HeadRefused as exc:
        errors.print(f"no checkpoint signed: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if out is None:
        sys.stdout.write(made.note)
        return
    try:
        with out.open("x", encoding="utf-8") as file:
            file.write(made.note)
    except OSError as exc:
        errors.print(f"{out}: cannot write the checkpoint: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"checkpoint of seq {made.seq} written to {out}", markup=False, soft_wrap=True)


@audit_app.command("verifier-key")
def audit_verifier_key(config: ConfigOption = None) -> None:
    """The public key auditors check checkpoints with (signed-note verifier key, Ed25519)."""
    hub = _hub(config, migrate=False)
    print(hub.checkpoint_signer.verifier_key)


@dead_app.command("list")
def dead_letters_list(config: ConfigOption = None) -> None:
    """Dead-lettered requests, oldest first, with their cause.

    One line per request beginning with its whole id (what `replay` takes; a table column squeezed
    to an 80-column terminal used to cut it), then its cause, indented and wrapped."""
    from hub.deadletters import list_dead

    hub = _hub(config)
    letters = list_dead(hub)
    for letter in letters:
        flow = hub.flows.get(letter.flow)
        step = str(letter.step)
        if flow is not None and 0 <= letter.step < len(flow.steps):
            step = f"{letter.step} ({flow.steps[letter.step].id})"
        since = letter.failed_at.strftime("%Y-%m-%d %H:%M:%S")
        line = f"{letter.request_id}  {letter.flow}  step {step}  since {since} UTC"
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(Padding(Text(letter.error or "(no cause recorded)"), (0, 0, 0, 4)))
    console.print(f"{len(letters)} dead letter(s)")


@dead_app.command("replay")
def dead_letters_replay(
    request_id: str,
    operator: Annotated[str, typer.Option(help="who replays (journaled)")] = DEFAULT_OPERATOR,
    config: ConfigOption = None,
) -> None:
    """Put a dead-lettered request back in the queue at the step that failed."""
    from hub.deadletters import NotDead, replay

    hub = _hub(config)
    try:
        replay(hub, request_id, operator)
    except NotDead as exc:
        errors.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    console.print(f"request {request_id} queued again; a worker resumes it at its failed step")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="run the embedded worker")] = True,
    processes: Annotated[int, typer.Option(min=1, max=64, help="API processes sharing the port")] = 1,
    config: ConfigOption = None,
) -> None:
    """Run the API (and an embedded worker): the embedded default needs nothing else."""
    from hub.server import serve as run_server

    hub = _hub(config)
    run_server(hub, host, port, with_worker=worker, processes=processes, config_path=config)


@app.command("worker")
def worker_command(
    concurrency: Annotated[int | None, typer.Option(help="flows run at once (default: config)")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="serve this worker's Prometheus metrics on this port (/metrics)"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="address of the metrics endpoint")] = "127.0.0.1",
    config: ConfigOption = None,
) -> None:
    """Run a worker alone (scale out: several processes on one PostgreSQL database)."""
    import signal
    import threading

    from prometheus_client import start_http_server

    from hub.server import tune_for_serving
    from hub.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    hub = _hub(config)
    if metrics_port is not None:
        # The calls this process makes (exchanges, breakers, latencies) are only known here; the
        # queue and request figures, read from the database, are the same in every process.
        try:
            server, _ = start_http_server(metrics_port, metrics_host, registry=hub.metrics.registry)
        except OSError as exc:
            errors.print(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}")
            hub.close()
            raise typer.Exit(1) from None
        host, port = server.server_address[:2]
        console.print(f"worker metrics at http://{host}:{port}/metrics", highlight=False)
    tune_for_serving()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Worker(hub, concurrency=concurrency).run(stop)


@app.command()
def sandbox(
    port_base: Annotated[int, typer.Option(help="first port; the shipped hub.yaml expects 8101")] = 8101,
    issue_delay: Annotated[float, typer.Option(help="seconds before the registry issues an act")] = 0.5,
    print_env: Annotated[
        bool,
        typer.Option(
            "--print-env",
            help="print the shell exports (addresses, host key, test credentials) the hub needs to reach "
            'this sandbox, and exit: eval "$(hub sandbox --print-env)"',
        ),
    ] = False,
) -> None:
    """Run the simulated back-ends alone and print their addresses and the hub's variables."""
    from sandbox.runner import main

    argv = ["--port-base", str(port_base), "--issue-delay", str(issue_delay)]
    raise typer.Exit(main([*argv, "--print-env"] if print_env else argv))


@app.command()
def demo(
    once: Annotated[bool, typer.Option("--once", help="exit when done: 0 only if all went well")] = False,
    port: Annotated[int, typer.Option(help="port of the hub's API")] = 8000,
    config: ConfigOption = None,
) -> None:
    """Start the sandbox and the hub, submit the sample requests, show what happened."""
    from hub.db.engine import DatabaseUnusable
    from hub.demo import run_demo

    try:
        code = run_demo(config=config, port=port, once=once)
    except ConfigError as exc:  # the newcomer's first command: file:line, not a traceback
        _print_config_errors(exc)
        raise typer.Exit(1) from None
    except DatabaseUnusable as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


from hub.citizens_cli import app as citizens_app  # noqa: E402  (it reuses the helpers above)

app.add_typer(citizens_app, name="citizens")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
