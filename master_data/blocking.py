"""Blocking: which pairs are worth comparing, so cost grows with candidates, not with the population.

Each rule turns a record into at most a few short keys; two records are candidates when they share
a key. Real time uses the keys as strings (:func:`record_keys`: the golden store indexes every
record's keys in the database and looks up the incoming record's); a batch uses the same rules on
integer codes (:func:`key_arrays`), which groups a million records in seconds instead of
formatting twelve million strings. Both come from the one table :data:`RULES`.

The rules are chosen so that each kind of noise leaves at least one key intact:
- names (phonetic, surname/given order-free) + birth year, + decade of birth: typos in the
  date's day, month or last digit of the year, placeholder dates, swapped day/month;
- birth date (day/month order-free) + given name sound: surname changed by marriage or mistyped;
- birth date + surname sound: given names mistyped, truncated or reordered;
- names + birth place, names + postal code: the birth year itself mistyped;
- birth date + postal code, + birth place, + house number: both names mistyped;
- house number + street, both names + house number, one name + house number + postal code, one
  name + street: the birth date missing or wrong;
- the national identifier, the e-mail and the phone (nine digits or more) as they are.
A batch adds the system identifiers (:func:`identifier_keys`): a record's own (system, local id)
and those it states, so that two records naming one person by an identifier are compared even
when they share nothing else (real time reads them from ``md_stated_ids`` instead).
Keys whose blocks grow with the whole population were left out on purpose: birth date + city (one
town: the birth date alone), a name + house number without postal code, names alone. Streets
enter as a CRC-32 of their normalised name, to keep keys short for the database index.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from master_data.arrays import sorted_unique
from master_data.features import Features, Normalised

# The parts a key can be made of. Multi-valued parts expand to one key per value:
# 'surname' = birth and used surname sounds; 'name' = those and the first given name's sound;
# 'names' = each surname sound with the given name sound, as an unordered pair.
PARTS = ("names", "surname", "given", "name", "date", "year", "decade", "place", "postal", "house", "street")


@dataclass(frozen=True)
class Rule:
    tag: str
    parts: tuple[str, ...]


RULES = (
    Rule("m", ("names", "decade")),
    Rule("n", ("names", "year")),
    Rule("p", ("names", "place")),
    Rule("c", ("names", "postal")),
    Rule("s", ("surname", "date")),
    Rule("g", ("given", "date")),
    Rule("d", ("date", "postal")),
    Rule("b", ("date", "place")),
    Rule("x", ("date", "house")),
    Rule("h", ("house", "street")),
    Rule("o", ("names", "house")),
    Rule("q", ("name", "street")),
    Rule("r", ("name", "house", "postal")),
    Rule("i", ("national_id",)),
    Rule("e", ("email",)),
    Rule("t", ("phone",)),
)


# ------------------------------------------------------------------------------ one record (text)


def _text_parts(row: Normalised) -> dict[str, list[str]]:
    surnames = [s for s in dict.fromkeys((row.surname_phon, row.used_phon)) if s]
    given = row.given_phon
    date = ""
    if row.year:
        low, high = sorted((row.month, row.day))
        date = f"{row.year:04d}{low:02d}{high:02d}"

    def one(value: object) -> list[str]:
        return [str(value)] if value else []

    return {
        "names": [":".join(sorted((s, given))) for s in surnames] if given else [],
        "surname": surnames,
        "given": one(given),
        "name": [n for n in dict.fromkeys([*surnames, given]) if n],
        "date": one(date),
        "year": one(row.year),
        "decade": one(row.year // 10 if row.year else 0),
        "place": one(row.place),
        "postal": one(row.postal),
        "house": one(row.house),
        "street": one(f"{zlib.crc32(row.street.encode()):08x}" if row.street else ""),
        "national_id": one(row.national_id),
        "email": one(row.email),
        "phone": one(row.phone if len(row.phone) >= 9 else ""),
    }


def record_keys(row: Normalised) -> list[str]:
    """The blocking keys of one normalised record, as short strings (deduplicated, order stable)."""
    parts = _text_parts(row)
    keys: list[str] = []
    for rule in RULES:
        combos = [[]]
        for part in rule.parts:
            combos = [[*combo, value] for combo in combos for value in parts[part]]
        keys.extend(f"{rule.tag}:{':'.join(combo)}" for combo in combos if combo)
    return list(dict.fromkeys(keys))


# ------------------------------------------------------------------------------ many records (codes)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def _finalise(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: every input bit spreads over the 64 output bits."""
    h = (h ^ (h >> np.uint64(30))) * _C1
    h = (h ^ (h >> np.uint64(27))) * _C2
    return h ^ (h >> np.uint64(31))


