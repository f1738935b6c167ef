"""Birth-place codes that name the same place: arrondissements, merged communes, old Corsican codes.

A birth place is an INSEE (COG) commune code, but the same birth is coded differently across
systems and years:
- Paris, Lyon and Marseille births are often coded by arrondissement (75101-75120, 69381-69389,
  13201-13216) and elsewhere by the commune (75056, 69123, 13055);
- communes merge into "communes nouvelles" (Annecy 2017, Cherbourg-en-Cotentin 2016,
  Évry-Courcouronnes 2019...) and a system updated after the merger holds the new code;
- Corsica was department 20 until 1976: 20004 then 2A004 (Ajaccio). The commune numbers were kept
  and are unique across 2A and 2B, so all three compare through the ``20xxx`` form.

The shipped table (``data/commune_merges.csv``) holds the arrondissements and a few well-known
mergers, transcribed from INSEE's Code officiel géographique (COG), "mouvements des communes"
(events 31-34, fusion/commune nouvelle). A deployment loads the full COG file with
:func:`load_cog_movements` (INSEE publishes it as ``v_mvt_commune_<year>.csv``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

SHIPPED_TABLE = Path(__file__).with_name("data") / "commune_merges.csv"
# COG movement codes meaning "this commune became part of another": fusion simple, création de
# commune nouvelle, fusion-association, transformation de fusion-association en fusion simple.
_MERGE_EVENTS = frozenset({"31", "32", "33", "34"})


def _arrondissements() -> dict[str, str]:
    table = {f"751{n:02d}": "75056" for n in range(1, 21)}
    table.update({f"6938{n}": "69123" for n in range(1, 10)})
    table.update({f"132{n:02d}": "13055" for n in range(1, 17)})
    return table


def read_table(path: Path) -> dict[str, str]:
    """``old_code,new_code`` rows (header line first) as a mapping."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["old_code"]: row["new_code"] for row in csv.DictReader(handle) if row["old_code"]}


def load_cog_movements(path: Path) -> dict[str, str]:
    """The merges of an INSEE COG ``v_mvt_commune`` CSV (columns MOD, TYPECOM_AV, COM_AV, TYPECOM_AP,
    COM_AP): every commune absorbed by a fusion points to the commune it joined."""
    table: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if (
                row.get("MOD") in _MERGE_EVENTS
                and row.get("TYPECOM_AV") == "COM"
                and row.get("TYPECOM_AP") == "COM"
                and row.get("COM_AV") != row.get("COM_AP")
            ):
                table[row["COM_AV"]] = row["COM_AP"]
    return table


class CommuneTable:
    """Maps a birth-place code to the code of the place it belongs to today (transitively)."""

    def __init__(self, merges: Mapping[str, str] | None = None) -> None:
        table = _arrondissements()
        table.update(read_table(SHIPPED_TABLE))
        if merges:
            table.update(merges)
        self._table = table

    def current(self, code: str | None) -> str:
        """The comparison form of a code: upper-case, merges followed, Corsica as ``20xxx``; '' if absent."""
        if not code:
            return ""
        code = code.strip().upper()
        seen: set[str] = set()
        while code in self._table and code not in seen:
            seen.add(code)
            code = self._table[code]
        if code[:2] in ("2A", "2B"):
            code = "20" + code[2:]
        return code

    def extend(self, merges: Iterable[tuple[str, str]]) -> None:
        self._table.update(merges)


@lru_cache(maxsize=1)
def default_table() -> CommuneTable:
    return CommuneTable()


def department(code: str) -> str:
    """The department part of a comparison-form code ('' for a foreign country code 99xxx)."""
    if not code or code.startswith("99"):
        return ""
    return code[:3] if code.startswith("97") else code[:2]
