"""What a batch reads of a stored population (:meth:`GoldenStore.neighbourhood`): only the golden
records its new records can meet, whole, and never a block too large for the batch to compare."""

from __future__ import annotations

from collections.abc import Iterator

from tests.master_data.conftest import person


def read(golden, records, *, max_block: int = 500):
    keys = [[key for record in records for key in golden.matcher.blocking_keys(record)]]
    named = {key for record in records for key in (record.key, *record.identifiers)}
    with golden.db.reading() as connection:
        return golden.store.neighbourhood(connection, keys, named, max_block=max_block)


def test_an_empty_store_reads_nothing_and_computes_no_key(golden):
    def keys() -> Iterator[list[str]]:
        raise AssertionError("the file's keys were computed for an empty store")
        yield []

    with golden.db.reading() as connection:
        around = golden.store.neighbourhood(connection, keys(), {("ecole", "E-1")}, max_block=500)
    assert (around.sources, around.golden_ids, around.versions, around.population) == ([], [], {}, 0)


def test_only_the_golden_records_the_file_meets_are_read_whole(golden):
    elodie = golden.resolve(person("etat_civil", "N-1"))
    # Another record of hers that shares no blocking key with the file (a used name, no birth
    # date, another address), linked by her NIR.
    nir = "2850375056123"
    nir += f"{97 - int(nir) % 97:02d}"
    golden.resolve(person("etat_civil", "N-1b", nir=nir))
    other = golden.resolve(
        person(
            "finances",
            "T-1",
            birth_name="Martin",
            given_names=("Elo",),
            birth_date=None,
            sex=None,
            birth_place=None,
            address="3 quai Sud",
            nir=nir,
        )
    )
    assert other.golden_id == elodie.golden_id
    paul = golden.resolve(person("etat_civil", "N-2", birth_name="Durand", given_names=("Paul",), sex="M"))
    payer = golden.resolve(
        person("finances", "T-9", birth_name="Zola", given_names=("Émile",), sex="M", birth_date="1940-04-02")
    )
    incoming = [
        person("ecole", "E-1", birth_place=None),  # meets Élodie by her keys
        person(  # meets the payer by the identifier it states, and nothing else
            "ecole",
            "E-2",
            birth_name="Xu",
            given_names=("Li",),
            birth_date="2015-01-01",
            birth_place="99216",
            identifiers=(("finances", "T-9"),),
        ),
    ]
    around = read(golden, incoming)
    held = dict(
        zip(((s.record.system, s.record.local_id) for s in around.sources), around.golden_ids, strict=True)
    )
    assert held[("etat_civil", "N-1")] == held[("finances", "T-1")] == elodie.golden_id  # whole
    assert held[("finances", "T-9")] == payer.golden_id
    assert paul.golden_id not in around.versions and ("etat_civil", "N-2") not in held
    assert around.population == 5 and set(around.versions) == set(held.values())


def test_a_block_too_large_to_compare_is_not_read(golden):
    """Four stored namesakes born in one year share the name-and-year keys with the new record and
    nothing else: the batch skips a block of ``max_block`` records or more, so the store does not
    read it."""
    for k in range(4):
        golden.resolve(
            person(
                "etat_civil",
                f"N-{k}",
                birth_date=f"1985-0{k + 1}-1{k}",
                birth_place=f"3300{k}",
                address=f"{k + 1} rue Haute",
                postal_code=f"3300{k}",
            )
        )
    incoming = [person("ecole", "E-1", birth_date="1985-12-28", birth_place="99134", address="9 rue Basse")]
    assert {s.record.local_id for s in read(golden, incoming, max_block=10).sources} == {
        f"N-{k}" for k in range(4)
    }
    assert read(golden, incoming, max_block=4).sources == []
