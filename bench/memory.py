"""Memory: resident set size of the ``hub serve`` process, idle and under the intake load.

``hub serve --no-worker`` runs in its own process on a fresh database; its RSS (psutil) is read once
idle after start, then sampled every 100 ms while 32 clients post requests for ~15 s (the load of
bench/intake.py); the peak is reported. Baseline in the same run: the RSS of a bare
``python -c "import fastapi, uvicorn, sqlalchemy"`` process. Goal: <= 200 MB.

    .venv/bin/python bench/memory.py [--duration 15] [--database sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import psutil

BARE = "import sys, fastapi, uvicorn, sqlalchemy; print('ready', flush=True); sys.stdin.read()"


def bare_rss() -> int:
    """RSS of a process that imported fastapi, uvicorn and sqlalchemy and waits on its stdin."""
    process = subprocess.Popen(
        [sys.executable, "-c", BARE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        process.stdout.readline()
        return psutil.Process(process.pid).memory_info().rss
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.database_choices(parser)
    c.load_options(parser, duration=15.0)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before the idle reading")
    args = parser.parse_args(argv)
    bodies = c.sample_bodies()

    baseline = bare_rss()
    c.emit("memory.baseline_bare.rss", baseline / c.MB, "MB")
    with c.workspace("hub-bench-memory-") as workdir:
        config = c.write_config(workdir)
        for kind in c.databases(args.database):
            with c.fresh_database(kind, workdir) as url:
                env = c.hub_env(url, config)
                key = c.add_client(env)
                with c.hub_server(env, workdir, worker=False) as server:
                    time.sleep(args.settle)
                    idle = psutil.Process(server.pid).memory_info().rss
                    with c.RssSampler(server.pid, interval_s=0.1) as sampler:
                        load = c.load_with(server, key, bodies, args, duration_s=args.duration)
                    after = psutil.Process(server.pid).memory_info().rss
            prefix = f"memory.{kind}"
            c.emit(f"{prefix}.idle_rss", idle / c.MB, "MB")
            c.emit(f"{prefix}.under_load_peak_rss", sampler.peak / c.MB, "MB")
            c.emit(f"{prefix}.after_load_rss", after / c.MB, "MB")
            c.emit(f"{prefix}.idle_vs_bare", c.ratio(idle, baseline), "ratio")
            c.emit(f"{prefix}.peak_vs_bare", c.ratio(sampler.peak, baseline), "ratio")
            c.emit(f"{prefix}.load_accepted", load.accepted, "requests")
            c.note(f"{prefix}: {len(sampler.samples)} RSS samples, {load.accepted_per_s:.0f} accepted/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
