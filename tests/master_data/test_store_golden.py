"""The golden store on a real database: resolution through the blocking index, versions, lineage,
idempotent re-imports, merge and unmerge."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.db.master_models import GOLDEN, KEYS, SOURCES, VALUES, VERSIONS, XREFS
from hub.db.models import utcnow
from hub.master_store import NotActive, NothingToUnmerge
from master_data.records import IdentityRecord
from tests.master_data.conftest import person

PROPERTY = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def state(golden, golden_ids) -> dict:
    """What a steward sees of some golden records: status, cross-references, values and lineage."""
    with golden.db.sessions() as session:
        c = session.connection()
        result = {}
        for golden_id in sorted(golden_ids):
            row = c.execute(
                select(GOLDEN.c.status, GOLDEN.c.merged_into).where(GOLDEN.c.id == golden_id)
            ).one()
            xrefs = sorted(
                tuple(r)
                for r in c.execute(
                    select(XREFS.c.system, XREFS.c.local_id).where(XREFS.c.golden_id == golden_id)
                )
            )
            values = {
                r.attribute: (r.value, r.source_record_id, r.rule)
                for r in c.execute(select(VALUES).where(VALUES.c.golden_id == golden_id))
            }
            result[golden_id] = (row.status, row.merged_into, xrefs, values)
        return result


def links(golden, golden_ids) -> list[tuple]:
    """How and when each cross-reference of these golden records was linked: flows route with a
    system's most recently linked record ($.golden.identifiers), so an unmerge must give it back."""
    with golden.db.sessions() as session:
        return sorted(
            tuple(row)
            for row in session.execute(
                select(
                    XREFS.c.golden_id,
                    XREFS.c.system,
                    XREFS.c.local_id,
                    XREFS.c.link,
                    XREFS.c.probability,
                    XREFS.c.linked_at,
                ).where(XREFS.c.golden_id.in_(sorted(golden_ids)))
            )
        )


def lineage_dangling(golden) -> int:
    """Golden values whose lineage is not a current source record of that very golden record."""
    with golden.db.sessions() as session:
        values = session.execute(select(VALUES.c.golden_id, VALUES.c.source_record_id, VALUES.c.system)).all()
        current = {
            (r.golden_id, r.source_record_id, r.system)
            for r in session.execute(select(XREFS.c.golden_id, XREFS.c.source_record_id, XREFS.c.system))
        }
        sources = set(session.execute(select(SOURCES.c.id)).scalars())
    return sum(1 for v in values if tuple(v) not in current or v.source_record_id not in sources)


def test_a_new_person_gets_a_golden_record_with_lineage_and_a_first_version(golden):
    resolution = golden.resolve(person("etat_civil", "N-1"))
    assert resolution.outcome == "new"
    s = state(golden, [resolution.golden_id])[resolution.golden_id]
    assert s[0] == "active" and s[2] == [("etat_civil", "N-1")]
    assert s[3]["birth_name"][0] == "Lefèvre" and s[3]["birth_name"][1] == resolution.source_record_id
    with golden.db.sessions() as session:
        assert session.scalar(select(func.count()).where(VERSIONS.c.golden_id == resolution.golden_id)) == 1
        assert (
            session.scalar(select(func.count()).where(KEYS.c.source_record_id == resolution.source_record_id))
            >= 3
        )


def test_the_same_person_in_another_system_and_spelling_links_to_the_same_golden_record(golden):
    first = golden.resolve(person("etat_civil", "N-1"))
    second = golden.resolve(
        IdentityRecord(
            "ecole",
            "F-77",
            birth_name="LEFEVRE",
            used_name="MARTIN",
            given_names=("Elodie",),
            birth_date="1985-03-14",
            sex="F",
            address="12 rue des Lilas",
            postal_code="33000",
            city="Bordeaux",
        )
    )
    assert second.outcome == "link" and second.golden_id == first.golden_id
    assert second.explanation is not None and second.explanation.probability >= 0.95
    [(_status, _into, xrefs, values)] = state(golden, [first.golden_id]).values()
    assert xrefs == [("ecole", "F-77"), ("etat_civil", "N-1")]
    assert values["birth_name"][0] == "Lefèvre"  # état civil wins the birth identity
    assert values["address"][0]["city"] == "Bordeaux"  # only the school knows the address


