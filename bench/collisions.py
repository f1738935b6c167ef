"""The golden records of the synthetic town that hold two real people, with the evidence that joined
them: each record (real person, traits) and every link between records of different people (rule,
total log-odds, probability, each field's level). A tool to investigate the collision rate of
bench/synthetic.py, not a benchmark; figures go to stdout as ``name: value``.

    .venv/bin/python bench/collisions.py [--people 100000] [--seed 7] [--show 40]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._matching import cluster_figures, emit, machine_load, note
from bench._population import namesake_groups, population
from master_data.batch import DEFAULT_LOWER, DEFAULT_UPPER
from master_data.matching import IdentityRecord, Matcher, deduplicate


def _record(record: IdentityRecord) -> str:
    return (
        f"{record.system:<10} {record.birth_name or '-'} ({record.used_name or '-'}) "
        f"{' '.join(record.given_names) or '-'} | {record.birth_date} {record.sex or '?'} "
        f"{record.birth_place or '-'} | {record.address or '-'} {record.postal_code or ''} | "
        f"{record.email or '-'} {record.phone or '-'}"
    )


def _explained(matcher: Matcher, a: IdentityRecord, b: IdentityRecord) -> str:
    why = matcher.explain(a, b)
    fields = " ".join(
        f"{c.field}={c.level}({c.weight:+.1f})" for c in why.comparisons if c.level != "missing"
    )
    return f"rule {why.rule} total {why.total:.1f} p={why.probability:.4f}: {fields}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--upper", type=float, default=DEFAULT_UPPER)
    parser.add_argument("--lower", type=float, default=DEFAULT_LOWER)
    parser.add_argument("--show", type=int, default=40, help="collisions printed in full")
    args = parser.parse_args()
    note(machine_load())
    residents: list = []
    data = list(population(args.people, args.seed, residents))
    namesakes = namesake_groups(residents)
    records = [r for r, _ in data]
    truth = [p for _, p in data]
    result = deduplicate(records, upper=args.upper, lower=args.lower)
    matcher = Matcher(result.model, args.upper, args.lower)
    position = {tuple(p): k for k, p in enumerate(result.pairs.tolist())}
    mixed = [c for c in result.clusters if len({truth[r] for r in c}) > 1]
    kinds: Counter[str] = Counter()
    evidence: Counter[str] = Counter()
    for shown, cluster in enumerate(sorted(mixed, key=len)):
        people = {truth[r] for r in cluster}
        kind = "namesakes" if len({namesakes.get(p, -1 - p) for p in people}) == 1 else "other"
        kinds[kind] += 1
        if shown < args.show:
            print(f"\n== golden record of {len(cluster)} records, people {sorted(people)} ({kind})")
            for r in sorted(cluster, key=lambda r: truth[r]):
                print(f"   p{truth[r]:<7} {_record(records[r])}")
        for a in cluster:
            for b in cluster:
                if a < b and truth[a] != truth[b] and (a, b) in position:
                    k = position[(a, b)]
                    if result.outcomes[k] != 2:
                        continue
                    text = _explained(matcher, records[a], records[b])
                    evidence[text.split(" total")[0]] += 1
                    if shown < args.show:
                        systems = f"{records[a].system}/{records[b].system}"
                        print(f"   link p{truth[a]}-p{truth[b]} ({systems}): {text}")
    labels = [0] * len(records)
    for label, cluster in enumerate(result.clusters):
        for k in cluster:
            labels[k] = label
    reviews = [(a, b) for a, b in result.reviews.tolist()]
    for name, value in cluster_figures(labels, truth, reviews, namesakes).items():
        emit(name, value)
    note(machine_load())
    emit("collisions", len(mixed))
    emit("collisions_per_10000", 10_000 * len(mixed) / len(result.clusters))
    for kind, count in kinds.items():
        emit(f"collisions.{kind}", count)
    for rule, count in evidence.items():
        emit(f"links_between_people.{rule.replace(' ', '_')}", count)


if __name__ == "__main__":
    main()