def _mix(key: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Hash of the sequence (key, value): both sides scrambled differently before they meet, so
    that no two different sequences cancel out (a plain xor of small integers would, and so would
    the same scrambling on both sides: rule 14 with value 15 against rule 15 with value 14)."""
    return _finalise((key * _C1) ^ _finalise(value.astype(np.uint64) + _GOLDEN))


def _numeric_parts(features: Features) -> dict[str, list[np.ndarray]]:
    """Each part as int64 arrays (one per value of a multi-valued part), 0 where absent."""
    c = features.codes
    surname, used, given = c["surname_phon"], c["used_phon"], c["given_phon"]
    used = np.where(used == surname, 0, used)  # a used name equal to the birth name adds no key
    width = np.int64(max(int(codes.max(initial=0)) for codes in (surname, used, given)) + 1)

    def pair(s: np.ndarray) -> np.ndarray:
        present = (s != 0) & (given != 0)
        return np.where(present, np.minimum(s, given) * width + np.maximum(s, given), 0)

    year = features.year.astype(np.int64)
    low = np.minimum(features.month, features.day).astype(np.int64)
    high = np.maximum(features.month, features.day).astype(np.int64)
    phone_long = np.fromiter((len(p) >= 9 for p in features.strings["phone"].tolist()), bool, features.n)
    # 'name' values must not repeat within a record: a given name sounding like the surname.
    given_as_name = np.where((given == surname) | (given == used), 0, given)
    return {
        "names": [pair(surname), pair(used)],
        "surname": [surname, used],
        "given": [given],
        "name": [surname, used, given_as_name],
        "date": [np.where(year != 0, year * 10000 + low * 100 + high, 0)],
        "year": [year],
        "decade": [np.where(year != 0, year // 10, 0)],
        "place": [c["place"]],
        "postal": [c["postal"]],
        "house": [c["house"]],
        "street": [c["street"]],
        "national_id": [c["national_id"]],
        "email": [c["email"]],
        "phone": [np.where(phone_long, c["phone"], 0)],
    }


def key_arrays(features: Features) -> tuple[np.ndarray, np.ndarray]:
    """(record index, key) pairs of every record's blocking keys, keys as 64-bit hashes of the
    rule and its parts' codes: the same grouping as :func:`record_keys` (a hash collision could
    only add a candidate pair)."""
    parts = _numeric_parts(features)
    index = np.arange(features.n, dtype=np.int64)
    owners: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    with np.errstate(over="ignore"):
        for number, rule in enumerate(RULES, start=1):
            combos: list[tuple[np.ndarray, np.ndarray]] = [
                (
                    _finalise(np.full(features.n, number, dtype=np.uint64) + _GOLDEN),
                    np.ones(features.n, dtype=bool),
                )
            ]
            for part in rule.parts:
                combos = [
                    (_mix(key, value), valid & (value != 0)) for key, valid in combos for value in parts[part]
                ]
            for key, valid in combos:
                owners.append(index[valid])
                groups.append(key[valid].view(np.int64))
    return np.concatenate(owners), np.concatenate(groups)


# The rule number of identifier keys in the hashes (after RULES' own numbers).
_IDENTIFIER_RULE = len(RULES) + 1


def identifier_keys(features: Features) -> tuple[np.ndarray, np.ndarray]:
    """(record index, key) pairs of the system identifiers: each identifier a record states, and
    the record's own (system, local id) when another record states it. Two records share one when
    one states the other's own identifier or both state the same: what the "same system
    identifier" rule links (:meth:`master_data.matcher.Matcher.identified`). Empty when no record
    states any (no cost for files without identifiers)."""
    stated = features.stated
    holders = [k for k, ids in enumerate(stated) if ids]
    if not holders:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    codes: dict[str, int] = {}
    owners: list[int] = []
    values: list[int] = []
    for k in holders:
        for key in stated[k]:
            owners.append(k)
            values.append(codes.setdefault(key, len(codes) + 1))
    for k, own in enumerate(features.strings["source"].tolist()):
        code = codes.get(own)
        if code is not None:
            owners.append(k)
            values.append(code)
    key = np.full(len(values), _IDENTIFIER_RULE, dtype=np.uint64)
    with np.errstate(over="ignore"):
        hashed = _mix(_finalise(key + _GOLDEN), np.array(values, dtype=np.int64)).view(np.int64)
    return np.array(owners, dtype=np.int64), hashed


def namesake_keys(features: Features) -> np.ndarray:
    """Per record, a 64-bit hash of its identity key: birth name, first given name and full birth
    date (0 when a part is missing or the date is a placeholder). Two people share it only as
    namesakes; the matcher weighs it by how often the population does (master_data.matcher)."""
    c = features.codes
    year, month, day = features.year, features.month, features.day
    dated = (year != 0) & (month != 0) & (day != 0) & ~features.placeholder
    date = np.where(dated, year.astype(np.int64) * 10000 + month * 100 + day, 0)
    surname, given = c["surname"], c["given_first"]
    with np.errstate(over="ignore"):
        key = _mix(_mix(_mix(np.ones(features.n, dtype=np.uint64), surname), given), date).view(np.int64)
    return np.where(dated & (surname != 0) & (given != 0), key, 0)


def text_key_arrays(keys: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(record index, key hash) pairs of string keys (:func:`record_keys` of each record)."""
    counts = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    owners = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    groups = np.fromiter(
        (hash(k) for record in keys for k in record), dtype=np.int64, count=int(counts.sum())
    )
    return owners, groups


