"""A golden store on the test database (SQLite, or PostgreSQL with HUB_TEST_DATABASE_URL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from hub.db.engine import Database
from hub.db.models import utcnow
from hub.master_store import GoldenStore, Resolution
from master_data.matching import Matcher, MatchModel
from master_data.records import IdentityRecord
from master_data.survivorship import AttributeRule, SurvivorshipPolicy, default_rule

TRUST = ("etat_civil", "portal", "ecole", "finances")
POLICY = SurvivorshipPolicy(
    {
        attribute: AttributeRule(default_rule(attribute).rule, TRUST)
        for attribute in (
            "birth_name",
            "given_names",
            "birth_date",
            "sex",
            "birth_place",
            "nir",
            "used_name",
            "address",
            "email",
            "phone",
        )
    }
)


@dataclass
class Golden:
    """The store, a matcher and the database, as the hub wires them."""

    db: Database
    store: GoldenStore
    matcher: Matcher

    def resolve(self, record: IdentityRecord, now: datetime | None = None) -> Resolution:
        with self.db.connection() as connection:
            return self.store.resolve(connection, record, self.matcher, now=now or utcnow(), exchange_id=None)


@pytest.fixture
def golden(database_url: str):
    db = Database(database_url)
    yield Golden(db, GoldenStore(POLICY), Matcher(MatchModel.default(), 0.95, 0.5))
    db.dispose()


def person(system: str, local_id: str, **fields) -> IdentityRecord:
    base = {
        "birth_name": "Lefèvre",
        "given_names": ("Élodie", "Marie"),
        "birth_date": "1985-03-14",
        "sex": "F",
        "birth_place": "75056",
    }
    return IdentityRecord(system, local_id, **{**base, **fields})