def test_a_record_already_known_is_unchanged_and_a_changed_one_versioned(golden):
    first = golden.resolve(person("ecole", "F-1", address="1 rue A", postal_code="33000", city="Bordeaux"))
    again = golden.resolve(person("ecole", "F-1", address="1 rue A", postal_code="33000", city="Bordeaux"))
    assert (again.outcome, again.golden_id, again.source_record_id) == (
        "unchanged",
        first.golden_id,
        first.source_record_id,
    )
    moved = golden.resolve(
        person("ecole", "F-1", address="9 avenue B", postal_code="33000", city="Bordeaux"),
        utcnow() + timedelta(days=1),
    )
    assert moved.outcome == "updated" and moved.golden_id == first.golden_id
    assert moved.source_record_id != first.source_record_id
    [(_s, _m, _x, values)] = state(golden, [first.golden_id]).values()
    assert values["address"][0]["line"] == "9 avenue B" and values["address"][1] == moved.source_record_id
    with golden.db.sessions() as session:
        versions = session.execute(
            select(VERSIONS.c.version, VERSIONS.c.cause)
            .where(VERSIONS.c.golden_id == first.golden_id)
            .order_by(VERSIONS.c.version)
        ).all()
        # the old version of the source record is kept: the history's lineage still points to it
        assert session.get_one
        assert session.execute(select(func.count()).where(SOURCES.c.local_id == "F-1")).scalar() == 2
    assert [tuple(v) for v in versions] == [(1, "created"), (2, "source_updated")]
    assert lineage_dangling(golden) == 0


def test_an_updated_record_of_a_shared_golden_record_replaces_only_its_own_source(golden):
    """A system sends a citizen again with a new spelling: its new version replaces its old one in
    the golden record, under its new blocking keys; the other system's source stays as it was."""
    registry = golden.resolve(person("etat_civil", "N-1"))
    school = golden.resolve(person("ecole", "F-1", used_name="Martin", address="1 rue A", city="Bordeaux"))
    assert school.outcome == "link" and school.golden_id == registry.golden_id
    renamed = golden.resolve(
        person("ecole", "F-1", used_name="Durand", address="1 rue A", city="Bordeaux"),
        utcnow() + timedelta(days=1),
    )
    assert renamed.outcome == "updated" and renamed.golden_id == registry.golden_id
    [(status, _merged, xrefs, values)] = state(golden, [registry.golden_id]).values()
    assert status == "active" and xrefs == [("ecole", "F-1"), ("etat_civil", "N-1")]
    assert values["used_name"][:2] == ("Durand", renamed.source_record_id)
    assert values["birth_name"][1] == registry.source_record_id  # état civil still wins birth identity
    with golden.db.sessions() as session:
        indexed = dict(
            session.execute(
                select(KEYS.c.source_record_id, func.count())
                .where(KEYS.c.source_record_id.in_([school.source_record_id, renamed.source_record_id]))
                .group_by(KEYS.c.source_record_id)
            ).all()
        )
        current = session.execute(
            select(XREFS.c.source_record_id).where(XREFS.c.system == "ecole", XREFS.c.local_id == "F-1")
        ).scalar_one()
    assert school.source_record_id not in indexed and indexed[renamed.source_record_id] > 0
    assert current == renamed.source_record_id
    assert lineage_dangling(golden) == 0


def test_a_conflicting_birth_place_goes_to_review_with_a_new_golden_record(golden):
    first = golden.resolve(person("etat_civil", "N-1"))
    doubtful = golden.resolve(
        person("finances", "T-3", given_names=("Élodie",), birth_date="1985-03-15", birth_place="13055")
    )
    assert doubtful.outcome == "review" and doubtful.task_id is not None
    assert doubtful.golden_id != first.golden_id
    assert doubtful.explanation.rule == "conflict:birth_place"


