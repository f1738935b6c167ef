"""Records normalised once into columns, so that a million pairs compare as arrays, not as objects.

Each column holds the comparison form of one trait for every record (strings in numpy object
arrays, integer codes for exact comparisons, birth dates as integer arrays). Strings of one kind
share one vocabulary, so equal values get equal codes across the left and right sides of a link.

Normalisation runs column by column over the *distinct* values of each source field: a million
records hold a few thousand surnames, so each is folded, stripped and keyed once. The one-record
view (:func:`normalise_record`, for real time and the blocking keys of one record) is the same
code on a column of one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from operator import itemgetter
from typing import NamedTuple, TypeVar

import numpy as np

from master_data.communes import CommuneTable, default_table, department
from master_data.nir import trusted_nir
from master_data.normalise import (
    address_parts,
    given_name_list,
    normalise_city,
    normalise_email,
    normalise_phone,
    normalise_postal_code,
    parse_birth_date,
    surname_core,
    surname_key,
)
from master_data.phonetics import phonetic
from master_data.records import IdentityRecord


class Normalised(NamedTuple):
    """The comparison form of one record."""

    surname: str
    surname_core: str
    used: str
    surname_phon: str
    used_phon: str
    given: tuple[str, ...]
    given_first: str
    given_second: str
    given_third: str
    given_two: str
    given_all: str
    given_phon: str
    year: int
    month: int
    day: int
    placeholder: bool
    sex: str
    place: str
    department: str
    house: str
    street: str
    postal: str
    city: str
    email: str
    phone: str
    national_id: str
    trusted_nir: str
    source: str


def _surname_forms(text: str | None) -> tuple[str, str, str]:
    return surname_key(text), surname_core(text), phonetic(text or "")


def _given_forms(names: tuple[str, ...]) -> tuple[tuple[str, ...], str, str, str, str, str, str]:
    given = given_name_list(names)
    return (
        given,
        given[0] if given else "",
        given[1] if len(given) > 1 else "",
        given[2] if len(given) > 2 else "",
        " ".join(given[:2]),
        " ".join(given),
        phonetic(given[0]) if given else "",
    )


def _date_parts(text: str | None) -> tuple[int, int, int, bool]:
    date = parse_birth_date(text)
    return (date.year, date.month, date.day, date.placeholder) if date else (0, 0, 0, False)


def _sex(text: str | None) -> str:
    sex = (text or "").strip().upper()[:1]
    return sex if sex in ("M", "F") else ""


def _national_id(text: str | None) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum()) if text else ""


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _mapped(values: list[K], function: Callable[[K], V]) -> list[V]:
    """``function`` applied once per distinct value, then looked up for every record."""
    results = {value: function(value) for value in set(values)}
    return [results[value] for value in values]


def normalise_columns(
    records: Sequence[IdentityRecord], communes: CommuneTable | None = None
) -> dict[str, list]:
    """Every trait of every record in its comparison form ('' / 0 when absent), by column; the
    keys are the fields of :class:`Normalised`."""
    communes = communes or default_table()
    columns: dict[str, list] = {}
    surnames = _mapped([r.birth_name for r in records], _surname_forms)
    columns["surname"], columns["surname_core"], columns["surname_phon"] = _transpose(surnames, 3)
    used = _mapped([r.used_name for r in records], _surname_forms)
    columns["used"], _, columns["used_phon"] = _transpose(used, 3)
    given = _mapped([tuple(r.given_names) for r in records], _given_forms)
    (
        columns["given"],
        columns["given_first"],
        columns["given_second"],
        columns["given_third"],
        columns["given_two"],
        columns["given_all"],
        columns["given_phon"],
    ) = _transpose(given, 7)
    dates = _mapped([r.birth_date for r in records], _date_parts)
    columns["year"], columns["month"], columns["day"], columns["placeholder"] = _transpose(dates, 4)
    sexes = [r.sex for r in records]
    columns["sex"] = _mapped(sexes, _sex)
    columns["place"] = _mapped([r.birth_place for r in records], communes.current)
    columns["department"] = _mapped(columns["place"], department)
    columns["house"], columns["street"] = _transpose(_mapped([r.address for r in records], address_parts), 2)
    columns["postal"] = _mapped([r.postal_code for r in records], normalise_postal_code)
    columns["city"] = _mapped([r.city for r in records], normalise_city)
    columns["email"] = _mapped([r.email for r in records], normalise_email)
    columns["phone"] = _mapped([r.phone for r in records], normalise_phone)
    nirs = [r.nir for r in records]
    columns["national_id"] = _mapped(nirs, _national_id)
    columns["trusted_nir"] = [
        (trusted_nir(r.nir, r.sex, r.birth_date) or "") if r.nir else "" for r in records
    ]
    columns["source"] = [source_key(r.system, r.local_id) for r in records]
    columns["system"] = [r.system for r in records]
    # Other systems' identifiers each record states, in the form of ``source`` (the "same system
    # identifier" rule compares one record's statements with the other's own key).
    columns["stated"] = [tuple(source_key(*key) for key in r.identifiers) for r in records]
    return columns


def source_key(system: str, local_id: str) -> str:
    """A (system, local id) as one string: a record's own key, or one it states."""
    return f"{system}\x1f{local_id}"


