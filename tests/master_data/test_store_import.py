"""An initial load large enough estimates the match weights from the file and stores them."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from hub.citizens import MIN_ESTIMATE_RECORDS, Citizens
from hub.db.master_models import MODELS, XREFS
from master_data.records import IdentityRecord

SURNAMES = [
    "Martin",
    "Bernard",
    "Dubois",
    "Lefèvre",
    "Ndiaye",
    "Santoni",
    "Garcia",
    "Nguyen",
    "Moreau",
    "Petit",
]
GIVEN = ["Élodie", "Marie", "Jean", "Awa", "Paul", "Léa", "Hugo", "Inès", "Louis", "Chloé", "Nicolas", "Zoé"]


def export(count: int, seed: int = 5) -> list[IdentityRecord]:
    rnd = random.Random(seed)
    return [
        IdentityRecord(
            "etat_civil",
            f"N-{i}",
            birth_name=rnd.choice(SURNAMES),
            given_names=(rnd.choice(GIVEN),),
            birth_date=f"{rnd.randint(1940, 2020)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
            sex=rnd.choice("MF"),
            birth_place=f"{rnd.randint(10, 95)}{rnd.randint(1, 300):03d}",
        )
        for i in range(count)
    ]


def test_a_large_first_import_estimates_and_stores_the_weights(hub):
    citizens = Citizens(hub)
    records = export(MIN_ESTIMATE_RECORDS)
    seen = []
    summary = citizens.import_records(
        "etat_civil", records, source="etat-civil.json", raw=b"...", actor="test", progress=seen.append
    )
    assert summary.model == f"estimated from {MIN_ESTIMATE_RECORDS} records"
    assert sum(seen) == MIN_ESTIMATE_RECORDS and sum(summary.outcomes.values()) == MIN_ESTIMATE_RECORDS
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(MODELS)) == 1
        assert session.scalar(select(func.count()).select_from(XREFS)) == MIN_ESTIMATE_RECORDS
    assert citizens.matcher().model.notes.get("source") == "em"
    # Later imports keep the stored weights; `hub citizens estimate` learns them again.
    again = citizens.import_records("etat_civil", records[:10], source="x", raw=b"x", actor="test")
    assert again.model == "stored" and again.outcomes == {"unchanged": 10}
    assert citizens.estimate() == MIN_ESTIMATE_RECORDS
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(MODELS)) == 2
