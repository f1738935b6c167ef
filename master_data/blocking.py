"""Blocking: which pairs are worth comparing, so cost grows with candidates, not with the population.

Each rule turns a record into at most a few short key strings; two records are candidates when
they share a key. The same keys serve the batch (records grouped by key in memory) and real time
(the golden store indexes every record's keys in the database and looks up the incoming record's).

The rules are chosen so that each kind of noise leaves at least one key intact:
- names (phonetic, surname/given order-free) + birth year, + decade of birth: typos in the
  date's day, month or last digit of the year, placeholder dates, swapped day/month;
- birth date (day/month order-free) + given name sound: surname changed by marriage or mistyped;
- birth date + surname sound: given names mistyped, truncated or reordered;
- names + birth place, names + postal code: the birth year itself mistyped;
- birth date + postal code, + house number: both names mistyped;
- house number + street, both names + house number, one name + house number + postal code, one
  name + street: the birth date missing or wrong.
Keys whose blocks grow with the whole population were left out on purpose: birth date + city (one
town: the birth date alone), a name + house number without postal code, names alone. Streets
enter as a CRC-32 of their normalised name, to keep keys short for the database index.
- the national identifier, the e-mail and the phone as they are.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from master_data.arrays import sorted_unique
from master_data.features import Normalised


def record_keys(row: Normalised) -> list[str]:
    """The blocking keys of one normalised record (deduplicated, order stable)."""
    keys: list[str] = []
    surnames = [s for s in dict.fromkeys((row.surname_phon, row.used_phon)) if s]
    given = row.given_phon
    date = ""
    if row.year:
        low, high = sorted((row.month, row.day))
        date = f"{row.year:04d}{low:02d}{high:02d}"
    for surname in surnames or [""]:
        if surname and given:
            a, b = sorted((surname, given))
            if row.year:
                keys.append(f"m:{a}:{b}:{row.year // 10}")
                keys.append(f"n:{a}:{b}:{row.year}")
            if row.place:
                keys.append(f"p:{a}:{b}:{row.place}")
            if row.postal:
                keys.append(f"c:{a}:{b}:{row.postal}")
        if surname and date:
            keys.append(f"s:{surname}:{date}")
    if given and date:
        keys.append(f"g:{given}:{date}")
    if date and row.postal:
        keys.append(f"d:{date}:{row.postal}")
    if date and row.house:
        keys.append(f"x:{date}:{row.house}")
    street = f"{zlib.crc32(row.street.encode()):08x}" if row.street else ""
    if row.house and street:
        keys.append(f"h:{row.house}:{street}")
    for surname in surnames:
        if surname and given and row.house:
            a, b = sorted((surname, given))
            keys.append(f"o:{a}:{b}:{row.house}")
    for name in [*surnames, given]:
        if name and street:
            keys.append(f"q:{name}:{street}")
        if name and row.house and row.postal:
            keys.append(f"r:{name}:{row.house}:{row.postal}")
    if row.national_id:
        keys.append(f"i:{row.national_id}")
    if row.email:
        keys.append(f"e:{row.email}")
    if row.phone and len(row.phone) >= 9:
        keys.append(f"t:{row.phone}")
    return list(dict.fromkeys(keys))


def candidate_pairs(
    keys: Sequence[Sequence[str]],
    *,
    max_block: int = 500,
    split: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Distinct pairs (i < j) of records sharing a key.

    With ``split`` (a link between two sides), only pairs with i < split <= j are kept. Keys shared
    by more than ``max_block`` records (a placeholder e-mail, a shared switchboard number) are
    skipped and counted in the returned statistics, so one bad value cannot make the cost quadratic.
    """
    counts = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    owners = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    # Keys grouped by a 64-bit hash: a collision would only add a candidate pair, never lose one.
    groups = np.fromiter(
        (hash(key) for record in keys for key in record), dtype=np.int64, count=int(counts.sum())
    )
    order = np.argsort(groups, kind="stable")
    owners, groups = owners[order], groups[order]
    boundaries = np.flatnonzero(np.diff(groups)) + 1
    starts = np.concatenate(([0], boundaries)) if len(groups) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.concatenate((starts, [len(groups)]))) if len(groups) else np.zeros(0, dtype=np.int64)
    stats = {"keys": len(sizes), "skipped_blocks": int((sizes > max_block).sum())}
    chunks_i: list[np.ndarray] = []
    chunks_j: list[np.ndarray] = []
    for size in np.unique(sizes):
        if size < 2 or size > max_block:
            continue
        block_starts = starts[sizes == size]
        a, b = np.triu_indices(int(size), k=1)
        for part in _chunks(block_starts, max(1, 2_000_000 // len(a))):
            left = owners[part[:, None] + a[None, :]].ravel()
            right = owners[part[:, None] + b[None, :]].ravel()
            i, j = np.minimum(left, right), np.maximum(left, right)
            keep = i != j
            if split is not None:
                keep &= (i < split) & (j >= split)
            chunks_i.append(i[keep])
            chunks_j.append(j[keep])
    if not chunks_i:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), stats
    i = np.concatenate(chunks_i)
    j = np.concatenate(chunks_j)
    combined = sorted_unique(i * len(keys) + j)
    stats["pairs"] = len(combined)
    return combined // len(keys), combined % len(keys), stats


def _chunks(values: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
