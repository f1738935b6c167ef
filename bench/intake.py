"""Intake throughput: accepted ``POST /v1/requests`` per second and latency, 32 concurrent clients.

The hub runs as in production (``hub serve --no-worker``, uvicorn, in its own process) on a fresh
SQLite file and/or a fresh PostgreSQL database. Baseline in the same run: the same route without
authentication or database (bench/_baseline_server.py), validating the body the same way, so
``intake.<db>.vs_baseline`` is the cost of durability. After each run the number of ``requests``
rows must equal the number of 202s (``intake.<db>.lost``). Goal: >= 1,000 accepted/s on
PostgreSQL at p99 <= 50 ms.

    .venv/bin/python bench/intake.py [--duration 10] [--clients 32] [--database sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def report(prefix: str, result: c.LoadResult, server_cpu_s: float | None) -> None:
    c.emit(f"{prefix}.accepted_per_s", result.accepted_per_s, "req/s")
    c.emit(f"{prefix}.p50", c.percentile(result.latencies_ms, 50), "ms")
    c.emit(f"{prefix}.p99", c.percentile(result.latencies_ms, 99), "ms")
    refused = sum(n for status, n in result.statuses.items() if status != 202) + sum(result.errors.values())
    c.emit(f"{prefix}.not_accepted", refused, "requests")
    if refused:
        c.note(f"{prefix}: statuses {dict(result.statuses)} errors {dict(result.errors)}")
    # Who was busy: a generator near 100 % of a core is the bottleneck, not the server.
    c.emit(f"{prefix}.loadgen_cpu", 100 * result.client_cpu_s / result.elapsed_s, "%")
    if server_cpu_s is not None:
        c.emit(f"{prefix}.server_cpu", 100 * server_cpu_s / result.elapsed_s, "%")
    # All cores, every process: well above server + generator means something else shares the machine.
    c.emit(f"{prefix}.machine_cpu", result.machine_cpu, "%")


def measure(
    server: c.Server, key: str, args: argparse.Namespace, bodies: list[bytes]
) -> tuple[c.LoadResult, float, int]:
    """Warm up (not counted), then measure; return the result, server CPU seconds, warm-up 202s."""
    warm = c.load_with(server, key, bodies, args, duration_s=args.warmup)
    c.psutil.cpu_percent()  # resets the machine-wide counter
    with c.CpuMeter(server.pid) as cpu:
        result = c.load_with(server, key, bodies, args, duration_s=args.duration)
    result.machine_cpu = c.psutil.cpu_percent()
    return result, cpu.used_s, warm.accepted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.database_choices(parser)
    c.load_options(parser, duration=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument(
        "--processes", default="1,2", help="comma-separated `hub serve --processes` values to measure"
    )
    args = parser.parse_args(argv)
    bodies = c.sample_bodies()
    c.note(f"{len(bodies)} sample bodies, {args.clients} clients, {args.duration:.0f} s per run")

    with c.workspace("hub-bench-intake-") as workdir:
        config = c.write_config(workdir)
        with c.baseline_server(config, workdir) as server:
            baseline, baseline_cpu_s, _ = measure(server, "unused", args, bodies)
        report("intake.baseline", baseline, baseline_cpu_s)

        for kind in c.databases(args.database):
            with c.fresh_database(kind, workdir) as url:
                env = c.hub_env(url, config)
                key = c.add_client(env)
                accepted = 0
                for processes in [int(p) for p in args.processes.split(",")]:
                    with c.hub_server(env, workdir, worker=False, processes=processes) as server:
                        result, server_cpu_s, warmup_accepted = measure(server, key, args, bodies)
                    # one process is the default; further settings are named by their process count
                    prefix = f"intake.{kind}" + ("" if processes == 1 else f".p{processes}")
                    report(prefix, result, server_cpu_s)
                    vs_baseline = c.ratio(result.accepted_per_s, baseline.accepted_per_s)
                    c.emit(f"{prefix}.vs_baseline", vs_baseline, "ratio")
                    accepted += result.accepted + warmup_accepted
                    (rows,) = c.count_rows(url, "SELECT count(*) FROM requests")
                    (outbox,) = c.count_rows(url, "SELECT count(*) FROM outbox")
                    c.emit(f"{prefix}.lost", max(0, accepted - min(rows, outbox)), "requests")
                    if rows != accepted or outbox != accepted:
                        c.note(
                            f"{prefix}: {accepted} answered 202, {rows} request rows, {outbox} outbox rows"
                        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
