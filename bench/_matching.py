"""Shared helpers of the matching benchmarks: figures, pairwise and cluster scores, splink runs.

Bench-only dependencies (``pip install -e '.[bench]'``): recordlinkage, splink, duckdb, pandas,
faker. Every figure is printed as ``name: value [unit]`` on stdout; explanations go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psutil


def emit(name: str, value: float | int | str, unit: str = "") -> None:
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    print(f"{name}: {text}{' ' + unit if unit else ''}", flush=True)


def note(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {psutil.cpu_count()} cores"


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` holds the seconds spent."""
    box = [0.0]
    started = time.perf_counter()
    yield box
    box[0] = time.perf_counter() - started


def scores(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 against ALL true pairs (pairs lost by blocking are misses)."""
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pairs_of_clusters(clusters: Iterable[Iterable[str]]) -> set[tuple[str, str]]:
    """Every unordered pair (sorted tuple) inside each cluster."""
    out: set[tuple[str, str]] = set()
    for cluster in clusters:
        members = sorted(cluster)
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                out.add((members[a], members[b]))
    return out


def b_cubed(predicted: dict[str, object], truth: dict[str, object]) -> tuple[float, float, float]:
    """B³ precision, recall and F1 of a clustering (record -> cluster label) against the truth."""
    by_pred: dict[object, set[str]] = {}
    by_true: dict[object, set[str]] = {}
    for record, label in predicted.items():
        by_pred.setdefault(label, set()).add(record)
    for record, label in truth.items():
        by_true.setdefault(label, set()).add(record)
    precision = recall = 0.0
    for record in truth:
        mine = by_pred[predicted[record]]
        real = by_true[truth[record]]
        common = len(mine & real)
        precision += common / len(mine)
        recall += common / len(real)
    n = len(truth)
    precision, recall = precision / n, recall / n
    return precision, recall, 2 * precision * recall / (precision + recall)


def quiet_splink() -> None:
    logging.getLogger("splink").setLevel(logging.WARNING)


def cluster_figures(
    labels: list[int],
    truth: list[int],
    review_pairs: Iterable[tuple[int, int]],
    namesakes: dict[int, int] | None = None,
) -> dict[str, float]:
    """Pairwise and B³ scores of a clustering, collisions, residual duplicates and review share.

    ``labels[k]`` is the predicted cluster of record k, ``truth[k]`` its real person; a review pair
    counts for both its records when they ended in different clusters. With ``namesakes`` (person
    -> namesake group), collisions joining only people of one namesake group (same surname, first
    given name and birth date) are also counted apart.
    """
    by_label: dict[int, list[int]] = {}
    by_person: dict[int, list[int]] = {}
    for record, (label, person) in enumerate(zip(labels, truth, strict=True)):
        by_label.setdefault(label, []).append(record)
        by_person.setdefault(person, []).append(record)
    predicted = pairs_of_clusters([[str(r) for r in group] for group in by_label.values() if len(group) > 1])
    real = pairs_of_clusters([[str(r) for r in group] for group in by_person.values() if len(group) > 1])
    precision, recall, f1 = scores(predicted, real)
    b_precision, b_recall, b_f1 = b_cubed(dict(enumerate(labels)), dict(enumerate(truth)))
    mixed = [{truth[r] for r in group} for group in by_label.values()]
    mixed = [people for people in mixed if len(people) > 1]
    collisions = len(mixed)
    namesakes = namesakes or {}
    between_namesakes = sum(1 for people in mixed if len({namesakes.get(p, -1 - p) for p in people}) == 1)
    split = sum(1 for group in by_person.values() if len({labels[r] for r in group}) > 1)
    in_review = {r for a, b in review_pairs if labels[a] != labels[b] for r in (a, b)}
    return {
        "pairwise.precision": precision,
        "pairwise.recall": recall,
        "pairwise.f1": f1,
        "b3.precision": b_precision,
        "b3.recall": b_recall,
        "b3.f1": b_f1,
        "collisions_per_10000": 10_000 * collisions / len(by_label),
        "collisions_between_namesakes_per_10000": 10_000 * between_namesakes / len(by_label),
        "residual_duplicates": split / len(by_person),
        "review_share": len(in_review) / len(labels),
        "golden_records": len(by_label),
        "people": len(by_person),
    }


def shipped_thresholds() -> tuple[float, float]:
    """(upper, lower) of config/hub.yaml: the benchmarks measure the matcher as it ships."""
    from pathlib import Path

    from hub.config import load_config
    from sandbox.runner import TEST_CREDENTIALS

    for name, value in TEST_CREDENTIALS.items():  # the shipped file reads its secrets from the environment
        os.environ.setdefault(name, value)
    config, _ = load_config(Path(__file__).resolve().parent.parent / "config" / "hub.yaml")
    thresholds = config.master_data.thresholds
    return thresholds.upper, thresholds.lower
