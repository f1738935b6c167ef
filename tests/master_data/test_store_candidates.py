"""Real-time candidates: an over-full blocking key (``master_data.max_key_records``) is not read
when the record has another key, so its block does not grow with the population; the true match
is found through the more selective keys."""

from __future__ import annotations

from sqlalchemy import func, select

from hub.db.master_models import KEYS
from tests.master_data.conftest import person

CAP = 20


def namesakes(golden, count: int, *, same_date: bool) -> list[int]:
    """``count`` people named like Élodie Lefèvre, born in 1985 (on the same day when
    ``same_date``) in other towns; their source record ids, oldest first."""
    ids = []
    for k in range(count):
        date = "1985-03-14" if same_date else f"1985-{k % 12 + 1:02d}-{k % 27 + 1:02d}"
        if not same_date and date == "1985-03-14":
            date = "1985-03-28"
        record = person(
            "finances", f"T-{k}", given_names=("Élodie",), birth_date=date, birth_place=f"{13001 + k}"
        )
        ids.append(golden.resolve(record).source_record_id)
    return ids


def found(golden, record) -> list[int]:
    with golden.db.sessions() as session:
        return [
            source.id
            for source, _golden_id in golden.store.candidates(
                session.connection(), golden.matcher.blocking_keys(record)
            )
        ]


def held(golden, key_prefix: str) -> int:
    """Records holding the incoming record's most populated key of a rule (e.g. names + year)."""
    with golden.db.sessions() as session:
        return session.scalar(
            select(func.count())
            .select_from(KEYS)
            .where(KEYS.c.key.startswith(key_prefix))
            .group_by(KEYS.c.key)
            .order_by(func.count().desc())
            .limit(1)
        )


def test_an_over_full_key_is_not_read_and_the_true_match_is_found_through_another(golden):
    golden.store.max_key_records = CAP
    true_match = golden.resolve(person("etat_civil", "N-1")).source_record_id  # the oldest record
    crowd = namesakes(golden, CAP + 30, same_date=False)
    incoming = person("ecole", "F-77", given_names=("Elodie",))
    assert held(golden, "n:") > CAP  # names + birth year: the whole crowd and the true match

    # Without the cap, the whole block is read and the crowd fills the candidates.
    golden.store.max_key_records = 100_000
    uncapped = found(golden, incoming)
    assert uncapped[0] == true_match and len(set(uncapped) & set(crowd)) == len(uncapped) - 1 > CAP

    # With it, only the true match: the crowd shares nothing but the over-full name keys.
    golden.store.max_key_records = CAP
    assert found(golden, incoming) == [true_match]
    resolution = golden.resolve(incoming)
    assert resolution.outcome == "link"
    with golden.db.sessions() as session:
        assert golden.store.sources_of(session.connection(), resolution.golden_id)[0].id == true_match


def test_a_record_whose_every_key_is_over_full_reads_only_the_newest_of_each(golden):
    golden.store.max_key_records = CAP
    crowd = namesakes(golden, CAP + 30, same_date=True)  # namesakes: same names and birth date
    incoming = person("ecole", "F-78", given_names=("Elodie",), birth_place=None)
    keys = golden.matcher.blocking_keys(incoming)
    assert held(golden, "s:") > CAP and all(k[0] in "mnsg" for k in keys)  # every key over-full
    candidates = found(golden, incoming)
    assert sorted(candidates) == sorted(crowd[-CAP:])  # the CAP most recent, not the whole block
