"""End to end: completed birth-certificate requests per second through the SOAP sandbox.

The sandbox runs in its own process (``python -m sandbox --issue-delay 0``: the first status poll
finds the act issued), the hub as ``hub serve`` (API + embedded worker) in another, on a fresh
SQLite file and/or PostgreSQL database, once per worker concurrency tried (a temporary copy of
hub.yaml with ``worker.concurrency`` changed). N requests are posted as fast as the intake takes
them (32 keep-alive clients); the time runs from the first POST to the last ``completed_at``
written by the worker. Each run is repeated with ``hub serve --processes`` 1 and 2 (API + embedded
worker per process; figures of 2 processes are named ``e2e.<db>.p2.c<k>``), since a production
hub uses its cores. Baseline in the same run: N RequestActCopy + GetActRequestStatus pairs made
with bare zeep against the same sandbox from as many threads as the worker's concurrency, so
``e2e.<db>.c<k>.vs_baseline`` is the hub's overhead. Goal: >= 200 completed/s. Also the peak
resident size of the largest ``hub serve`` process meanwhile (``serve_peak_rss``: the API with its
embedded worker, zeep and the flows running; bench/memory.py measures the API alone).

    .venv/bin/python bench/end_to_end.py [--requests 400] [--concurrency 4,8,16] [--processes 1,2]
                                         [--database ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as c
import requests
import sqlalchemy as sa
import zeep
from requests.adapters import HTTPAdapter
from zeep.helpers import serialize_object

from hub.db.models import Request
from hub.runtime import load_definitions

WSDL = c.ROOT / "config" / "wsdl" / "etat-civil.wsdl"


def act_messages(config: Path) -> list[dict]:
    """The RequestActCopy message of each sample, mapped by the hub's own mapping file (once)."""
    mapping = load_definitions(config).mappings["etat-civil/request-act-copy"]
    messages = []
    for body in (json.loads(raw) for raw in c.sample_bodies()):
        document = {"request": {"id": "template"}, "citizen": body["citizen"], "data": body["data"]}
        messages.append(mapping.apply(document))
    return messages


def zeep_baseline(endpoint: str, messages: list[dict], pairs: int, threads: int) -> tuple[float, int, float]:
    """``pairs`` RequestActCopy + GetActRequestStatus with bare zeep; (pairs/s, pairs not ISSUED,
    client CPU ms per pair)."""
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads, max_retries=0))
    client = zeep.Client(str(WSDL), transport=zeep.Transport(session=session, timeout=30))
    service = client.create_service(next(iter(client.wsdl.bindings)), endpoint)

    def pair(number: int) -> bool:
        message = {**messages[number % len(messages)], "reference": str(uuid.uuid4())}
        created = serialize_object(service.RequestActCopy(**message), dict)
        status = serialize_object(service.GetActRequestStatus(requestNumber=created["requestNumber"]), dict)
        return status["status"] == "ISSUED"

    pair(0)  # warm the connection and zeep's caches, like the hub's first call
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        issued = sum(pool.map(pair, range(pairs)))
    elapsed = time.perf_counter() - started
    return pairs / elapsed, pairs - issued, (time.process_time() - cpu) * 1000 / pairs


