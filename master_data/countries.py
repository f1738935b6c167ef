"""Countries of birth by name: the INSEE code (99xxx) of a country the portal only names.

A person born abroad has, in French identity practice, the INSEE code of their country of birth
(Code officiel géographique, "pays et territoires étrangers": Espagne 99134, Maroc 99350). Portals
and exports often carry the country's name instead ("Espagne", "ESPAGNE", "espagne"), so the hub
resolves it here once, and every comparison then sees the code.

The shipped table (``data/countries.csv``) holds INSEE's names (``LIBCOG``, in capitals without
accents, qualifiers in brackets: ``COREE (REPUBLIQUE DE)``), the historical entries INSEE keeps for
old birth records (``TCHECOSLOVAQUIE``) and a few usual French names (``Corée du Sud``, ``Angleterre``).
A name matches whatever its case, accents, hyphens, apostrophes, bracket order and little words:
"République de Corée", "Corée (République de)" and "COREE (REPUBLIQUE DE)" are one key.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

SHIPPED_TABLE = Path(__file__).with_name("data") / "countries.csv"
FRANCE = "99100"
# Words that do not tell countries apart: "République de Corée" = "Corée (République de)".
_LITTLE_WORDS = frozenset({"DE", "DU", "DES", "LA", "LE", "LES", "L", "D", "ET", "OU", "ILE", "ILES"})
_ALTERNATIVES = re.compile(r",?\s+OU\s+", re.IGNORECASE)


def name_key(name: str) -> tuple[str, ...]:
    """The words of a country's name that identify it, in a fixed order."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().upper()
    words = re.sub(r"[^A-Z0-9]+", " ", plain).split()
    return tuple(sorted(w for w in words if w not in _LITTLE_WORDS))


@lru_cache(maxsize=1)
def _table() -> dict[tuple[str, ...], str]:
    table: dict[tuple[str, ...], str] = {}
    with SHIPPED_TABLE.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            # INSEE writes alternatives in one name: "IRLANDE, ou EIRE", "COCOS ou KEELING (ILES)"
            names = [*_ALTERNATIVES.split(row["name"]), row["name"], *filter(None, row["aliases"].split("|"))]
            for name in names:
                key = name_key(name)
                if key:
                    table.setdefault(key, row["code"])
    return table


def country_code(name: str) -> str | None:
    """The INSEE code of the country ``name``, or ``None`` if the table does not know the name."""
    return _table().get(name_key(name))
