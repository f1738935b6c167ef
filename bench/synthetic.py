"""Deduplication of a synthetic French town held by four municipal systems, hub beside splink.

The population (bench/_population.py: Faker fr_FR names and streets, households, twins, parent and
child with the same name, namesakes with the same birth date, and the noise of each system) is
deduplicated as one import, weights estimated by EM on the data itself, by:
- hub: master_data.matching.deduplicate at its default thresholds (link >= 0.95, review >= 0.7);
- splink 5 (DuckDB) with a comparable configuration: the same traits, cleaned the same way
  (upper-case, accents stripped), Name/DateOfBirth/Email comparisons with term-frequency
  adjustments on names, blocking on names (either order), birth date with the given name, the
  surname or the postal code (as the hub's keys: birth date alone grows with the square of the
  town), address, e-mail and phone,
  prior from deterministic rules, u by random sampling, m by EM sessions on birth date and on
  names; clusters at the hub's thresholds (0.95, review band [0.7, 0.95)).
Figures per tool: pairwise and B³ precision/recall/F1 of the clusters against the real people,
collisions (golden records holding two real people, per 10,000), residual duplicates (share of
people split over several golden records), review share (records with a pair in the review band
left in different golden records), seconds.

    .venv/bin/python bench/synthetic.py [--people 100000] [--tools hub,splink] [--seed 7]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._matching import cluster_figures, emit, machine_load, note, shipped_thresholds, timed
from bench._population import namesake_groups, population
from master_data.matching import IdentityRecord, deduplicate
from master_data.normalise import fold, given_name_list, normalise_birth_date

UPPER, LOWER = shipped_thresholds()


def run_hub(records: list[IdentityRecord]) -> tuple[list[int], list[tuple[int, int]]]:
    result = deduplicate(records, upper=UPPER, lower=LOWER, progress=True)
    labels = [0] * len(records)
    for label, cluster in enumerate(result.clusters):
        for k in cluster:
            labels[k] = label
    return labels, [tuple(p) for p in result.reviews.tolist()]


def splink_frame(records: list[IdentityRecord]) -> pd.DataFrame:
    """The records as splink reads them, cleaned as a splink user would: folded case and accents,
    ISO dates, first given name apart."""

    def clean(text: str | None) -> str | None:
        return fold(text) or None if text else None

    rows = []
    for k, r in enumerate(records):
        given = given_name_list(r.given_names)
        rows.append(
            {
                "unique_id": k,
                "birth_name": clean(r.birth_name),
                "used_name": clean(r.used_name),
                "given_first": given[0] if given else None,
                "birth_date": normalise_birth_date(r.birth_date),
                "sex": r.sex,
                "birth_place": r.birth_place,
                "address": clean(r.address),
                "postal_code": r.postal_code,
                "email": r.email.lower() if r.email else None,
                "phone": r.phone,
            }
        )
    return pd.DataFrame(rows)


def run_splink(records: list[IdentityRecord]) -> tuple[list[int], list[tuple[int, int]]]:
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("birth_name", "given_first"),
            "l.birth_name = r.given_first and l.given_first = r.birth_name",
            block_on("birth_date", "given_first"),
            block_on("birth_date", "birth_name"),
            block_on("birth_date", "postal_code"),
            block_on("address"),
            block_on("email"),
            block_on("phone"),
        ],
        comparisons=[
            cl.NameComparison("birth_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("given_first").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "birth_date", input_is_string=True, datetime_format="%Y-%m-%d", invalid_dates_as_null=True
            ),
            cl.ExactMatch("sex"),
            cl.ExactMatch("birth_place"),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.7]),
            cl.ExactMatch("postal_code"),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
        ],
    )
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(splink_frame(records)), settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("birth_name", "given_first", "birth_date")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=2)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_name", "given_first"))
    predictions = linker.inference.predict(threshold_match_probability=LOWER)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=UPPER
    ).as_pandas_dataframe()
    label_of = dict(zip(clusters["unique_id"], clusters["cluster_id"], strict=True))
    codes: dict[object, int] = {}
    labels = [codes.setdefault(label_of.get(k, f"single-{k}"), len(codes)) for k in range(len(records))]
    frame = predictions.as_pandas_dataframe()
    band = frame[frame["match_probability"] < UPPER]
    return labels, list(zip(band["unique_id_l"].tolist(), band["unique_id_r"].tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--tools", default="hub,splink")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    note(machine_load())
    residents: list = []
    with timed() as generating:
        data = list(population(args.people, args.seed, residents))
    namesakes = namesake_groups(residents)
    records = [record for record, _ in data]
    truth = [person for _, person in data]
    note(f"{len(records)} records of {args.people} people over 4 systems, generated in {generating[0]:.1f} s")
    emit("synthetic.records", len(records))
    emit("synthetic.people", args.people)
    runners = {"hub": run_hub, "splink": run_splink}
    for tool in args.tools.split(","):
        with timed() as seconds:
            labels, reviews = runners[tool](records)
        figures = cluster_figures(labels, truth, reviews, namesakes)
        for name, value in figures.items():
            emit(f"synthetic.{tool}.{name}", value if isinstance(value, float) else int(value))
        emit(f"synthetic.{tool}.seconds", f"{seconds[0]:.1f}", "s")
    note(machine_load())


if __name__ == "__main__":
    main()
