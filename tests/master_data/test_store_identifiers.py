"""System identifiers stated by a source record: the school's family record holding the finance
system's payer id, a portal request carrying the école family id. They link deterministically,
unless a hard conflict (another birth date, other given names: a parent's payer id on a child's
record, twins) or a steward's "not the same person" forbids it."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from hub.db.master_models import STATED, TASKS
from hub.db.models import utcnow
from tests.master_data.conftest import person


def weak(system: str, local_id: str, **fields):
    """A record too thin to be linked by its score alone: another surname (a used name, say),
    one given name mistyped, no sex, no birth place."""
    base = {"birth_name": "Martin", "given_names": ("Elodi",), "sex": None, "birth_place": None}
    return person(system, local_id, **{**base, **fields})


def decide(golden, task_id: int, decision: str) -> None:
    with golden.db.connection() as connection:
        golden.store.decide(connection, task_id, decision, now=utcnow(), actor="steward")


def test_a_record_stating_another_systems_identifier_links_to_its_holder(golden):
    registry = golden.resolve(person("etat_civil", "N-1"))
    school = weak("ecole", "FAM-77", identifiers=(("etat_civil", "N-1"),))
    # Without the identifier the score would not link it.
    assert (
        golden.matcher.decide(
            dataclasses.replace(school, identifiers=()), [person("etat_civil", "N-1")]
        ).outcome
        != "link"
    )
    linked = golden.resolve(school)
    assert linked.outcome == "link" and linked.golden_id == registry.golden_id
    assert linked.explanation is not None and linked.explanation.rule == "same_identifier"
    with golden.db.connection() as connection:
        assert connection.execute(select(STATED.c.system, STATED.c.local_id)).all() == [("etat_civil", "N-1")]


def test_records_stating_one_identifier_are_one_person_and_its_holder_joins_them_later(golden):
    """The payer id appears in the school's export and a portal request before the finance
    system's own export: all three are one golden record."""
    school = golden.resolve(person("ecole", "FAM-77", identifiers=(("finances", "T-3"),)))
    portal = golden.resolve(weak("portal", "cit_1", identifiers=(("finances", "T-3"),)))
    assert portal.outcome == "link" and portal.golden_id == school.golden_id
    payer = golden.resolve(weak("finances", "T-3", birth_name="Lefevre-Martin"))
    assert payer.outcome == "link" and payer.golden_id == school.golden_id
    assert payer.explanation.rule == "same_identifier"


def test_a_parents_payer_id_on_a_childs_record_goes_to_review(golden):
    parent = golden.resolve(person("finances", "T-3"))
    child = golden.resolve(
        person(
            "ecole",
            "ENF-1",
            given_names=("Lucie",),
            birth_date="2014-09-02",
            identifiers=(("finances", "T-3"),),
        )
    )
    assert child.outcome == "review" and child.golden_id != parent.golden_id
    assert child.explanation.rule.startswith("conflict:") and "birth_date" in child.explanation.rule
    with golden.db.connection() as connection:
        task = connection.execute(select(TASKS).where(TASKS.c.id == child.task_id)).one()
    assert task.candidate_golden_id == parent.golden_id


def test_twins_stating_one_family_id_are_two_people(golden):
    """Twins share a birth date and the family's payer id; different given names keep them apart
    even without a sex on either record."""
    first = golden.resolve(
        person("ecole", "ENF-1", given_names=("Lucie",), sex=None, identifiers=(("finances", "T-3"),))
    )
    second = golden.resolve(
        person("ecole", "ENF-2", given_names=("Manon",), sex=None, identifiers=(("finances", "T-3"),))
    )
    assert second.golden_id != first.golden_id
    assert second.outcome == "review" and second.explanation.rule == "conflict:given_names"


def test_identifiers_naming_two_golden_records_go_to_review(golden):
    a = golden.resolve(person("etat_civil", "N-1"))
    b = golden.resolve(person("finances", "T-9", birth_name="Durand", given_names=("Paul",), sex="M"))
    assert a.golden_id != b.golden_id
    both = golden.resolve(weak("portal", "cit_1", identifiers=(("etat_civil", "N-1"), ("finances", "T-9"))))
    assert both.outcome == "review" and both.golden_id not in (a.golden_id, b.golden_id)
    assert both.explanation.rule == "conflict:identifiers"