# ------------------------------------------------------------------------------------- pairs


def candidate_pairs(
    owners: np.ndarray,
    groups: np.ndarray,
    n: int,
    *,
    max_block: int = 500,
    split: int | None = None,
    known: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Distinct pairs (i < j) of the ``n`` records sharing a key (``groups[k]`` is a key of record
    ``owners[k]``).

    With ``split`` (a link between two sides), only pairs with i < split <= j are kept. With
    ``known``, pairs of two of the first ``known`` records are left out (records already stored
    together or apart: a batch against a stored population compares only pairs with a new record).
    Keys shared
    by more than ``max_block`` records (a placeholder e-mail, a shared switchboard number) are
    skipped and counted in the returned statistics, so one bad value cannot make the cost quadratic.
    """
    order = np.argsort(groups, kind="stable")
    owners, groups = owners[order], groups[order]
    if len(groups):
        starts = np.concatenate(([0], np.flatnonzero(np.diff(groups)) + 1))
        sizes = np.diff(np.concatenate((starts, [len(groups)])))
    else:
        starts = sizes = np.zeros(0, dtype=np.int64)
    stats = {"keys": len(sizes), "skipped_blocks": int((sizes > max_block).sum())}
    chunks: list[np.ndarray] = []
    for size in sorted_unique(sizes).tolist():
        if size < 2 or size > max_block:
            continue
        block_starts = starts[sizes == size]
        a, b = np.triu_indices(size, k=1)
        for part in _chunks(block_starts, max(1, 2_000_000 // len(a))):
            left = owners[part[:, None] + a[None, :]].ravel()
            right = owners[part[:, None] + b[None, :]].ravel()
            i, j = np.minimum(left, right), np.maximum(left, right)
            keep = i != j
            if split is not None:
                keep &= (i < split) & (j >= split)
            if known:
                keep &= j >= known
            chunks.append(i[keep] * n + j[keep])
    combined = sorted_unique(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
    stats["pairs"] = len(combined)
    return combined // n, combined % n, stats


def _chunks(values: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
