"""A review task stores why a steward is asked: the score's review band (no rule), or the rule
that sent a pair the score would have linked to review (two golden records matched, a golden
record holding a conflicting record, a known record newly stating another golden record's
identifier), so the queue can say why and the thresholds report counts it apart."""

from __future__ import annotations

from sqlalchemy import select

from hub.db.master_models import TASKS
from tests.master_data.conftest import person


def task_of(golden, task_id: int):
    with golden.db.connection() as connection:
        return connection.execute(select(TASKS).where(TASKS.c.id == task_id)).one()


def test_a_record_matching_two_golden_records_asks_which_one(golden):
    """Born in Paris and in Marseille: two people. A record that says nothing of the birth place
    scores above the upper threshold against both."""
    paris = golden.resolve(person("etat_civil", "N-1"))
    marseille = golden.resolve(person("etat_civil", "N-2", birth_place="13055"))
    assert marseille.golden_id != paris.golden_id
    unsure = golden.resolve(person("ecole", "FAM-77", birth_place=None))
    assert unsure.outcome == "review" and unsure.golden_id not in (paris.golden_id, marseille.golden_id)
    task = task_of(golden, unsure.task_id)
    assert task.rule == "ambiguous_golden" and task.explanation["rule"] == "ambiguous_golden"
    assert task.probability >= golden.matcher.upper
    assert task.candidate_golden_id in (paris.golden_id, marseille.golden_id)


def test_the_score_band_stores_no_rule(golden):
    first = golden.resolve(person("etat_civil", "N-1"))
    doubtful = golden.resolve(
        person("ecole", "FAM-77", birth_name="Martin", given_names=("Elodi",), sex=None, birth_place=None)
    )
    assert doubtful.outcome == "review", doubtful
    task = task_of(golden, doubtful.task_id)
    assert task.rule is None and golden.matcher.lower <= task.probability < golden.matcher.upper
    assert task.candidate_golden_id == first.golden_id


def test_a_conflicts_task_stores_the_conflict(golden):
    golden.resolve(person("etat_civil", "N-1"))
    doubtful = golden.resolve(
        person("finances", "T-3", given_names=("Élodie",), birth_date="1985-03-15", birth_place="13055")
    )
    assert task_of(golden, doubtful.task_id).rule == "conflict:birth_place"


def test_a_known_record_newly_stating_an_identifier_elsewhere_says_so(golden):
    """The school's thin record (its own golden record) later states the registry's number: the
    pair's explanation is the identifier rule, the task's reason the identifier held elsewhere."""
    registry = golden.resolve(person("etat_civil", "N-1"))
    thin = {"birth_name": "Martin", "given_names": ("Elodi",), "sex": None, "birth_place": None}
    school = golden.resolve(person("ecole", "FAM-77", **thin, birth_date="1985-04-14"))
    assert school.golden_id != registry.golden_id and school.task_id is None, school
    stating = golden.resolve(
        person("ecole", "FAM-77", **thin, birth_date="1985-04-14", identifiers=(("etat_civil", "N-1"),))
    )
    assert stating.outcome == "updated" and stating.task_id is not None
    task = task_of(golden, stating.task_id)
    assert task.rule == "identifier_conflict" and task.explanation["rule"] == "same_identifier"
    assert (task.golden_id, task.candidate_golden_id) == (school.golden_id, registry.golden_id)
