"""Survivorship: état civil wins for the birth identity, the latest news for contact details, and
every golden value says where it comes from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from master_data.records import IdentityRecord
from master_data.survivorship import (
    ATTRIBUTES,
    AttributeRule,
    SourceVersion,
    SurvivorshipPolicy,
    attribute_value,
    derive,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = SurvivorshipPolicy(
    {
        "birth_name": AttributeRule("trusted_source", ("etat_civil", "portal")),
        "given_names": AttributeRule("most_complete"),
        "address": AttributeRule("most_recent"),
        "email": AttributeRule("most_frequent"),
    }
)


def source(id: int, system: str, days: int = 0, **fields) -> SourceVersion:
    return SourceVersion(
        id, IdentityRecord(system, f"{system}-{id}", **fields), T0 + timedelta(days=days), 100 + id
    )


def test_etat_civil_wins_the_birth_name_even_when_older():
    golden = derive(
        [
            source(1, "ecole", days=30, birth_name="LEFEVRE"),
            source(2, "etat_civil", days=0, birth_name="Lefèvre"),
            source(3, "portal", days=60, birth_name="Lefevre"),
        ],
        POLICY,
    )
    assert golden["birth_name"].value == "Lefèvre"
    lineage = golden["birth_name"].lineage
    assert (lineage.system, lineage.source_record_id, lineage.exchange_id, lineage.rule) == (
        "etat_civil",
        2,
        102,
        "trusted_source",
    )


def test_untrusted_systems_fall_back_to_the_most_recent():
    golden = derive([source(1, "ecole", 1, birth_name="A"), source(2, "finances", 2, birth_name="B")], POLICY)
    assert golden["birth_name"].value == "B"


def test_the_latest_address_survives_as_one_block():
    golden = derive(
        [
            source(1, "etat_civil", 0, address="1 rue Haute", postal_code="75001", city="Paris"),
            source(2, "ecole", 10, address="12 rue des Lilas", postal_code="33000", city="Bordeaux"),
            source(3, "finances", 5, city="Lyon"),
        ],
        POLICY,
    )
    assert golden["address"].value == {"line": "12 rue des Lilas", "postal_code": "33000", "city": "Bordeaux"}
    assert golden["address"].lineage.system == "ecole"


def test_most_complete_keeps_every_given_name():
    golden = derive(
        [
            source(1, "ecole", 9, given_names=("Elodie",)),
            source(2, "finances", 0, given_names=("Élodie", "Marie")),
        ],
        POLICY,
    )
    assert golden["given_names"].value == ["Élodie", "Marie"]


def test_most_frequent_counts_spellings_as_one_value():
    golden = derive(
        [
            source(1, "ecole", 0, email="e.martin@example.org"),
            source(2, "finances", 1, email="E.Martin@example.org"),
            source(3, "portal", 9, email="other@example.org"),
        ],
        POLICY,
    )
    assert golden["email"].value == "E.Martin@example.org"  # the majority, in its latest spelling


def test_an_attribute_no_source_gives_has_no_golden_value():
    golden = derive([source(1, "ecole", 0, birth_name="X", phone="  ")], POLICY)
    assert set(golden) == {"birth_name"}


names = st.sampled_from(["Lefèvre", "LEFEVRE", "Martin", "Ndiaye", "", "de La Fontaine"])
records = st.builds(
    lambda system, birth, given, email, postal, days: (system, birth, given, email, postal, days),
    st.sampled_from(["etat_civil", "ecole", "finances", "portal"]),
    names,
    st.lists(st.sampled_from(["Élodie", "Marie", "Jean"]), max_size=3),
    st.sampled_from([None, "a@example.org", "b@example.org"]),
    st.sampled_from([None, "33000", "75001"]),
    st.integers(0, 3),
)


@given(st.lists(records, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_golden_values_never_depend_on_source_order_and_always_point_to_a_given_source(rows, rnd):
    sources = [
        source(
            i,
            system,
            days,
            birth_name=birth or None,
            given_names=tuple(given),
            email=email,
            postal_code=postal,
        )
        for i, (system, birth, given, email, postal, days) in enumerate(rows, start=1)
    ]
    golden = derive(sources, POLICY)
    shuffled = list(sources)
    rnd.shuffle(shuffled)
    assert derive(shuffled, POLICY) == golden
    by_id = {s.id: s for s in sources}
    for attribute, value in golden.items():
        assert attribute in ATTRIBUTES
        origin = by_id[value.lineage.source_record_id]  # lineage names a source that was given...
        assert attribute_value(origin.record, attribute) == value.value  # ...and that gave this value
        assert (value.lineage.system, value.lineage.observed_at) == (origin.system, origin.received_at)


def test_only_a_valid_nir_consistent_with_its_record_becomes_the_golden_one():
    """A mistyped NIR (bad key), or a parent's NIR held for a child (another sex, another birth
    year), is never the person's golden NIR, and so never sent on to other systems."""
    child = {"sex": "F", "birth_date": "2012-05-03"}
    golden = derive(
        [
            source(1, "finances", days=2, nir="180037511200105", **child),  # key wrong
            source(2, "ecole", days=1, nir="180037511200104", **child),  # the father's, valid
        ],
        POLICY,
    )
    assert "nir" not in golden
    adult = {"sex": "M", "birth_date": "1980-03-10"}
    golden = derive(
        [
            source(1, "finances", nir="1 80 03 75 112 001 04", **adult),
            source(2, "ecole", nir="18003751120010X"),
        ],
        POLICY,
    )
    assert golden["nir"].value == "180037511200104" and golden["nir"].lineage.system == "finances"


