"""`hub citizens import --batch` into a populated store: a second system's export (the école after
the état civil) deduplicated and linked to the stored golden records in one batch, written as
real-time resolution writes it (cross-references with rule and probability, golden values derived
again with lineage, a version per record joining, review tasks), agreeing with the record-by-record
import of the same file, known records updated, bad input refused with no effect."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.citizens import Citizens
from hub.db.master_models import GOLDEN, MODELS, SOURCES, TASKS, VALUES, VERSIONS, XREFS
from hub.db.migrate import upgrade
from hub.db.models import JOURNAL
from hub.runtime import build_hub
from master_data.sources import read_records
from tests.conftest import CONFIG
from tests.hub import test_citizens_batch_import as batch_import
from tests.hub.test_citizens_batch_import import SYLLABLES, invoke, population, state

export = batch_import.export

REGISTRY, SCHOOL = "etat_civil", "ecole"


def school_export(rows: list[dict], seed: int) -> tuple[list[dict], dict[str, str | None], set[str]]:
    """The école's export of people the registry holds (``rows``, local ids ``N-<p>``) and of
    newcomers: each record spelled as a school spells it (capitals without accents, a used name, no
    birth place, an abbreviated street; a doubtful one with a mistyped day, moved, no birth place),
    a few held twice by the school, and one too thin to be linked by its score that states the
    registry's identifier of the person. Returns the rows, each school local id's registry record
    (``None``: a newcomer) and the doubtful ones."""
    rnd = random.Random(seed)
    out: list[dict] = []
    expected: dict[str, str | None] = {}
    doubtful: set[str] = set()
    people = rnd.sample(rows, len(rows) * 2 // 3)
    for k, person in enumerate(people):
        record = {key: value for key, value in person.items() if key != "local_id"}
        variation = k % 5
        if variation == 0:
            record["birth_name"] = record["birth_name"].upper()
            record["given_names"] = [
                g.upper().replace("É", "E").replace("È", "E") for g in record["given_names"]
            ]
        elif variation == 1:
            record["used_name"] = "".join(rnd.choice(SYLLABLES) for _ in range(2)).capitalize()
        elif variation == 2:
            record.pop("birth_place")
        elif variation == 3:
            record["address"] = record["address"].replace("rue", "r.")
            record.pop("phone")
        else:  # doubtful: the day of birth mistyped, moved, no birth place nor phone
            year, month, day = record["birth_date"].split("-")
            record["birth_date"] = f"{year}-{month}-{int(day) % 28 + 1:02d}"
            record["address"] = f"{rnd.randint(121, 200)} rue Neuve"
            record.pop("birth_place")
            record.pop("phone")
        local_id = f"E-{person['local_id']}"
        out.append({"local_id": local_id, **record})
        expected[local_id] = person["local_id"]
        if variation == 4:
            doubtful.add(local_id)
        if k % 15 == 1:  # the school holds this child twice
            twin = {**record, "local_id": f"E2-{person['local_id']}", "phone": None}
            out.append(twin)
            expected[twin["local_id"]] = person["local_id"]
    newcomers, _truth = population(len(rows) // 5, 0, seed=seed + 100, namesakes=None)
    for row in newcomers:
        local_id = f"E-new-{row['local_id']}"
        out.append({**row, "local_id": local_id})
        expected[local_id] = None
    # Thin (another surname, the first name cut, no sex nor birth place) but stating the
    # registry's identifier of the person: linked by the identifier, not by the score.
    named = rows[-1]
    out.append(
        {
            "local_id": "E-named",
            "birth_name": "Zzyzx",
            "given_names": [named["given_names"][0][:3]],
            "birth_date": named["birth_date"],
            "identifiers": {REGISTRY: named["local_id"]},
        }
    )
    expected["E-named"] = named["local_id"]
    rnd.shuffle(out)
    return out, expected, doubtful


def registry_rows(people: int, seed: int) -> list[dict]:
    rows, _truth = population(people, 0, seed=seed, namesakes=None)
    return [{**row, "local_id": f"N-{row['local_id'][2:]}"} for row in rows]


def golden_of(hub) -> dict[tuple[str, str], str]:
    with hub.db.sessions() as session:
        return {
            (row.system, row.local_id): row.golden_id
            for row in session.execute(select(XREFS.c.system, XREFS.c.local_id, XREFS.c.golden_id))
        }


def partition(hub) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for (system, local_id), golden_id in golden_of(hub).items():
        groups.setdefault(golden_id, set()).add(f"{system}:{local_id}")
    return {frozenset(group) for group in groups.values()}


@pytest.fixture
def exports(export) -> tuple[Path, Path, dict[str, str | None], set[str]]:
    registry = registry_rows(240, seed=21)
    school, expected, doubtful = school_export(registry, seed=22)
    return export(registry, "etat_civil.json"), export(school, "ecole.json"), expected, doubtful


def test_a_second_systems_export_is_linked_to_the_stored_golden_records_in_one_batch(
    exports, hub, tmp_path, monkeypatch
):
    registry, school, expected, doubtful = exports
    assert invoke("import", "--system", REGISTRY, "--batch", str(registry)).exit_code == 0
    before = golden_of(hub)
    with hub.db.sessions() as session:
        versions_before = dict(session.execute(select(GOLDEN.c.id, GOLDEN.c.version)).all())
        tasks_before = session.scalar(select(func.coalesce(func.max(TASKS.c.id), 0)))
    result = invoke("import", "--system", SCHOOL, "--batch", str(school))
    assert result.exit_code == 0, result.output
    assert "batch" in result.output and "linked to an existing golden record" in result.output
    assert "review tasks" in result.output and "known record, unchanged" in result.output

    after = golden_of(hub)
    assert {key: after[key] for key in before} == before  # stored records stay where they were
    assert len(set(before.values())) == len(before)  # no two registry records joined by the batch
    found = {local_id: after[(SCHOOL, local_id)] for local_id in expected}
    registry_golden = {local_id: golden for (system, local_id), golden in before.items()}
    certain = {local_id: n for local_id, n in expected.items() if n is not None and local_id not in doubtful}
    # Spelled differently, each is linked to its person's golden record; the identifier links the
    # thin record the score alone would not.
    linked = [local_id for local_id, n in certain.items() if found[local_id] == registry_golden[n]]
    assert len(linked) >= 0.95 * len(certain) and "E-named" in linked
    # Never to another person's.
    for local_id, n in expected.items():
        if found[local_id] in registry_golden.values():
            assert n is not None and found[local_id] == registry_golden[n], local_id
    # Newcomers: golden records of their own, shared only with the school's own duplicate.
    newcomers = {local_id for local_id, n in expected.items() if n is None}
    assert all(found[local_id] not in registry_golden.values() for local_id in newcomers)
    assert len({found[local_id] for local_id in newcomers}) == len(newcomers)

    # Without the identifier its score would not link it.
    named = next(r for r in read_records(school, SCHOOL, [REGISTRY, SCHOOL]) if r.local_id == "E-named")
    holder = next(r for r in read_records(registry, REGISTRY) if r.key == named.identifiers[0])
    assert (
        Citizens(hub).matcher().decide(dataclasses.replace(named, identifiers=()), [holder]).outcome != "link"
    )
    with hub.db.sessions() as session:
        xrefs = {row.local_id: row for row in session.execute(select(XREFS).where(XREFS.c.system == SCHOOL))}
        assert xrefs["E-named"].link == "rule:same_identifier"
        for local_id in linked:
            assert xrefs[local_id].link in ("score", "rule:same_identifier", "rule:same_pivot_identity")
            assert xrefs[local_id].probability is not None
        # Review tasks for the doubtful ones, between the school's record and the registry's.
        tasks = session.execute(select(TASKS).where(TASKS.c.id > tasks_before)).all()
        local = dict(session.execute(select(SOURCES.c.id, SOURCES.c.local_id)).all())
        reviewed = {local[t.source_record_id]: local[t.candidate_source_record_id] for t in tasks}
        asked = [
            local_id
            for local_id in doubtful
            if local_id in reviewed or found[local_id] == registry_golden[expected[local_id]]
        ]
        assert len(asked) >= len(doubtful) // 2
        assert all(t.explanation["comparisons"] for t in tasks)
        # Each task asks about a record of the file (the later one) against an earlier one.
        assert set(reviewed) <= {local_id for local_id in expected} and len(reviewed) >= 3
        # Lineage: every golden value points to an existing source version; the school's records
        # were brought by the import's journaled exchange.
        dangling = session.scalar(
            select(func.count())
            .select_from(VALUES)
            .outerjoin(SOURCES, SOURCES.c.id == VALUES.c.source_record_id)
            .where(SOURCES.c.id.is_(None))
        )
        assert dangling == 0
        exchange_id = session.scalar(select(func.max(JOURNAL.c.id)))
        assert set(session.scalars(select(SOURCES.c.exchange_id).where(SOURCES.c.system == SCHOOL))) == {
            exchange_id
        }
        # A golden record that gained school records: a version per record joining it, the last
        # holding every cross-reference and the current values.
        gained: dict[str, int] = {}
        for local_id in linked:
            gained[found[local_id]] = gained.get(found[local_id], 0) + 1
        for golden_id, count in gained.items():
            rows = session.execute(
                select(VERSIONS).where(VERSIONS.c.golden_id == golden_id).order_by(VERSIONS.c.version)
            ).all()
            assert [v.version for v in rows] == list(range(1, versions_before[golden_id] + count + 1))
            assert [v.cause for v in rows[-count:]] == ["source_linked"] * count
            assert session.scalar(select(GOLDEN.c.version).where(GOLDEN.c.id == golden_id)) == len(rows)
            last = rows[-1].golden
            assert sorted(tuple(x) for x in last["xrefs"]) == sorted(
                key for key, golden in after.items() if golden == golden_id
            )
            values = {
                row.attribute: (row.value, row.source_record_id)
                for row in session.execute(select(VALUES).where(VALUES.c.golden_id == golden_id))
            }
            assert {
                a: (v["value"], v["lineage"]["source_record_id"]) for a, v in last["values"].items()
            } == values
        # The registry wins the birth identity, the school the address it gave later.
        some = next(local_id for local_id in linked if local_id.startswith("E-N"))
        birth = session.execute(
            select(VALUES.c.system).where(
                VALUES.c.golden_id == found[some], VALUES.c.attribute == "birth_name"
            )
        ).scalar()
        assert birth == REGISTRY

    # Record by record, the same file makes the same golden records (same weights: the defaults).
    url = f"sqlite:///{tmp_path / 'one-by-one.db'}"
    upgrade(url)
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    assert invoke("import", "--system", REGISTRY, "--batch", str(registry)).exit_code == 0
    one = invoke("import", "--system", SCHOOL, str(school))
    assert one.exit_code == 0, one.output
    built = build_hub(CONFIG, url=url, migrate=False)
    try:
        assert partition(built) == partition(hub)
    finally:
        built.close()


def test_known_records_are_updated_as_record_by_record_and_a_rerun_changes_nothing(exports, hub, export):
    registry, school, _expected, _doubtful = exports
    assert invoke("import", "--system", REGISTRY, "--batch", str(registry)).exit_code == 0
    assert invoke("import", "--system", SCHOOL, "--batch", str(school)).exit_code == 0
    before = state(hub)
    again = invoke("import", "--system", SCHOOL, "--batch", str(school))
    assert again.exit_code == 0, again.output
    assert "every record of the file is known" in again.output
    assert state(hub) == before

    rows = json.loads(school.read_text(encoding="utf-8"))
    moved = next(row for row in rows if row["local_id"].startswith("E-N-"))
    moved["address"] = "7 allée des Platanes"
    newcomer = {**registry_rows(1, seed=99)[0], "local_id": "E-late", "birth_name": "Quintavalle"}
    changed = export([*rows, newcomer], "ecole-2.json")
    golden = golden_of(hub)[(SCHOOL, moved["local_id"])]
    result = invoke("import", "--system", SCHOOL, "--batch", str(changed))
    assert result.exit_code == 0, result.output
    table = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.output.splitlines()
        if line.count("│") == 3
    }
    assert table["known record, changed"] == "1"
    assert table["known record, unchanged"] == str(len(rows) - 1)
    assert table["golden records created"] == "1"
    after = golden_of(hub)
    assert after[(SCHOOL, moved["local_id"])] == golden  # updated where it was
    assert [key for key, g in after.items() if g == after[(SCHOOL, "E-late")]] == [(SCHOOL, "E-late")]
    with hub.db.sessions() as session:
        address = session.execute(
            select(VALUES.c.value, VALUES.c.local_id).where(
                VALUES.c.golden_id == golden, VALUES.c.attribute == "address"
            )
        ).one()
        versions = session.scalar(
            select(func.count()).select_from(SOURCES).where(SOURCES.c.local_id == moved["local_id"])
        )
    assert address.value["line"] == "7 allée des Platanes" and address.local_id == moved["local_id"]
    assert versions == 2


def test_bad_input_into_a_populated_store_is_refused_with_no_effect(exports, hub, export):
    registry, school, _expected, _doubtful = exports
    assert invoke("import", "--system", REGISTRY, "--batch", str(registry)).exit_code == 0
    with hub.db.sessions() as session:
        journaled = session.scalar(select(func.count()).select_from(JOURNAL))
    before = state(hub)
    unknown = invoke("import", "--system", "mairie-annexe", "--batch", str(school))
    assert unknown.exit_code == 1 and "unknown system 'mairie-annexe'" in unknown.output
    broken = export([{"local_id": "X-1", "birth_date": "14/03/1985"}], "broken.json")
    malformed = invoke("import", "--system", SCHOOL, "--batch", str(broken))
    assert malformed.exit_code == 1 and "nothing was imported" in malformed.output
    bad_id = export(
        [{"local_id": "X-2", "birth_name": "Dupont", "identifiers": {"impots": "I-1"}}], "bad-id.json"
    )
    refused = invoke("import", "--system", SCHOOL, "--batch", str(bad_id))
    assert refused.exit_code == 1 and "unknown system 'impots'" in refused.output
    assert state(hub) == before
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(JOURNAL)) == journaled


def test_a_golden_record_changed_while_the_batch_writes_sends_the_rest_record_by_record(exports, hub):
    """A registry record updated in real time after the batch read the population: the batch sees
    the golden record's new version before joining it, and resolves the rest of the file record
    by record (against the updated record), so nothing is written from a stale read."""
    registry, school, expected, doubtful = exports
    citizens = Citizens(hub)
    registry_records = read_records(registry, REGISTRY)
    citizens.import_batch(REGISTRY, registry_records, source="r.json", raw=b"...", actor="test")
    records = read_records(school, SCHOOL, [REGISTRY, SCHOOL])
    target = next(
        local_id
        for local_id, n in sorted(expected.items())
        if local_id.startswith("E-N-") and n is not None and local_id not in doubtful
    )
    registry_record = next(r for r in registry_records if r.local_id == expected[target])
    changed: list[str] = []

    def stage(name: str) -> None:
        if name == "writing" and not changed:
            moved = dataclasses.replace(registry_record, address="3 impasse du Lavoir")
            changed.append(citizens.resolve(moved, actor="etat_civil").outcome)

    summary = citizens.import_batch(SCHOOL, records, source="e.json", raw=b"...", actor="test", stage=stage)
    assert changed == ["updated"]
    assert summary.mode.startswith("batch, then record by record for the last")
    ids = golden_of(hub)
    assert len([key for key in ids if key[0] == SCHOOL]) == len(records)
    assert ids[(SCHOOL, target)] == ids[(REGISTRY, expected[target])]


def test_estimate_weights_again_from_the_stored_records_and_the_file(hub, export):
    """`--estimate`: the weights are estimated from the stored population and the file together
    (the registry alone holds no pair of one person to learn from), stored, and used to link; too
    few records together is refused before any effect."""
    small = export(
        [{**row, "local_id": f"M-{row['local_id']}"} for row in registry_rows(100, seed=5)], "small.json"
    )
    assert invoke("import", "--system", REGISTRY, "--batch", str(small)).exit_code == 0
    before = state(hub)
    refused = invoke("import", "--system", SCHOOL, "--batch", "--estimate", str(small))
    assert refused.exit_code == 1 and "estimating weights needs 1000" in refused.output
    assert state(hub) == before

    registry = registry_rows(600, seed=31)
    school, expected, doubtful = school_export(registry, seed=32)
    assert invoke("import", "--system", REGISTRY, str(export(registry, "registry.json"))).exit_code == 0
    with hub.db.sessions() as session:
        models = session.scalar(select(func.count()).select_from(MODELS))
    result = invoke("import", "--system", SCHOOL, "--batch", "--estimate", str(export(school, "school.json")))
    assert result.exit_code == 0, result.output
    stored = 100 + len(registry)
    assert f"estimated from {stored + len(school)} records ({stored} stored, {len(school)} in the file)" in (
        " ".join(result.output.split())
    )
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(MODELS)) == models + 1
        assert session.scalar(select(MODELS.c.records).order_by(MODELS.c.id.desc()).limit(1)) == stored + len(
            school
        )
    found = golden_of(hub)
    certain = [local_id for local_id, n in expected.items() if n is not None and local_id not in doubtful]
    linked = [i for i in certain if found[(SCHOOL, i)] == found[(REGISTRY, expected[i])]]
    assert len(linked) >= 0.95 * len(certain)
