"""The batch path: its blocking, clustering and normalisation agree with the one-record path."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from master_data.batch import _ambiguous, _clusters
from master_data.blocking import candidate_pairs, key_arrays, record_keys, text_key_arrays
from master_data.features import Features, Normalised, normalise_columns, normalise_record
from master_data.load_plan import plan_load
from master_data.matching import IdentityRecord, Matcher, MatchModel, deduplicate, link
from tests.master_data.test_matching import noisy, person


@pytest.fixture(scope="module")
def records() -> list[IdentityRecord]:
    rng = random.Random(11)
    people = [person(rng, n) for n in range(800)]
    out = list(people)
    for n, p in enumerate(people):
        for system in ("ecole", "finances"):
            if rng.random() < 0.6:
                out.append(noisy(rng, p, system, f"{system}-{n}"))
    return out


def pairs(i: np.ndarray, j: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(i.tolist(), j.tolist(), strict=True))


def test_batch_keys_group_records_exactly_as_the_text_keys_real_time_indexes(
    records: list[IdentityRecord],
) -> None:
    features = Features.of(records)
    batch = candidate_pairs(*key_arrays(features), features.n)
    text = candidate_pairs(*text_key_arrays([record_keys(normalise_record(r)) for r in records]), features.n)
    assert pairs(*batch[:2]) == pairs(*text[:2])
    assert batch[2]["pairs"] > len(records) // 2


def test_columnar_normalisation_equals_one_record_at_a_time(records: list[IdentityRecord]) -> None:
    columns = normalise_columns(records)
    for k in range(0, len(records), 37):
        assert Normalised(*(columns[name][k] for name in Normalised._fields)) == normalise_record(records[k])


def test_link_keeps_only_cross_pairs_and_blocks_are_capped() -> None:
    owners = np.array([0, 1, 2, 3, 4, 0, 1])
    groups = np.array([7, 7, 7, 7, 7, 9, 9])
    i, j, stats = candidate_pairs(owners, groups, 5, max_block=4)
    assert pairs(i, j) == {(0, 1)} and stats["skipped_blocks"] == 1
    i, j, _ = candidate_pairs(owners, groups, 5, split=2)
    assert pairs(i, j) == {(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)}


def test_clusters_never_join_two_records_in_conflict_even_through_a_third() -> None:
    # 0-1 and 1-2 are links, 0-2 a conflict (twins): the weaker link is refused.
    links = np.array([[0, 1], [1, 2], [3, 4]])
    strength = np.array([0.999, 0.995, 0.99])
    clusters, refused = _clusters(5, links, strength, np.array([[0, 2]]))
    assert sorted(map(sorted, clusters)) == [[0, 1], [2], [3, 4]]
    assert refused.tolist() == [False, True, False]


def test_deduplicate_twins_stay_apart_in_a_batch(records: list[IdentityRecord]) -> None:
    twin_a = IdentityRecord(
        "etat_civil", "T1", birth_name="Moreau", given_names=("Léa",), birth_date="2012-05-03",
        sex="F", birth_place="44109", address="4 rue des Lilas", postal_code="44000", city="Nantes",
    )  # fmt: skip
    twin_b = dataclasses.replace(twin_a, local_id="T2", given_names=("Zoé",))
    school_a = dataclasses.replace(twin_a, system="ecole", local_id="S1", sex=None)
    school_b = dataclasses.replace(twin_b, system="ecole", local_id="S2", birth_place=None)
    batch = [*records, twin_a, twin_b, school_a, school_b]
    result = deduplicate(batch)
    cluster_of = {k: c for c, members in enumerate(result.clusters) for k in members}
    n = len(records)
    assert cluster_of[n] == cluster_of[n + 2]
    assert cluster_of[n + 1] == cluster_of[n + 3]
    assert cluster_of[n] != cluster_of[n + 1]


def test_link_with_a_given_matcher_reports_its_summary(records: list[IdentityRecord]) -> None:
    left = [r for r in records if r.system == "etat_civil"]
    right = [r for r in records if r.system == "ecole"]
    matcher = Matcher(MatchModel.from_json(deduplicate(records).model.to_json()))
    result = link(left, right, matcher)
    assert result.summary["records"] == len(left) + len(right)
    assert (result.links[:, 0] < len(left)).all() and (result.links[:, 1] < len(right)).all()
    found = {(left[a].local_id, right[b].local_id) for a, b in result.links.tolist()}
    truth = {(f"EC{r.local_id.split('-')[1]}", r.local_id) for r in right}
    assert len(found & truth) >= 0.95 * len(truth)
    assert len(found - truth) <= 0.01 * len(found)


# The choice between two golden records must pass the upper threshold (0.95) as a link does.
MARGIN = float(np.log2(0.95 / 0.05))


@given(own=st.floats(-10, 60), rival=st.floats(-10, 60))
def test_a_record_as_close_to_a_golden_record_in_conflict_with_its_own_is_ambiguous(
    own: float, rival: float
) -> None:
    # Record 0 sits in {0, 1}; {2, 3} holds record 2, in conflict with 1 (namesakes born elsewhere).
    # Record 0 is ambiguous exactly when its pair into {2, 3} is within the margin of its own.
    # The conflict is a compared pair (the mask ``separated``) or one found inside a component.
    clusters = [[0, 1], [2, 3]]
    pairs = np.array([[0, 1], [0, 2], [2, 3], [1, 2]])
    totals = np.array([own, rival, 40.0, -20.0])
    plausible = np.array([True, True, True, False])
    separated = np.array([False, False, False, True])
    none = np.zeros((0, 2), dtype=np.int64)
    expected = [0] if rival >= own - MARGIN else []
    assert _ambiguous(clusters, pairs, totals, plausible, separated, none, MARGIN).tolist() == expected
    found = _ambiguous(
        clusters, pairs, totals, plausible, np.zeros(4, dtype=bool), np.array([[1, 2]]), MARGIN
    )
    assert found.tolist() == expected


def test_no_ambiguity_without_a_conflict_or_with_the_record_itself_in_conflict() -> None:
    clusters = [[0, 1], [2, 3]]
    pairs = np.array([[0, 1], [0, 2], [2, 3]])
    totals = np.array([23.5, 23.2, 40.0])
    plausible = np.ones(3, dtype=bool)
    compared = np.zeros(3, dtype=bool)

    def ambiguous(plausible: np.ndarray, conflicts: list[list[int]]) -> list[int]:
        found = np.array(conflicts, dtype=np.int64).reshape(-1, 2)
        return _ambiguous(clusters, pairs, totals, plausible, compared, found, MARGIN).tolist()

    # Nothing says {0, 1} and {2, 3} are two people: a missed link, not an ambiguity.
    assert ambiguous(plausible, []) == []
    # Record 0 is itself in conflict with 3: {2, 3} is no place for it.
    assert ambiguous(plausible, [[1, 2], [0, 3]]) == []
    # A pair below the lower threshold (not plausible) is no rival.
    assert ambiguous(np.array([True, False, True]), [[1, 2]]) == []
    assert ambiguous(plausible, [[1, 2]]) == [0]


def _namesakes() -> list[IdentityRecord]:
    """Two men under one name and birth date, born in two communes, each known to two systems (one
    surname mistyped), and a bare finances record of that name that could be either of them."""
    first = IdentityRecord(
        "etat_civil", "N1", birth_name="Guichard", given_names=("Marc", "Étienne"),
        birth_date="2011-04-14", sex="M", birth_place="51081",
    )  # fmt: skip
    first_school = dataclasses.replace(first, system="ecole", local_id="N2", birth_name="Guiuhard")
    second = IdentityRecord(
        "ecole", "N3", birth_name="Guichard", given_names=("Marc",), birth_date="2011-04-14",
        sex="M", birth_place="09058", email="marc.guichard@example.fr",
    )  # fmt: skip
    bare = IdentityRecord(
        "ged", "N4", birth_name="GUICHARD", given_names=("MARC",), birth_date="2011-04-14", sex="M",
        address="109 avenue Antoine Descamps", postal_code="44000", city="Nantes",
    )  # fmt: skip
    return [first, first_school, second, bare]


def test_a_record_that_could_be_either_namesake_goes_to_review_not_into_one(
    records: list[IdentityRecord],
) -> None:
    result = deduplicate([*records, *_namesakes()])
    n = len(records)
    cluster_of = {k: c for c, members in enumerate(result.clusters) for k in members}
    assert cluster_of[n] == cluster_of[n + 1] != cluster_of[n + 2]
    assert cluster_of[n + 3] not in (cluster_of[n], cluster_of[n + 2])
    in_review = {tuple(p) for p in result.reviews.tolist()}
    assert {(n, n + 3), (n + 2, n + 3)} <= in_review or {(n + 1, n + 3), (n + 2, n + 3)} <= in_review
    assert result.summary["ambiguous_records"] >= 1


def test_no_golden_record_holds_two_records_the_matcher_decided_are_two_people(
    records: list[IdentityRecord],
) -> None:
    # One man known to finances (birth place) and the GED (address, e-mail, phone); a namesake known
    # to the civil registry and the GED, living elsewhere, with another e-mail and phone. Compared
    # directly, the two GED-side records are two people; the bare finances record bridges them.
    botin = IdentityRecord(
        "finances", "B1", birth_name="Botin", given_names=("Théodore",), birth_date="2003-02-15",
        sex="M", birth_place="66303",
    )  # fmt: skip
    known = IdentityRecord(
        "ged", "B2", birth_name="BOUTIN", given_names=("THEODORE",), birth_date="2003-02-15", sex="M",
        address="12 rue des Lilas", postal_code="66000", city="Perpignan",
        email="theodore.boutin12@example.fr", phone="0648317942",
    )  # fmt: skip
    namesake = IdentityRecord(
        "etat_civil", "B3", birth_name="Boutin", given_names=("Théodore", "Olivier"),
        birth_date="2003-02-15", sex="M", address="90 rue de Moulin", postal_code="44100",
        city="Nantes", email="theodore.boutin52@example.fr", phone="0665444074",
    )  # fmt: skip
    namesake_ged = dataclasses.replace(namesake, system="ged", local_id="B4", email=None)
    batch = [*records, botin, known, namesake, namesake_ged]
    result = deduplicate(batch)
    matcher = Matcher(result.model)
    assert matcher.explain(known, namesake).probability < 1 - matcher.upper
    n = len(records)
    cluster_of = {k: c for c, members in enumerate(result.clusters) for k in members}
    assert cluster_of[n + 1] != cluster_of[n + 2]
    assert cluster_of[n + 2] == cluster_of[n + 3]


def test_a_batch_review_the_score_did_not_ask_for_says_why_as_real_time_does() -> None:
    """Born in Paris, born in Marseille (two people), and a record that says nothing of the birth
    place: above the upper threshold against both. Its two tasks ask which person it is, under the
    rule real time gives that question, not as if the score's band had sent them."""
    matcher = Matcher(MatchModel.default(), 0.95, 0.5)
    paris = IdentityRecord(
        "etat_civil", "N-1", birth_name="Lefèvre", given_names=("Élodie", "Marie"),
        birth_date="1985-03-14", sex="F", birth_place="75056",
    )  # fmt: skip
    marseille = dataclasses.replace(paris, local_id="N-2", birth_place="13055")
    unsure = dataclasses.replace(paris, system="ecole", local_id="FAM-77", birth_place=None)
    records = [paris, marseille, unsure]
    result = deduplicate(records, matcher)
    assert sorted(map(sorted, result.clusters)) == [[0], [1], [2]]
    plan = plan_load(records, result, matcher)
    rules = {(t.record, t.candidate): (t.explanation.rule, t.explanation.probability) for t in plan.tasks}
    assert rules[(1, 0)][0] == "conflict:birth_place"
    for candidate in (0, 1):
        rule, probability = rules[(2, candidate)]
        assert rule == "ambiguous_golden" and probability >= matcher.upper
    # Real time, meeting the records in file order, asks the same question.
    decision = matcher.decide(unsure, [paris, marseille], groups=["G1", "G2"])
    assert decision.outcome == "review" and decision.explanation.rule == "ambiguous_golden"
