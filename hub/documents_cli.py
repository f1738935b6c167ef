"""``hub documents get``: an agent's retrieval of a filed document from a shell (thin over
:mod:`hub.documents`, which checks the claim check and journals the access)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from connectors.errors import ConnectorError

documents_app = typer.Typer(help="Documents the requests filed in the GED.", no_args_is_help=True)
errors = Console(stderr=True)


@documents_app.command("get")
def documents_get(
    request_id: str,
    document_id: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write (must not exist)")],
    agent: Annotated[str, typer.Option(help="who retrieves it (journaled)")] = os.environ.get(
        "USER", "agent"
    ),
    config: Annotated[str | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Write a document the request filed to OUTPUT, its digest checked; exit 1 if refused."""
    from hub.cli import _hub
    from hub.documents import DocumentError, retrieve

    if output.exists():
        errors.print(f"error: {output} exists; give a new file", markup=False)
        raise typer.Exit(2)
    hub = _hub(config)
    try:
        retrieved = retrieve(hub, request_id, document_id, agent, channel="hub documents get")
        with output.open("xb") as target:
            shutil.copyfileobj(retrieved.content, target)
        retrieved.content.close()
    except (DocumentError, ConnectorError) as exc:
        code = getattr(exc, "code", "failed")
        errors.print(f"error: {code}: {getattr(exc, 'message', exc)}", markup=False)
        raise typer.Exit(1) from None
    finally:
        hub.close()
    typer.echo(f"{output}: {retrieved.claim['size']} bytes, sha256 {retrieved.claim['sha256']}")
