"""Several workers resolving the same new citizen at once: one golden record, not several."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub.citizens import Citizens
from hub.db.engine import Database
from hub.db.master_models import GOLDEN, XREFS
from hub.db.models import utcnow
from hub.master_store import Resolution
from tests.master_data.conftest import person

SYSTEMS = ("etat_civil", "ecole", "finances", "portal")


def test_one_new_record_resolved_concurrently_makes_one_golden_record(hub):
    citizens = Citizens(hub)
    record = person("ecole", "F-1")
    with ThreadPoolExecutor(4) as pool:
        resolutions = list(pool.map(lambda _: citizens.resolve(record, actor="worker"), range(8)))
    assert len({r.golden_id for r in resolutions}) == 1
    assert sorted(r.outcome for r in resolutions) == ["new"] + ["unchanged"] * 7
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(GOLDEN)) == 1
        assert session.scalar(select(func.count()).select_from(XREFS)) == 1


def test_records_of_one_new_person_from_several_systems_at_once_make_one_golden_record(hub):
    """Eight workers resolve eight records of the same new citizen (different systems and local
    ids, so no primary key meets): each but the first must see the first's golden record."""
    citizens = Citizens(hub)
    records = [person(system, f"{system[:2].upper()}-{n}") for n in range(2) for system in SYSTEMS]
    with ThreadPoolExecutor(4) as pool:
        resolutions = list(pool.map(lambda r: citizens.resolve(r, actor="worker"), records))
    assert len({r.golden_id for r in resolutions}) == 1
    assert sorted(r.outcome for r in resolutions) == ["link"] * 7 + ["new"]
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(GOLDEN)) == 1


def test_a_second_new_record_of_the_person_waits_for_the_first_transaction(golden, database_url):
    """Deterministic: the first worker's transaction has created the golden record but not yet
    committed when another worker (its own engine and connections) resolves the same person from
    another system; the second must wait for that commit, then link, instead of creating a twin."""
    other = Database(database_url)
    pool = ThreadPoolExecutor(1)

    def second_worker() -> Resolution:
        with other.connection() as connection:
            return golden.store.resolve(connection, person("finances", "F-2"), golden.matcher, now=utcnow())

    try:
        with golden.db.connection() as connection:
            first = golden.store.resolve(connection, person("ecole", "E-2"), golden.matcher, now=utcnow())
            second_future = pool.submit(second_worker)
            time.sleep(0.5)
            waited = not second_future.done()
        second = second_future.result(timeout=30)
    finally:
        pool.shutdown()
        other.dispose()
    assert waited, "the second resolution did not wait for the first one's transaction"
    assert first.outcome == "new"
    assert (second.outcome, second.golden_id) == ("link", first.golden_id)
    with golden.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(GOLDEN)) == 1


def test_a_local_id_taken_meanwhile_by_another_person_fails_as_integrity_error(golden, database_url):
    """Two different people under one (system, local id) at once share no blocking key, so nothing
    serialises them but the cross-reference's primary key: the second fails with SQLAlchemy's
    IntegrityError (which Citizens retries, then finds an update), or on SQLite, whose writers
    take turns, is an update straight away."""
    other = Database(database_url)
    pool = ThreadPoolExecutor(1)
    stranger = person("ecole", "E-3", birth_name="Zidane", given_names=("Yazid",), birth_date="1972-06-23")

    def second_worker() -> Resolution:
        with other.connection() as connection:
            return golden.store.resolve(connection, stranger, golden.matcher, now=utcnow())

    try:
        with golden.db.connection() as connection:
            golden.store.resolve(connection, person("ecole", "E-3"), golden.matcher, now=utcnow())
            second_future = pool.submit(second_worker)
            time.sleep(0.3)
        try:
            outcome = second_future.result(timeout=30).outcome
        except IntegrityError:
            outcome = "integrity_error"
    finally:
        pool.shutdown()
        other.dispose()
    assert outcome in ("integrity_error", "updated")
    assert golden.resolve(stranger).outcome in ("updated", "unchanged")
