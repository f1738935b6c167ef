"""Per-field comparison levels of record pairs, computed as arrays over many pairs at once.

Each field has ordered levels, best evidence first and 'else' last; ``MISSING`` (-1) means one side
has no value, which is no evidence either way (weight 0). The same code scores one pair for
``hub citizens explain`` and ten million pairs in a batch, so the two can never disagree.

Every comparison is symmetric: swapping the two records of a pair gives the same levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import JaroWinkler
from rapidfuzz.process import cpdist

from master_data.arrays import unique_inverse
from master_data.features import Features

MISSING = -1


@dataclass(frozen=True)
class FieldSpec:
    """A compared field: its name and its level labels, best first, 'else' last."""

    name: str
    levels: tuple[str, ...]


def _similarity(features: Features, column: str, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Jaro-Winkler similarity of ``column`` for the pairs (i, j), computed once per distinct pair of
    values (most pairs repeat: common names, same street)."""
    codes = features.codes[column]
    a, b = codes[i], codes[j]
    low, high = np.minimum(a, b), np.maximum(a, b)
    if len(low) == 0:
        return np.zeros(0)
    combined = low * (int(high.max()) + 1) + high
    _, first, inverse = unique_inverse(combined)
    strings = features.strings[column]
    left = strings[i[first]].tolist()
    right = strings[j[first]].tolist()
    scores = cpdist(left, right, scorer=JaroWinkler.normalized_similarity, workers=1)
    return np.asarray(scores, dtype=np.float64)[inverse]