def test_an_identifier_link_must_hold_against_the_golden_record_as_a_whole(golden):
    """The holder says little (a payer: name only); the golden record it belongs to says more
    (the registry's birth date): a record stating the payer id but born another year is refused."""
    registry = golden.resolve(person("etat_civil", "N-1"))
    payer = golden.resolve(
        person(
            "finances",
            "T-3",
            birth_date=None,
            sex=None,
            birth_place=None,
            identifiers=(("etat_civil", "N-1"),),
        )
    )
    assert payer.golden_id == registry.golden_id
    other = golden.resolve(
        weak("ecole", "ENF-1", birth_date="2014-09-02", identifiers=(("finances", "T-3"),))
    )
    assert other.outcome == "review" and other.golden_id != registry.golden_id
    assert "birth_date" in other.explanation.rule


def test_a_known_record_newly_stating_an_identifier_asks_a_steward_unless_decided_not_same(golden):
    """A known record is not moved by an identifier (that would be a merge): a review task asks
    whether its golden record and the holder's are one person; a "not the same person" already
    decided between them is respected when the identifier is stated again."""
    registry = golden.resolve(person("etat_civil", "N-1"))
    school = golden.resolve(person("ecole", "FAM-77", birth_date="1986-07-01", birth_place="13055"))
    assert school.golden_id != registry.golden_id
    stating = golden.resolve(
        person(
            "ecole",
            "FAM-77",
            birth_date="1986-07-01",
            birth_place="13055",
            identifiers=(("etat_civil", "N-1"),),
        )
    )
    assert stating.outcome == "updated" and stating.golden_id == school.golden_id
    assert stating.task_id is not None
    with golden.db.connection() as connection:
        task = connection.execute(select(TASKS).where(TASKS.c.id == stating.task_id)).one()
        assert (task.golden_id, task.candidate_golden_id) == (school.golden_id, registry.golden_id)
        # Why the steward is asked: the identifier; the pair's explanation keeps its own rule.
        assert task.rule == "identifier_conflict"
        assert task.explanation["rule"] == "conflict:birth_date,birth_place"
        assert golden.store.not_same_as_record(connection, ("ecole", "FAM-77"), {registry.golden_id}) == set()
    decide(golden, stating.task_id, "not_same")
    # Dropped by the school, then stated again: the steward's answer stands, no new task.
    golden.resolve(person("ecole", "FAM-77", birth_date="1986-07-01", birth_place="13055"))
    again = golden.resolve(
        person(
            "ecole",
            "FAM-77",
            birth_date="1986-07-01",
            birth_place="13055",
            identifiers=(("etat_civil", "N-1"),),
        )
    )
    assert again.outcome == "updated" and again.task_id is None
    with golden.db.connection() as connection:
        assert connection.execute(select(TASKS.c.id).where(TASKS.c.status == "open")).all() == []
        # Only the current version's identifiers are indexed.
        assert len(connection.execute(select(STATED)).all()) == 1


def test_a_known_record_restating_the_same_identifier_opens_no_second_task(golden):
    golden.resolve(person("etat_civil", "N-1"))
    fields = {"birth_date": "1986-07-01", "birth_place": "13055", "identifiers": (("etat_civil", "N-1"),)}
    golden.resolve(person("ecole", "FAM-77", birth_date="1986-07-01", birth_place="13055"))
    first = golden.resolve(person("ecole", "FAM-77", **fields))
    second = golden.resolve(person("ecole", "FAM-77", **fields, email="new@example.org"))
    assert first.task_id is not None and second.outcome == "updated" and second.task_id is None
    with golden.db.connection() as connection:
        task = connection.execute(select(TASKS).where(TASKS.c.id == first.task_id)).one()
    assert (
        task.rule == "identifier_conflict" and task.explanation["rule"] == "conflict:birth_date,birth_place"
    )