def test_merge_then_unmerge_restores_both_golden_records(golden):
    a = golden.resolve(person("etat_civil", "N-1")).golden_id
    b = golden.resolve(
        person("finances", "T-3", given_names=("Élodie",), birth_date="1985-03-15", birth_place="13055")
    ).golden_id
    before = state(golden, [a, b])
    with golden.db.connection() as connection:
        merged = golden.store.merge(connection, a, b, now=utcnow(), actor="steward")
    assert merged.moved == [("finances", "T-3")]
    after = state(golden, [a, b])
    assert after[b][:2] == ("merged", a) and after[b][2] == [] and after[b][3] == {}
    assert after[a][2] == [("etat_civil", "N-1"), ("finances", "T-3")]
    with golden.db.connection() as connection, pytest.raises(NotActive):
        golden.store.merge(connection, a, b, now=utcnow(), actor="steward")
    with golden.db.connection() as connection:
        golden.store.unmerge(connection, a, b, now=utcnow(), actor="steward")
    assert state(golden, [a, b]) == before
    with golden.db.connection() as connection, pytest.raises(NothingToUnmerge):
        golden.store.unmerge(connection, a, b, now=utcnow(), actor="steward")


identity = st.fixed_dictionaries(
    {
        "system": st.sampled_from(["etat_civil", "ecole", "finances", "portal"]),
        "birth_name": st.sampled_from(["Lefèvre", "LEFEVRE", "Martin", "Ndiaye", "Santoni"]),
        "given_names": st.lists(
            st.sampled_from(["Élodie", "Marie", "Jean", "Awa"]), min_size=1, max_size=2
        ).map(tuple),
        "birth_date": st.sampled_from(["1985-03-14", "1985-03-15", "1990-01-01", "2001-12-25"]),
        "sex": st.sampled_from(["F", "M"]),
        "birth_place": st.sampled_from(["75056", "2A004", "99134", None]),
        "postal_code": st.sampled_from(["33000", "75001", None]),
        "email": st.sampled_from(["a@example.org", "b@example.org", None]),
    }
)


def records(rows, tag: str) -> list[IdentityRecord]:
    return [IdentityRecord(local_id=f"{tag}-{i}", **row) for i, row in enumerate(rows)]


@PROPERTY
@given(st.lists(identity, min_size=2, max_size=8))
def test_property_a_reimported_record_resolves_to_the_same_golden_id(golden, rows):
    batch = records(rows, uuid.uuid4().hex[:8])
    first = [golden.resolve(r).golden_id for r in batch]
    again = [golden.resolve(r) for r in batch]
    assert [r.golden_id for r in again] == first
    assert {r.outcome for r in again} == {"unchanged"}


PICKS = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6))


def two_of(ids: list[str], picks: tuple[int, int]) -> tuple[str, str]:
    """Two different ids of ``ids`` (at least two), chosen by two drawn integers."""
    first = picks[0] % len(ids)
    second = (first + 1 + picks[1] % (len(ids) - 1)) % len(ids)
    return ids[first], ids[second]


@PROPERTY
@given(st.lists(identity, min_size=2, max_size=8), st.data())
def test_property_unmerge_after_merge_restores_the_previous_state(golden, rows, data):
    batch = records(rows, uuid.uuid4().hex[:8])
    ids = sorted({golden.resolve(r).golden_id for r in batch})
    # Drawn whatever the store holds: the database outlives one example, so a draw shaped by its
    # content would differ when hypothesis replays the example (FlakyStrategyDefinition).
    picks = data.draw(PICKS)
    if len(ids) < 2:
        return
    survivor, absorbed = two_of(ids, picks)
    before, linked = state(golden, ids), links(golden, ids)
    with golden.db.connection() as connection:
        golden.store.merge(connection, survivor, absorbed, now=utcnow(), actor="p")
    assert lineage_dangling(golden) == 0
    with golden.db.connection() as connection:
        golden.store.unmerge(connection, survivor, absorbed, now=utcnow(), actor="p")
    assert state(golden, ids) == before
    assert links(golden, ids) == linked