def _present(features: Features, column: str, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    codes = features.codes[column]
    return (codes[i] != 0) & (codes[j] != 0)


def _equal(features: Features, column: str, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    codes = features.codes[column]
    return (codes[i] == codes[j]) & (codes[i] != 0)


def _assign(levels: np.ndarray, conditions: list[np.ndarray]) -> np.ndarray:
    """Level k for the first condition k that holds, in order; len(conditions) ('else') otherwise."""
    out = np.full(len(levels), len(conditions), dtype=np.int8)
    undecided = np.ones(len(levels), dtype=bool)
    for k, condition in enumerate(conditions):
        hit = undecided & condition
        out[hit] = k
        undecided &= ~hit
    return out


def _fuzzy(
    features: Features,
    column: str,
    i: np.ndarray,
    j: np.ndarray,
    pending: np.ndarray,
    bands: tuple[float, ...],
) -> list[np.ndarray]:
    """One boolean array per Jaro-Winkler band, computed only where ``pending``."""
    result = [np.zeros(len(i), dtype=bool) for _ in bands]
    index = np.flatnonzero(pending)
    if len(index):
        scores = _similarity(features, column, i[index], j[index])
        for out, band in zip(result, bands, strict=True):
            out[index] = scores >= band
    return result


SWAP_SIMILARITY = 0.9


def _swapped_one_way(features: Features, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(exact, close): record i holds as surname (birth or used) what j holds as first given name,
    and as first given name what j holds as surname; close = both crossings at Jaro-Winkler >= 0.9."""
    c = features.codes
    given_i, given_j = c["given_first"][i], c["given_first"][j]
    exact = np.zeros(len(i), dtype=bool)
    close = np.zeros(len(i), dtype=bool)
    for name_i in ("surname", "used"):
        for name_j in ("surname", "used"):
            a, b = c[name_i][i], c[name_j][j]
            usable = (a != 0) & (b != 0) & (given_i != 0) & (given_j != 0) & (a != b)
            exact |= usable & (a == given_j) & (given_i == b)
            initials = features.initials
            maybe = usable & ~exact
            maybe &= (initials[name_i][i] == initials["given_first"][j]) & (
                initials["given_first"][i] == initials[name_j][j]
            )
            index = np.flatnonzero(maybe)
            if len(index):
                strings = features.strings
                one = cpdist(
                    strings[name_i][i[index]].tolist(),
                    strings["given_first"][j[index]].tolist(),
                    scorer=JaroWinkler.normalized_similarity,
                )
                two = cpdist(
                    strings["given_first"][i[index]].tolist(),
                    strings[name_j][j[index]].tolist(),
                    scorer=JaroWinkler.normalized_similarity,
                )
                close[index] |= (np.asarray(one) >= SWAP_SIMILARITY) & (np.asarray(two) >= SWAP_SIMILARITY)
    return exact, close & ~exact


def swapped_names(features: Features, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where one system holds the surname as the first given name and vice versa, exactly or
    with a typo (either direction, so symmetric). Pairs whose surnames already agree are not swaps."""
    exact_ij, close_ij = _swapped_one_way(features, i, j)
    exact_ji, close_ji = _swapped_one_way(features, j, i)
    agree = _equal(features, "surname", i, j)
    exact = (exact_ij | exact_ji) & ~agree
    return exact, (close_ij | close_ji) & ~exact & ~agree


# --------------------------------------------------------------------------------------- fields

BIRTH_NAME = FieldSpec(
    "birth_name",
    ("exact", "used_name", "jaro_winkler>=0.94", "phonetic", "jaro_winkler>=0.80", "else"),
)


def compare_birth_name(
    f: Features, i: np.ndarray, j: np.ndarray, swapped: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    c = f.codes
    exact = _equal(f, "surname", i, j) | _equal(f, "surname_core", i, j) | swapped[0]
    used = ((c["used"][i] != 0) & ((c["used"][i] == c["surname"][j]) | (c["used"][i] == c["used"][j]))) | (
        (c["used"][j] != 0) & (c["used"][j] == c["surname"][i])
    )
    present = _present(f, "surname", i, j)
    phon = _equal(f, "surname_phon", i, j)
    pending = present & ~exact & ~used
    high, low = _fuzzy(f, "surname", i, j, pending, (0.94, 0.80))
    high |= swapped[1]
    levels = _assign(present, [exact, used, high, phon, low])
    levels[~present & ~used] = MISSING
    return levels


GIVEN_NAMES = FieldSpec(
    "given_names",
    (
        "exact",
        "truncated",
        "first_same_others_differ",
        "other_order",
        "jaro_winkler>=0.92",
        "phonetic",
        "jaro_winkler>=0.80",
        "else",
    ),
)


def compare_given_names(
    f: Features, i: np.ndarray, j: np.ndarray, swapped: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Exact lists; one list the start of the other (a system kept only the first names); same
    first name but later names that differ (namesakes: "Paul Emmanuel" / "Paul Guillaume"); then
    order, spelling and sound of the first name."""
    present = _present(f, "given_first", i, j)
    exact = _equal(f, "given_all", i, j) | swapped[0]
    first = _equal(f, "given_first", i, j) & ~swapped[1]
    count_i, count_j = f.given_count[i], f.given_count[j]
    shortest = np.minimum(count_i, count_j)
    prefix = first & ((shortest == 1) | ((shortest == 2) & _equal(f, "given_two", i, j)))
    truncated = prefix.copy()
    rest = present & ~exact & ~first
    # A compound first name cut short ("JEAN" / "JEANPIERRE"): one list of one name, same initial.
    initials = f.initials["given_first"]
    maybe = np.flatnonzero(rest & (shortest == 1) & (initials[i] == initials[j]))
    if len(maybe):
        strings = f.strings["given_first"]
        a, b = strings[i[maybe]].tolist(), strings[j[maybe]].tolist()
        truncated[maybe] = [x.startswith(y) or y.startswith(x) for x, y in zip(a, b, strict=True)]
    # The same names in another order, or one's first name among the other's later names.
    c = f.codes
    crossed = np.zeros(len(i), dtype=bool)
    for later in ("given_second", "given_third"):
        crossed |= (c["given_first"][i] == c[later][j]) | (c["given_first"][j] == c[later][i])
    other = rest & ~truncated & crossed
    others_differ = first & ~prefix
    phon = _equal(f, "given_phon", i, j)
    pending = present & ~exact & ~first & ~truncated & ~other
    high, low = _fuzzy(f, "given_first", i, j, pending, (0.92, 0.80))
    high |= swapped[1]
    levels = _assign(present, [exact, truncated, others_differ, other, high, phon, low])
    levels[~present] = MISSING
    return levels


BIRTH_DATE = FieldSpec(
    "birth_date",
    ("exact", "day_month_swapped", "placeholder_same_year", "typo", "else"),
)


def _digit_distance_one(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """One digit differs among the eight of yyyymmdd, or two adjacent digits are transposed."""
    digits = f.date_digits
    da, db = digits[i], digits[j]
    differ = da != db
    count = differ.sum(axis=1, dtype=np.int8)
    result = count == 1
    two = np.flatnonzero(count == 2)
    if len(two):
        da, db, differ = da[two], db[two], differ[two]
        transposed = np.zeros(len(two), dtype=bool)
        for k in range(7):
            crossed = (da[:, k] == db[:, k + 1]) & (da[:, k + 1] == db[:, k])
            transposed |= differ[:, k] & differ[:, k + 1] & crossed
        result[two] = transposed
    return result


def _days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil), vectorised."""
    y = year.astype(np.int64) - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    m = month.astype(np.int64)
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def compare_birth_date(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Exact; day and month swapped; a placeholder (01/01, unknown parts) in the same year; a typo
    (one digit wrong, two adjacent digits transposed, or one day off); else."""
    yi, yj, mi, mj, di, dj = f.year[i], f.year[j], f.month[i], f.month[j], f.day[i], f.day[j]
    present = (yi != 0) & (yj != 0)
    exact = (yi == yj) & (mi == mj) & (di == dj)
    swapped = (yi == yj) & (mi == dj) & (di == mj) & (mi != 0) & (di != 0)
    placeholder = (yi == yj) & (f.placeholder[i] | f.placeholder[j])
    full = (mi != 0) & (mj != 0) & (di != 0) & (dj != 0)
    one_day = full & (np.abs(_days(yi, mi, di) - _days(yj, mj, dj)) == 1)
    typo = np.zeros(len(i), dtype=bool)
    pending = np.flatnonzero(present & ~exact & ~swapped & ~placeholder)
    typo[pending] = _digit_distance_one(f, i[pending], j[pending])
    typo |= one_day
    levels = _assign(present, [exact, swapped, placeholder, typo])
    levels[~present] = MISSING
    return levels


SEX = FieldSpec("sex", ("exact", "else"))


def compare_sex(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    present = _present(f, "sex", i, j)
    levels = _assign(present, [_equal(f, "sex", i, j)])
    levels[~present] = MISSING
    return levels


BIRTH_PLACE = FieldSpec("birth_place", ("exact", "same_department", "else"))


def compare_birth_place(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    present = _present(f, "place", i, j)
    levels = _assign(present, [_equal(f, "place", i, j), _equal(f, "department", i, j)])
    levels[~present] = MISSING
    return levels


ADDRESS = FieldSpec("address", ("exact", "same_street", "jaro_winkler>=0.88", "jaro_winkler>=0.70", "else"))


def compare_address(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    present = _present(f, "street", i, j)
    street = _equal(f, "street", i, j)
    house = f.codes["house"]
    same_house = house[i] == house[j]
    exact = street & same_house
    same_street = street & ((house[i] == 0) | (house[j] == 0))
    high, low = _fuzzy(f, "street", i, j, present & ~street, (0.88, 0.70))
    levels = _assign(present, [exact, same_street, high & same_house, low & same_house])
    levels[~present] = MISSING
    return levels


POSTAL_CODE = FieldSpec("postal_code", ("exact", "one_digit", "else"))


def _exact_or_near(column: str, threshold: float) -> Callable[[Features, np.ndarray, np.ndarray], np.ndarray]:
    """Levels exact / Jaro-Winkler >= ``threshold`` / else / missing on one text column."""

    def compare(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        present = _present(f, column, i, j)
        exact = _equal(f, column, i, j)
        near = _fuzzy(f, column, i, j, present & ~exact, (threshold,))[0]
        levels = _assign(present, [exact, near])
        levels[~present] = MISSING
        return levels

    return compare


compare_postal_code = _exact_or_near("postal", 0.80)  # one digit off in a 5-digit code

CITY = FieldSpec("city", ("exact", "jaro_winkler>=0.90", "else"))
compare_city = _exact_or_near("city", 0.90)


EMAIL = FieldSpec("email", ("exact", "else"))
PHONE = FieldSpec("phone", ("exact", "else"))


def _exact_only(column: str) -> Callable[[Features, np.ndarray, np.ndarray], np.ndarray]:
    def compare(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        present = _present(f, column, i, j)
        levels = _assign(present, [_equal(f, column, i, j)])
        levels[~present] = MISSING
        return levels

    return compare


NATIONAL_ID = FieldSpec("nir", ("exact", "one_edit", "else"))


def compare_national_id(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    present = _present(f, "national_id", i, j)
    exact = _equal(f, "national_id", i, j)
    near = _fuzzy(f, "national_id", i, j, present & ~exact, (0.90,))[0]
    levels = _assign(present, [exact, near])
    levels[~present] = MISSING
    return levels


FIELDS: tuple[FieldSpec, ...] = (
    BIRTH_NAME,
    GIVEN_NAMES,
    BIRTH_DATE,
    SEX,
    BIRTH_PLACE,
    ADDRESS,
    POSTAL_CODE,
    CITY,
    EMAIL,
    PHONE,
    NATIONAL_ID,
)


def compare(features: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Levels of every field for the pairs (i[k], j[k]): an int8 array (pairs x fields)."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    swapped = swapped_names(features, i, j)
    columns = [
        compare_birth_name(features, i, j, swapped),
        compare_given_names(features, i, j, swapped),
        compare_birth_date(features, i, j),
        compare_sex(features, i, j),
        compare_birth_place(features, i, j),
        compare_address(features, i, j),
        compare_postal_code(features, i, j),
        compare_city(features, i, j),
        _exact_only("email")(features, i, j),
        _exact_only("phone")(features, i, j),
        compare_national_id(features, i, j),
    ]
    return np.stack(columns, axis=1) if len(i) else np.zeros((0, len(FIELDS)), dtype=np.int8)