def _transpose(rows: list[tuple], width: int) -> tuple[list, ...]:
    return tuple(list(map(itemgetter(k), rows)) for k in range(width))


def normalise_record(record: IdentityRecord, communes: CommuneTable | None = None) -> Normalised:
    """Every trait of one record in its comparison form (the column code on a column of one)."""
    columns = normalise_columns([record], communes)
    return Normalised(*(columns[name][0] for name in Normalised._fields))


class Vocabulary:
    """String -> integer code, shared by all columns of one kind; code 0 is the empty string."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {"": 0}

    def encode(self, values: Sequence[str]) -> np.ndarray:
        codes = self.codes
        for value in dict.fromkeys(values):  # first-appearance order: codes are reproducible
            codes.setdefault(value, len(codes))
        return np.fromiter(map(codes.__getitem__, values), dtype=np.int64, count=len(values))


_STRING_COLUMNS = (
    "surname",
    "surname_core",
    "used",
    "surname_phon",
    "used_phon",
    "given_first",
    "given_second",
    "given_third",
    "given_two",
    "given_all",
    "given_phon",
    "sex",
    "place",
    "department",
    "house",
    "street",
    "postal",
    "city",
    "email",
    "phone",
    "national_id",
    "trusted_nir",
    "source",
    "system",
)
# Columns compared with each other share a vocabulary (a surname against a given name when the
# two were swapped, a birth name against a used name after marriage; phonetic keys of both for
# blocking keys that do not care which is which).
_VOCABULARY_OF = {
    "surname": "name",
    "surname_core": "name",
    "used": "name",
    "given_first": "name",
    "given_second": "name",
    "given_third": "name",
    "surname_phon": "phon",
    "used_phon": "phon",
    "given_phon": "phon",
}


class Features:
    """Column view of normalised records: ``strings[col]`` (object array) and ``codes[col]`` (int64)."""

    def __init__(self, columns: dict[str, list]) -> None:
        self.n = len(columns["source"])
        vocabularies: dict[str, Vocabulary] = {}
        self.strings: dict[str, np.ndarray] = {}
        self.codes: dict[str, np.ndarray] = {}
        for column in _STRING_COLUMNS:
            values = columns[column]
            vocabulary = vocabularies.setdefault(_VOCABULARY_OF.get(column, column), Vocabulary())
            self.strings[column] = np.array(values, dtype=object)
            self.codes[column] = vocabulary.encode(values)
        self.given = columns["given"]
        self.stated: list[tuple[str, ...]] = columns["stated"]
        # First letters (as code points, 0 when absent) of the names a swap may cross.
        self.initials = {
            column: np.fromiter((ord(v[0]) if v else 0 for v in columns[column]), np.int32, self.n)
            for column in ("surname", "used", "given_first", "given_second", "given_third")
        }
        self.given_count = np.fromiter(map(len, self.given), dtype=np.int8, count=self.n)
        self.year = np.array(columns["year"], dtype=np.int32)
        self.month = np.array(columns["month"], dtype=np.int32)
        self.day = np.array(columns["day"], dtype=np.int32)
        self.placeholder = np.array(columns["placeholder"], dtype=bool)
        # The eight digits of yyyymmdd per record, for the one-digit typo level.
        value = self.year.astype(np.int64) * 10000 + self.month * 100 + self.day
        self.date_digits = ((value[:, None] // 10 ** np.arange(7, -1, -1)) % 10).astype(np.int8)

    @classmethod
    def of(cls, records: Sequence[IdentityRecord], communes: CommuneTable | None = None) -> Features:
        return cls(normalise_columns(records, communes))
