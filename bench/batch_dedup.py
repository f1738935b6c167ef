"""Batch deduplication of a million records, weight estimation included: hub beside splink (DuckDB).

Each tool runs in its own fresh process on the same synthetic town (bench/_population.py, same
seed, about 2.1 records per person over four systems), so that each one's peak memory is its own:
the process's maximum resident set size (``ru_maxrss``), which includes the records themselves.
The time runs from the records in memory to the clusters (normalisation, blocking, comparisons,
estimation of the weights, scoring, clustering); generating the population is not counted.
- hub: ``master_data.matching.deduplicate`` (weights estimated by EM on the records);
- splink 5, DuckDB backend, with the configuration of bench/synthetic.py (prior from
  deterministic rules, u by random sampling of 5 million pairs, two EM sessions, predictions at
  the hub's shipped lower threshold and clusters at its upper one, 0.7 and 0.95 in
  config/hub.yaml: ``run_splink`` uses bench/synthetic.py's LOWER and UPPER), from a pandas frame
  of the cleaned records.
Both also report the collision rate and B³ F1 of their clusters, to show the speed is not bought
with accuracy.

    .venv/bin/python bench/batch_dedup.py [--records 1000000] [--tools hub,splink]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._matching import cluster_figures, emit, machine_load, note
from bench._population import population

SEED = 11


def records_of(count: int) -> tuple[list, list[int]]:
    """``count`` records (and their real people) of the synthetic town."""
    people = int(count / 1.9) + 100  # ~2.1 records per person: enough people, cut at ``count``
    data = list(islice(population(people, SEED), count))
    return [record for record, _ in data], [person for _, person in data]


def child(tool: str, count: int) -> None:
    records, truth = records_of(count)
    gc.collect()
    # Each tool's modules are imported only in its own process, so neither's peak memory counts
    # the other's libraries.
    if tool == "hub":
        from master_data.matching import deduplicate

        started = time.perf_counter()
        result = deduplicate(records, progress=sys.stderr.isatty())
        seconds = time.perf_counter() - started
        labels = [0] * len(records)
        for label, cluster in enumerate(result.clusters):
            for k in cluster:
                labels[k] = label
        reviews = [tuple(p) for p in result.reviews.tolist()]
        extra = {"candidate_pairs": result.summary["candidate_pairs"]}
    else:
        from bench.synthetic import run_splink

        started = time.perf_counter()
        labels, reviews = run_splink(records)
        seconds = time.perf_counter() - started
        extra = {}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = cluster_figures(labels, truth, reviews)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_mb,
                "collisions_per_10000": figures["collisions_per_10000"],
                "b3_f1": figures["b3.f1"],
                "residual_duplicates": figures["residual_duplicates"],
                **extra,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--tools", default="hub,splink")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.records)
        return
    note(machine_load())
    emit("batch_dedup.records", args.records)
    results = {}
    for tool in args.tools.split(","):
        note(f"{tool}: generating {args.records} records and deduplicating them in a fresh process")
        done = subprocess.run(
            [sys.executable, __file__, "--child", tool, "--records", str(args.records)],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        results[tool] = figures
        emit(f"batch_dedup.{tool}.seconds", f"{figures['seconds']:.1f}", "s")
        emit(f"batch_dedup.{tool}.peak_memory", f"{figures['peak_mb']:.0f}", "MB")
        emit(f"batch_dedup.{tool}.collisions_per_10000", figures["collisions_per_10000"])
        emit(f"batch_dedup.{tool}.b3_f1", figures["b3_f1"])
        emit(f"batch_dedup.{tool}.residual_duplicates", figures["residual_duplicates"])
        note(machine_load())
    if "hub" in results and "splink" in results:
        emit(
            "batch_dedup.hub.vs_splink.seconds",
            results["hub"]["seconds"] / results["splink"]["seconds"],
            "ratio",
        )
        emit(
            "batch_dedup.hub.vs_splink.peak_memory",
            results["hub"]["peak_mb"] / results["splink"]["peak_mb"],
            "ratio",
        )


if __name__ == "__main__":
    main()