# ------------------------------------------------------------ most_recent: the source's own time


def test_an_old_export_loaded_after_a_recent_request_does_not_win_the_address():
    """The portal request came in January; the school's export, loaded in March, was last changed
    by the school in 2019: the portal's address is the most recent."""
    portal = source(1, "portal", 10, address="12 rue des Lilas", postal_code="33000", city="Bordeaux")
    export = source(
        2,
        "ecole",
        60,
        address="3 place Pey-Berland",
        postal_code="33000",
        city="Bordeaux",
        updated_at="2019-06-30",
    )
    golden = derive([portal, export], POLICY)
    assert golden["address"].value["line"] == "12 rue des Lilas"
    assert golden["address"].lineage.system == "portal" and golden["address"].lineage.updated_at is None
    # The same export, changed by the school after the request: it wins, and its lineage says when.
    fresh = source(2, "ecole", 60, address="3 place Pey-Berland", updated_at="2026-02-01T09:30:00+01:00")
    golden = derive([portal, fresh], POLICY)
    assert golden["address"].lineage.system == "ecole"
    assert golden["address"].lineage.updated_at == datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    assert golden["address"].lineage.as_json()["updated_at"] == "2026-02-01T08:30:00+00:00"


def test_an_updated_at_after_reception_counts_as_the_reception():
    """A source cannot have changed a record after sending it: a date in the future (a clock or
    data error) does not make a record win for ever."""
    future = source(1, "ecole", 0, address="1 rue Haute", updated_at="2099-01-01")
    later = source(2, "finances", 1, address="2 rue Basse")
    assert derive([future, later], POLICY)["address"].lineage.system == "finances"
    assert future.changed_at == future.received_at


changes = st.one_of(st.none(), st.integers(-400, 400))


@given(
    st.lists(
        st.tuples(st.sampled_from(["ecole", "finances", "portal"]), st.integers(0, 30), changes),
        min_size=1,
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_most_recent_picks_the_latest_source_time_else_reception(rows, rnd):
    """Each version's time is its ``updated_at`` when given (never after its reception), else its
    reception; the most recent wins, in any input order, and one without ``updated_at`` compares
    by its reception time against the others' ``updated_at``."""
    sources = []
    for i, (system, days, changed) in enumerate(rows, start=1):
        updated = None if changed is None else (T0 + timedelta(days=days, hours=changed)).isoformat()
        sources.append(source(i, system, days, address=f"{i} rue", updated_at=updated))
    golden = derive(sources, POLICY)["address"]
    shuffled = list(sources)
    rnd.shuffle(shuffled)
    assert derive(shuffled, POLICY)["address"] == golden

    def time(s: SourceVersion) -> datetime:
        if s.record.updated_at is None:
            return s.received_at
        return min(datetime.fromisoformat(s.record.updated_at), s.received_at)

    winner = next(s for s in sources if s.id == golden.lineage.source_record_id)
    assert time(winner) == max(time(s) for s in sources)
    assert golden.lineage.observed_at == winner.received_at
