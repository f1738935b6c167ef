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
(events 31-34, fusion/commune nouvelle). A deployment adds INSEE's full file
(``v_mvt_commune_<year>.csv``) with ``master_data.commune_movements`` in hub.yaml, read by
:func:`load_cog_movements` when the configuration loads.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

SHIPPED_TABLE = Path(__file__).with_name("data") / "commune_merges.csv"
# COG movement codes meaning "this commune became part of another": fusion simple, création de
# commune nouvelle, fusion-association, transformation de fusion-association en fusion simple.
_MERGE_EVENTS = frozenset({"31", "32", "33", "34"})
# Same place, new code: a change of department (41), a transfer of the chef-lieu (50).
_CODE_CHANGES = _MERGE_EVENTS | {"41", "50"}
_RE_ESTABLISHED = "21"
_COG_COLUMNS = ("MOD", "DATE_EFF", "TYPECOM_AV", "COM_AV", "TYPECOM_AP", "COM_AP")
_COMMUNE_CODE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _arrondissements() -> dict[str, str]:
    table = {f"751{n:02d}": "75056" for n in range(1, 21)}
    table.update({f"6938{n}": "69123" for n in range(1, 10)})
    table.update({f"132{n:02d}": "13055" for n in range(1, 17)})
    return table


def read_table(path: Path) -> dict[str, str]:
    """``old_code,new_code`` rows (header line first) as a mapping."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["old_code"]: row["new_code"] for row in csv.DictReader(handle) if row["old_code"]}


class CommuneFileError(ValueError):
    """A commune movements file that cannot be used: missing, unreadable or not INSEE's format
    (the message names the file and, for a bad row, its line)."""


def load_cog_movements(path: Path) -> dict[str, str]:
    """The code changes of an INSEE COG "mouvements des communes" CSV (``v_mvt_commune_<year>.csv``,
    columns MOD, DATE_EFF, TYPECOM_AV, COM_AV, ..., TYPECOM_AP, COM_AP, ...): every commune
    absorbed by a fusion (MOD 31-34) or whose code changed (MOD 41, a change of department; 50, a
    transfer of chef-lieu) points to the commune it became. Rows are applied in date order, and a
    commune re-established later (MOD 21) is a place of its own again.

    Raises :class:`CommuneFileError` (file, line) for a missing column or a malformed code or date:
    a file that is not INSEE's format must not silently compare nothing."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CommuneFileError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    rows: list[tuple[str, int, dict[str, str]]] = []
    with handle:
        try:
            reader = csv.DictReader(handle)
            missing = [c for c in _COG_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CommuneFileError(
                    f"{path}:1: not an INSEE 'mouvements des communes' file: missing column(s) "
                    f"{', '.join(missing)} (expected {','.join(_COG_COLUMNS)}, ...)"
                )
            for row in reader:
                line = reader.line_num
                for column in ("COM_AV", "COM_AP"):
                    if not _COMMUNE_CODE.match(row.get(column) or ""):
                        raise CommuneFileError(
                            f"{path}:{line}: {column} {row.get(column)!r} is not a commune code "
                            "(5 characters: digits, or 2A/2B and 3 digits)"
                        )
                if not _DATE.match(row.get("DATE_EFF") or ""):
                    raise CommuneFileError(
                        f"{path}:{line}: DATE_EFF {row.get('DATE_EFF')!r} must be yyyy-mm-dd"
                    )
                rows.append((row["DATE_EFF"], line, row))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CommuneFileError(f"{path}: not a UTF-8 CSV file ({exc})") from exc
    if not rows:
        raise CommuneFileError(f"{path}: no movement in the file")
    table: dict[str, str] = {}
    for _date, _line, row in sorted(rows, key=lambda item: (item[0], item[1])):
        before, after = row["COM_AV"], row["COM_AP"]
        if row["MOD"] == _RE_ESTABLISHED and row["TYPECOM_AP"] == "COM":
            table.pop(after, None)
        elif (
            row["MOD"] in _CODE_CHANGES
            and row["TYPECOM_AV"] == "COM"
            and row["TYPECOM_AP"] == "COM"
            and before != after
        ):
            table[before] = after
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
