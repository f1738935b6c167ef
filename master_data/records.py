"""The values matching exchanges with the golden store: a source record, an explanation, a decision.

Kept apart from the scoring code so that the golden store, the API and the CLI can import them
without numpy or rapidfuzz loaded; :mod:`master_data.matching` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """One source record as a system knows it; every field but ``system``/``local_id`` is optional.

    Values are the source's own (never normalised here): comparison normalises a copy.
    ``birth_date`` is ISO ``yyyy-mm-dd`` as the source gave it, placeholders such as ``-01-01`` or
    ``-00-00`` included; ``birth_place`` an INSEE commune code or a 99xxx country code.

    ``identifiers`` are other systems' identifiers of the same person that this record states
    ((system, local id) pairs, sorted): the school's family record holding the finance system's
    payer id, a portal request carrying the école family id. They link deterministically
    (:data:`master_data.matcher.IDENTIFIER_RULE`). ``updated_at`` is when the source itself last
    changed the record (ISO 8601, with or without a time and offset), if it says: survivorship's
    ``most_recent`` prefers it to the time the hub received the record.
    """

    system: str
    local_id: str
    birth_name: str | None = None
    used_name: str | None = None
    given_names: tuple[str, ...] = ()
    birth_date: str | None = None
    sex: str | None = None
    birth_place: str | None = None
    address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    email: str | None = None
    phone: str | None = None
    nir: str | None = None
    identifiers: tuple[tuple[str, str], ...] = ()
    updated_at: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(system, local id): the cross-reference of this record."""
        return (self.system, self.local_id)

    def identifies(self, other: IdentityRecord) -> bool:
        """This record and ``other`` name one person by a system identifier: one states the
        other's own (system, local id), or both state the same one."""
        mine, theirs = set(self.identifiers), set(other.identifiers)
        return other.key in mine or self.key in theirs or bool(mine & theirs)


@dataclass(frozen=True)
class FieldComparison:
    """One field of a pair: the comparison level reached and its weight (log2 of m/u)."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True)
class Explanation:
    """Why two records were scored as they were.

    ``rule`` names the deterministic rule that fired ('same_identifier', 'same_system_id',
    'same_nir', 'same_pivot_identity') or a conflict that forbids an automatic link ('conflict:given_names'),
    else ``None``. ``total`` is the sum of the field weights; ``probability`` the posterior match
    probability given the model's prior.
    """

    rule: str | None
    comparisons: tuple[FieldComparison, ...]
    total: float
    probability: float


@dataclass(frozen=True)
class Decision:
    """What to do with an incoming record: link it to ``candidate``, send the pair to review, or
    create a new golden record (``candidate`` then is None)."""

    outcome: Literal["link", "review", "new"]
    candidate: IdentityRecord | None
    explanation: Explanation | None