def statuses(url: str) -> dict[str, int]:
    engine = sa.create_engine(c.sa_url(url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(Request.status, sa.func.count()).group_by(Request.status))
            return {status: count for status, count in rows}
    finally:
        engine.dispose()


def last_completed_at(url: str) -> datetime | None:
    engine = sa.create_engine(c.sa_url(url))
    try:
        with engine.connect() as connection:
            return connection.scalar(
                sa.select(sa.func.max(Request.completed_at)).where(Request.status == "completed")
            )
    finally:
        engine.dispose()


@dataclass
class HubRun:
    """One hub run's figures: per_s completed per second; CPU in ms per completed request."""

    per_s: float
    not_completed: int
    hub_cpu_ms: float
    sandbox_cpu_ms: float
    machine_cpu_ms: float
    peak_rss_mb: float  # the largest hub serve process (API + embedded worker) while it ran


def run_hub(
    kind: str, concurrency: int, processes: int, sandbox: c.Sandbox, workdir: Path, args: argparse.Namespace
) -> HubRun:
    """One hub run. The hub's CPU per request (API and worker together) is the steadier figure on
    a shared machine; the machine's (every process, PostgreSQL and the kernel included) divided
    into the cores gives the ceiling of this deployment on this machine."""
    config = c.write_config(workdir, concurrency=concurrency)
    bodies = c.sample_bodies()
    with c.fresh_database(kind, workdir) as url:
        env = c.hub_env(url, config, sandbox)
        key = c.add_client(env)
        embedded = args.worker_processes == 0
        with (
            c.hub_server(env, workdir, worker=embedded, processes=processes) as server,
            c.hub_workers(env, workdir, args.worker_processes) as workers,
            c.CpuMeter(server.pid, *(w.pid for w in workers)) as hub_cpu,
            c.CpuMeter(sandbox.process.pid) as sandbox_cpu,
            c.MachineCpuMeter() as machine_cpu,
            c.RssSampler(server.pid, tree=True) as rss,
        ):
            first_post = datetime.now(UTC)
            load = c.load_with(server, key, bodies, args, count=args.requests)
            intake_s = load.elapsed_s
            deadline = time.monotonic() + args.timeout
            seen: dict[str, int] = {}
            while time.monotonic() < deadline:
                seen = statuses(url)
                if sum(seen.get(status, 0) for status in c.TERMINAL) >= load.accepted:
                    break
                time.sleep(0.2)
            last = last_completed_at(url)
        completed = seen.get("completed", 0)
        prefix = _prefix(kind, processes, concurrency)
        c.note(f"{prefix}: intake took {intake_s:.1f} s; statuses {seen}; answers {dict(load.statuses)}")
        elapsed = (last - first_post).total_seconds() if last else float("nan")
        per_s = completed / elapsed if last and elapsed > 0 else 0.0
        per_request = 1000 / max(completed, 1)
        return HubRun(
            per_s,
            args.requests - completed,
            hub_cpu.used_s * per_request,
            sandbox_cpu.used_s * per_request,
            machine_cpu.used_s * per_request,
            rss.peak / c.MB,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.database_choices(parser)
    parser.add_argument(
        "--requests",
        type=int,
        default=400,
        help="requests submitted per run (default 400 keeps the run near 2 minutes at today's speed; "
        "the issue's figure is for 1000)",
    )
    parser.add_argument(
        "--concurrency",
        default="4,8,16",
        help="worker.concurrency values to try, comma-separated (default 4,8,16; the config says 4)",
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients posting")
    parser.add_argument(
        "--processes",
        default="1,2",
        help="`hub serve --processes` values to try, comma-separated: API + embedded worker processes",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="run the flows in N `hub worker` processes beside `hub serve --no-worker` instead of the "
        "worker embedded in `hub serve` (default 0: embedded)",
    )
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator client")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for completion per run")
    args = parser.parse_args(argv)
    settings = [int(value) for value in args.concurrency.split(",") if value.strip()]
    process_counts = [int(value) for value in args.processes.split(",") if value.strip()]

    with c.workspace("hub-bench-e2e-") as workdir, c.sandbox_process(issue_delay_s=0.0) as sandbox:
        c.note(f"sandbox (own process): {sandbox.urls['etat_civil']}")
        messages = act_messages(c.write_config(workdir))
        baselines: dict[int, float] = {}
        for threads in settings:
            per_s, not_issued, cpu_ms = zeep_baseline(
                sandbox.urls["etat_civil"], messages, args.requests, threads
            )
            baselines[threads] = per_s
            c.emit(f"e2e.baseline_zeep.c{threads}.pairs_per_s", per_s, "pairs/s")
            c.emit(f"e2e.baseline_zeep.c{threads}.client_cpu_per_pair", cpu_ms, "ms")
            c.emit(f"e2e.baseline_zeep.c{threads}.not_issued", not_issued, "pairs")
        for kind in c.databases(args.database):
            results: dict[tuple[int, int], float] = {}
            for processes, concurrency in [(p, k) for p in process_counts for k in settings]:
                run = run_hub(kind, concurrency, processes, sandbox, workdir, args)
                results[processes, concurrency] = run.per_s
                prefix = _prefix(kind, processes, concurrency)
                c.emit(f"{prefix}.completed_per_s", run.per_s, "req/s")
                c.emit(f"{prefix}.hub_cpu_per_request", run.hub_cpu_ms, "ms")
                c.emit(f"{prefix}.sandbox_cpu_per_request", run.sandbox_cpu_ms, "ms")
                c.emit(f"{prefix}.machine_cpu_per_request", run.machine_cpu_ms, "ms")
                c.emit(f"{prefix}.serve_peak_rss", run.peak_rss_mb, "MB")
                cores = os.cpu_count() or 1
                c.emit(f"{prefix}.machine_ceiling", cores * 1000 / run.machine_cpu_ms, "req/s")
                c.emit(f"{prefix}.not_completed", run.not_completed, "requests")
                c.emit(f"{prefix}.vs_baseline", c.ratio(run.per_s, baselines[concurrency]), "ratio")
            best_processes, best = max(results, key=lambda k: results[k])
            c.emit(f"e2e.{kind}.completed_per_s", results[best_processes, best], "req/s")
            c.emit(f"e2e.{kind}.best_processes", best_processes, "processes")
            c.emit(f"e2e.{kind}.best_concurrency", best, "threads")
            c.emit(
                f"e2e.{kind}.vs_baseline", c.ratio(results[best_processes, best], baselines[best]), "ratio"
            )
        best_baseline = max(baselines.values())
        c.emit("e2e.baseline_zeep.pairs_per_s", best_baseline, "pairs/s")
    return 0


def _prefix(kind: str, processes: int, concurrency: int) -> str:
    """One process is the default; other settings are named by their process count."""
    return f"e2e.{kind}." + ("" if processes == 1 else f"p{processes}.") + f"c{concurrency}"


if __name__ == "__main__":
    sys.exit(main())
