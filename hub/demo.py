"""``hub demo``: the whole path of a request, on one machine, in under a minute.

Starts the sandbox back-ends and the hub (API + embedded worker, SQLite), files the sample
requests of ``sandbox/samples/`` over HTTP as the portal would, waits for them, and shows the
outcome, the journal summary and the journal's verification. Sample files whose name contains
``invalid`` must be refused with 422; every other one must complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from hub import journal
from hub.api.app import create_app
from hub.db.models import JournalEntry
from hub.runtime import build_hub
from hub.worker import run_in_thread
from sandbox.runner import ServerThread, bind_socket, start_sandbox

SAMPLES = Path(__file__).resolve().parent.parent / "sandbox" / "samples"
TERMINAL = ("completed", "failed", "rejected")
DEADLINE_S = 60.0


def run_demo(
    *,
    config: Path | None = None,
    port: int = 8000,
    once: bool = False,
    samples: Path = SAMPLES,
    console: Console | None = None,
) -> int:
    console = console or Console()
    started = time.monotonic()
    with start_sandbox(issue_delay_s=0.5) as sandbox:
        os.environ.update(sandbox.environment())  # its addresses, host key and test credentials
        console.print("[bold]sandbox[/] " + "  ".join(f"{k}={v}" for k, v in sandbox.urls.items()))
        hub = build_hub(config, url=os.environ.get("HUB_DATABASE_URL") or _fresh_demo_database(config))
        key = hub.clients.add(f"demo-portal-{int(time.time())}", ["portal"])
        try:
            sock = bind_socket("127.0.0.1", port)
        except OSError:
            console.print(f"port {port} is busy; using a free port instead")
            sock = bind_socket("127.0.0.1", 0)
        server = ServerThread("hub", create_app(hub), sock)
        server.start()
        worker, stop = run_in_thread(hub)
        base = f"http://127.0.0.1:{server.port}"
        console.print(f"[bold]hub[/] API {base}  docs {base}/docs  metrics {base}/metrics")
        try:
            ok = _exchange(console, base, key, samples)
            with contextlib.suppress(journal.HeadNotAuthentic):  # verify names the problem
                journal.seal(hub.db, hub.journal_key)
            verification = journal.verify(hub.db, hub.journal_key)
            _journal_summary(console, hub)
            style = "green" if verification.ok else "bold red"
            console.print(f"hub audit verify: [{style}]{verification.describe()}[/]")
            ok = ok and verification.ok
            console.print(f"demo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
            if not once:
                console.print(f"serving until Ctrl-C: API docs {base}/docs, metrics {base}/metrics")
                # The demo's portal key, to replay a sample by hand against this running hub.
                console.print(
                    f"try: curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
                    f"--data @sandbox/samples/01-lefevre-copie-integrale.json {base}/v1/requests",
                    soft_wrap=True,
                    markup=False,
                    highlight=False,
                )
                _wait_forever()
            return 0 if ok else 1
        finally:
            stop.set()
            worker.join(timeout=10)
            server.stop()
            hub.close()


def _fresh_demo_database(config: Path | None) -> str:
    from hub.config import load_config

    cfg, _ = load_config(config)
    data = cfg.resolve(cfg.paths.data)
    data.mkdir(parents=True, exist_ok=True)
    path = data / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _exchange(console: Console, base: str, key: str, samples: Path) -> bool:
    headers = {"Authorization": f"Bearer {key}"}
    accepted: dict[str, tuple[str, dict]] = {}
    ok = True
    table = Table("sample", "request", "flow", "citizen", "status", "target", "latency")
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        for path in sorted(samples.glob("*.json")):
            body = json.loads(path.read_text(encoding="utf-8"))
            answer = client.post("/v1/requests", json=body, headers={"Idempotency-Key": f"demo-{path.stem}"})
            expect_invalid = "invalid" in path.stem
            if answer.status_code == 202 and not expect_invalid:
                accepted[path.stem] = (answer.json()["id"], body)
            elif answer.status_code == 422 and expect_invalid:
                fields = ", ".join(d["field"] for d in answer.json()["error"]["details"])
                table.add_row(
                    path.stem,
                    "-",
                    body.get("flow", "?"),
                    _who(body),
                    "[yellow]422 refused[/]",
                    "-",
                    f"fields: {fields}",
                )
            else:
                ok = False
                table.add_row(
                    path.stem,
                    "-",
                    body.get("flow", "?"),
                    _who(body),
                    f"[red]unexpected {answer.status_code}[/]",
                    "-",
                    answer.text[:60],
                )
        deadline = time.monotonic() + DEADLINE_S
        states: dict[str, dict] = {}
        while time.monotonic() < deadline:
            for stem, (request_id, _) in accepted.items():
                if states.get(stem, {}).get("status") not in TERMINAL:
                    states[stem] = client.get(f"/v1/requests/{request_id}").json()
            if all(s.get("status") in TERMINAL for s in states.values()):
                break
            time.sleep(0.2)
    for stem, (request_id, body) in accepted.items():
        state = states.get(stem, {})
        status = state.get("status", "?")
        ok = ok and status == "completed"
        latency = "-"
        if state.get("completed_at"):
            delta = datetime.fromisoformat(state["completed_at"]) - datetime.fromisoformat(
                state["created_at"]
            )
            latency = f"{delta.total_seconds() * 1000:.0f} ms"
        colour = "green" if status == "completed" else "red"
        table.add_row(
            stem,
            request_id[:8],
            body["flow"],
            _who(body),
            f"[{colour}]{status}[/]",
            state.get("target_system") or "-",
            latency,
        )
    console.print(table)
    return ok


def _who(body: dict) -> str:
    citizen = body.get("citizen", {})
    given = " ".join(citizen.get("given_names", [])[:1])
    return f"{given} {citizen.get('birth_name', '?')}".strip()


def _journal_summary(console: Console, hub) -> None:
    table = Table("direction", "system", "operation", "outcome", "rows")
    with hub.db.sessions() as session:
        rows = session.execute(
            select(
                JournalEntry.direction,
                JournalEntry.system,
                JournalEntry.operation,
                JournalEntry.outcome,
                func.count(),
            )
            .group_by(
                JournalEntry.direction, JournalEntry.system, JournalEntry.operation, JournalEntry.outcome
            )
            .order_by(JournalEntry.direction, JournalEntry.system, JournalEntry.operation)
        ).all()
    for row in rows:
        table.add_row(*(str(value) for value in row))
    console.print("[bold]journal[/] (digests and references only, no personal data)")
    console.print(table)


def _wait_forever() -> None:
    event = threading.Event()
    try:
        while not event.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
