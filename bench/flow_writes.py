"""What the worker spends on the database per birth-certificate request: statements, commits, CPU.

A small run, not a throughput figure: N requests are filed first (not measured), then one worker in
this process runs them to the end against the sandbox (its own process), and every statement the
hub's engines send is counted by kind. Commits are what the hub asked for on SQLite (the batched
writer shares one among several flows' writes) and the server's own count of committed
transactions on PostgreSQL (``pg_stat_database.xact_commit``; each worker write is one autocommit
statement there). CPU is this process's (the hub's worker, its sealing and WAL threads), per request.
Run it on two versions of the hub to compare what a change costs on the hot path.

    .venv/bin/python bench/flow_writes.py [--requests 200] [--database sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import _common as c
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

# This folder's connectors.py (a benchmark) would shadow the hub's connectors package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

DELIVERIES = ("courrier", "espace_citoyen")  # the flow's hot path; the GED filing after the wait


def run(kind: str, delivery: str, requests: int, sandbox: c.Sandbox, workdir: Path) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from hub.runtime import build_hub
    from hub.worker import Worker

    config = c.write_config(workdir)
    bodies = [json.loads(body) for body in c.sample_bodies()]
    with c.fresh_database(kind, workdir) as url:
        os.environ.update(c.hub_env(url, config, sandbox))
        hub = build_hub(config, url=url)
        key = hub.clients.add("bench-portal", ["portal"])
        with TestClient(create_app(hub)) as client:
            for number in range(requests):
                body = bodies[number % len(bodies)]
                body = {**body, "data": {**body["data"], "delivery": delivery}}
                answer = client.post("/v1/requests", json=body, headers={"Authorization": f"Bearer {key}"})
                assert answer.status_code == 202, answer.text
        hub_engines = {hub.db.engine, hub.db._read_engine}
        statements: Counter[str] = Counter()
        commits = [0]

        def on_statement(conn, cursor, statement, parameters, context, executemany) -> None:
            if conn.engine in hub_engines:
                statements[statement.lstrip().split(None, 1)[0].upper()] += 1

        def on_commit(conn) -> None:
            if conn.engine in hub_engines:
                commits[0] += 1

        before = _xact_commit(url) if kind == "postgres" else 0
        event.listen(Engine, "before_cursor_execute", on_statement)
        event.listen(Engine, "commit", on_commit)
        worker = Worker(hub, name="bench")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        cpu = time.process_time()
        thread.start()
        watcher = sa.create_engine(c.sa_url(url))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with watcher.connect() as connection:
                    pending = connection.execute(
                        sa.text("SELECT count(*) FROM outbox WHERE state = 'pending'")
                    ).scalar_one()
                if pending == 0:
                    break
                time.sleep(0.1)
            stop.set()
            thread.join()
            cpu = time.process_time() - cpu
            with watcher.connect() as connection:
                completed = connection.execute(
                    sa.text("SELECT count(*) FROM requests WHERE status = 'completed'")
                ).scalar_one()
        finally:
            event.remove(Engine, "before_cursor_execute", on_statement)
            event.remove(Engine, "commit", on_commit)
            watcher.dispose()
            hub.close()  # its server backends end and flush their statistics
        if kind == "postgres":
            time.sleep(1.0)
            commits[0] = _xact_commit(url) - before - 1  # less the reading of the counter itself
        per = 1 / max(completed, 1)
        writes = sum(n for verb, n in statements.items() if verb in ("INSERT", "UPDATE", "DELETE", "WITH"))
        return {
            "completed": completed,
            "write_statements": writes * per,
            "read_statements": statements["SELECT"] * per,
            "commits": commits[0] * per,
            "cpu_ms": cpu * 1000 * per,
        }


def _xact_commit(url: str) -> int:
    engine = sa.create_engine(c.sa_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.database_choices(parser)
    parser.add_argument("--requests", type=int, default=200, help="requests per run (default 200)")
    args = parser.parse_args(argv)
    with c.workspace("hub-bench-writes-") as workdir, c.sandbox_process(issue_delay_s=0.0) as sandbox:
        for kind in c.databases(args.database):
            for delivery in DELIVERIES:
                figures = run(kind, delivery, args.requests, sandbox, workdir)
                prefix = f"flow_writes.{kind}.{delivery}"
                if figures["completed"] < args.requests:
                    c.note(f"{prefix}: only {figures['completed']:.0f} of {args.requests} completed")
                c.emit(f"{prefix}.write_statements", figures["write_statements"], "per_request")
                c.emit(f"{prefix}.read_statements", figures["read_statements"], "per_request")
                c.emit(f"{prefix}.commits", figures["commits"], "per_request")
                c.emit(f"{prefix}.worker_cpu", figures["cpu_ms"], "ms_per_request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
