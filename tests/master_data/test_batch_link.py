"""The batch against a stored population (:func:`deduplicate_against`) and stated system
identifiers in batch clustering: the same answers as real-time resolution
(tests/master_data/test_store_identifiers.py) for the same records, and stored golden records
never joined by a batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from master_data.load_plan import LoadPlan, plan_load
from master_data.matching import IdentityRecord, Matcher, MatchModel, deduplicate, deduplicate_against
from tests.master_data.conftest import person
from tests.master_data.test_store_identifiers import weak

MATCHER = Matcher(MatchModel.default(), 0.95, 0.5)  # the store tests' matcher


def batch(
    stored: Sequence[tuple[IdentityRecord, str]], records: Sequence[IdentityRecord]
) -> tuple[dict[tuple[str, str], str], LoadPlan]:
    """Each record's golden record after the batch (a stored golden id, or ``new:<first key>``),
    and the load plan."""
    result = deduplicate_against([r for r, _g in stored], [g for _r, g in stored], records, MATCHER)
    everything = [*(r for r, _g in stored), *records]
    plan = plan_load(everything, result, MATCHER)
    golden: dict[tuple[str, str], str] = {}
    for members in result.clusters:
        anchor = next((stored[m][1] for m in members if m < len(stored)), None)
        name = anchor or "new:" + ":".join(everything[min(members)].key)
        golden.update((everything[m].key, name) for m in members)
    return golden, plan


def task_rules(plan: LoadPlan) -> list[str | None]:
    return [t.explanation.rule for t in plan.tasks]


def test_a_record_stating_a_stored_records_identifier_joins_its_golden_record():
    school = weak("ecole", "FAM-77", identifiers=(("etat_civil", "N-1"),))
    golden, plan = batch([(person("etat_civil", "N-1"), "G1")], [school])
    assert golden[school.key] == "G1"
    assert plan.links[1] == ("rule:same_identifier", pytest.approx(plan.links[1][1]))
    # Without the identifier, the score would not link it.
    golden, _plan = batch(
        [(person("etat_civil", "N-1"), "G1")], [dataclasses.replace(school, identifiers=())]
    )
    assert golden[school.key] != "G1"


def test_records_stating_one_identifier_and_its_holder_are_one_person_in_one_file():
    school = person("ecole", "FAM-77", identifiers=(("finances", "T-3"),))
    portal = weak("portal", "cit_1", identifiers=(("finances", "T-3"),))
    payer = weak("finances", "T-3", birth_name="Lefevre-Martin")
    result = deduplicate([school, portal, payer], MATCHER)
    assert sorted(map(sorted, result.clusters)) == [[0, 1, 2]]
    plan = plan_load([school, portal, payer], result, MATCHER)
    assert plan.links[1][0] == plan.links[2][0] == "rule:same_identifier"


def test_a_parents_payer_id_on_a_childs_record_goes_to_review():
    child = person(
        "ecole", "ENF-1", given_names=("Lucie",), birth_date="2014-09-02", identifiers=(("finances", "T-3"),)
    )
    golden, plan = batch([(person("finances", "T-3"), "G1")], [child])
    assert golden[child.key] != "G1"
    [rule] = task_rules(plan)
    assert rule is not None and rule.startswith("conflict:") and "birth_date" in rule
    assert (plan.tasks[0].record, plan.tasks[0].candidate) == (1, 0)


def test_twins_stating_one_family_id_are_two_people_in_a_batch():
    first = person("ecole", "ENF-1", given_names=("Lucie",), sex=None, identifiers=(("finances", "T-3"),))
    second = person("ecole", "ENF-2", given_names=("Manon",), sex=None, identifiers=(("finances", "T-3"),))
    result = deduplicate([first, second], MATCHER)
    assert sorted(map(sorted, result.clusters)) == [[0], [1]]
    assert task_rules(plan_load([first, second], result, MATCHER)) == ["conflict:given_names"]


def test_identifiers_naming_two_stored_golden_records_go_to_review():
    a = person("etat_civil", "N-1")
    b = person("finances", "T-9", birth_name="Durand", given_names=("Paul",), sex="M")
    both = weak("portal", "cit_1", identifiers=(("etat_civil", "N-1"), ("finances", "T-9")))
    golden, plan = batch([(a, "GA"), (b, "GB")], [both])
    assert golden[both.key] not in ("GA", "GB") and golden[a.key] != golden[b.key]
    assert "conflict:identifiers" in task_rules(plan)


def test_an_identifier_link_must_hold_against_the_stored_golden_record_as_a_whole():
    registry = person("etat_civil", "N-1")
    payer = person(
        "finances", "T-3", birth_date=None, sex=None, birth_place=None, identifiers=(("etat_civil", "N-1"),)
    )
    other = weak("ecole", "ENF-1", birth_date="2014-09-02", identifiers=(("finances", "T-3"),))
    golden, plan = batch([(registry, "G1"), (payer, "G1")], [other])
    assert golden[other.key] != "G1"
    assert any(rule and "birth_date" in rule for rule in task_rules(plan))


def test_a_record_fitting_two_stored_golden_records_goes_to_review_and_they_stay_two():
    """Two stored golden records of what looks like one person (kept apart by a steward, say): a
    new record linking to both joins neither (real time: two groups above the threshold), and the
    batch never merges them."""
    first = person("etat_civil", "N-1")
    second = person("finances", "T-1", phone="0611223344")
    incoming = person("ecole", "E-1", birth_place=None)
    golden, plan = batch([(first, "G1"), (second, "G2")], [incoming])
    assert golden[first.key] == "G1" and golden[second.key] == "G2"
    assert golden[incoming.key] not in ("G1", "G2")
    assert len(plan.tasks) >= 1 and plan.links[2][0] == "new"
    # One of them alone: joined, by its rule or score.
    golden, plan = batch([(first, "G1")], [incoming])
    assert golden[incoming.key] == "G1" and plan.links[1][0] != "new"


def test_a_stored_golden_record_holding_records_in_conflict_stays_whole():
    """A steward merged two records the matcher calls two people: the batch keeps them together
    and only new records are decided."""
    mother = person("etat_civil", "N-1")
    daughter = person("etat_civil", "N-2", given_names=("Chloé",), birth_date="2012-06-30")
    newcomer = person(
        "ecole", "E-9", birth_name="Durand", given_names=("Paul",), sex="M", birth_date="2001-01-09"
    )
    golden, plan = batch([(mother, "G1"), (daughter, "G1")], [newcomer])
    assert golden[mother.key] == golden[daughter.key] == "G1"
    assert golden[newcomer.key] != "G1"
    assert [members for members in plan.clusters] == [[2]]  # only the new person is written


def test_without_stored_records_the_batch_is_the_plain_deduplication():
    records = [
        person("ecole", "E-1"),
        person("finances", "T-1", birth_place=None),
        person("ecole", "E-2", given_names=("Paul",), sex="M"),
    ]
    alone, against = deduplicate(records, MATCHER), deduplicate_against([], [], records, MATCHER)
    assert sorted(map(sorted, alone.clusters)) == sorted(map(sorted, against.clusters))
    assert np.array_equal(alone.outcomes, against.outcomes) and against.stored == 0


def test_blocking_keys_of_many_records_are_each_records_own():
    """The batch indexes its new records with the keys real time computes one record at a time."""
    records = [
        person("ecole", "E-1"),
        person("finances", "T-1", birth_place=None, used_name="Martin", address="12 rue des Lilas"),
        person("ecole", "E-2", given_names=("Paul",), sex="M", phone="0611223344", email="p@example.fr"),
        person("portal", "cit", birth_date=None, postal_code="33000"),
    ]
    assert MATCHER.blocking_keys_of(records) == [MATCHER.blocking_keys(r) for r in records]