@PROPERTY
@given(st.lists(st.tuples(identity, st.booleans()), min_size=1, max_size=8), st.data())
def test_property_lineage_always_points_to_an_existing_current_source_record(golden, steps, data):
    tag = uuid.uuid4().hex[:8]
    now = utcnow()
    for i, (row, reuse) in enumerate(steps):
        local = f"{tag}-{data.draw(st.integers(0, 2)) if reuse else 10 + i}"
        golden.resolve(IdentityRecord(local_id=local, **row), now + timedelta(seconds=i))
    with golden.db.sessions() as session:
        actives = session.execute(select(GOLDEN.c.id).where(GOLDEN.c.status == "active")).scalars().all()
    picks = data.draw(PICKS)  # drawn whatever the store holds (see above)
    if len(actives) >= 2:
        survivor, absorbed = two_of(sorted(actives), picks)
        with golden.db.connection() as connection:
            golden.store.merge(connection, survivor, absorbed, now=now, actor="p")
    assert lineage_dangling(golden) == 0


def test_a_record_without_birth_place_cannot_vouch_for_one_born_elsewhere(golden):
    registry = golden.resolve(person("etat_civil", "N-1"))
    school = golden.resolve(person("ecole", "F-77", given_names=("Elodie",), birth_place=None))
    assert school.outcome == "link" and school.golden_id == registry.golden_id
    # Against the school record alone nothing conflicts; against the golden record (born in Paris
    # according to the registry) the birth place does: a steward decides.
    elsewhere = golden.resolve(person("finances", "T-3", given_names=("Elodie",), birth_place="13055"))
    assert elsewhere.outcome == "review" and elsewhere.golden_id != registry.golden_id
    # The steward is shown the comparison with the golden record as a whole, conflict named.
    assert elsewhere.explanation.rule == "conflict:birth_place"


def test_reindex_rebuilds_the_blocking_keys_of_current_records_only(golden):
    first = golden.resolve(person("ecole", "F-1", postal_code="33000"))
    moved = golden.resolve(person("ecole", "F-1", postal_code="75001"))  # a second version
    other = golden.resolve(person("etat_civil", "N-9", birth_name="Ndiaye", given_names=("Awa",)))
    with golden.db.connection() as connection:
        connection.execute(KEYS.delete())
    with golden.db.connection() as connection:
        assert golden.store.reindex(connection, golden.matcher, after=0, limit=1) == [moved.source_record_id]
    with golden.db.connection() as connection:
        assert golden.store.reindex(connection, golden.matcher, after=moved.source_record_id, limit=10) == [
            other.source_record_id
        ]
        assert golden.store.reindex(connection, golden.matcher, after=other.source_record_id, limit=10) == []
    with golden.db.sessions() as session:
        indexed = set(session.execute(select(KEYS.c.source_record_id)).scalars())
    assert (
        indexed == {moved.source_record_id, other.source_record_id} and first.source_record_id not in indexed
    )
    again = golden.resolve(person("portal", "cit_x", postal_code="75001"))
    assert again.golden_id == moved.golden_id  # found again through the rebuilt index


def test_candidates_are_those_sharing_the_most_keys_not_the_first_stored(golden):
    golden.store.max_candidates = 2
    for i in range(5):  # namesakes stored first: same names and decade, other birth dates and places
        golden.resolve(person("finances", f"T-{i}", birth_date=f"198{i}-0{i + 1}-1{i}", birth_place="13055"))
    same = golden.resolve(person("etat_civil", "N-1"))
    incoming = person("ecole", "F-77", given_names=("Elodie",))
    with golden.db.sessions() as session:
        found = golden.store.candidates(session.connection(), golden.matcher.blocking_keys(incoming))
    assert len(found) == 2 and found[0][0].id == same.source_record_id
