"""Records normalised once into columns, so that a million pairs compare as arrays, not as objects.

Each column holds the comparison form of one trait for every record (strings in numpy object
arrays, integer codes for exact comparisons, birth dates as three integer arrays). Strings of one
kind share one vocabulary, so equal values get equal codes across the left and right sides of a
link.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

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
    """The comparison form of one record (a tuple, so a million of them transpose into columns at C
    speed)."""

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


# Names, dates and streets repeat across a population (a few thousand surnames for a million
# people): each distinct value is normalised once.
_CACHE = 1 << 20


@lru_cache(maxsize=_CACHE)
def _surname_forms(text: str | None) -> tuple[str, str, str]:
    return surname_key(text), surname_core(text), phonetic(text or "")


@lru_cache(maxsize=_CACHE)
def _given_forms(names: tuple[str, ...]) -> tuple[str, ...]:
    return given_name_list(names)


@lru_cache(maxsize=_CACHE)
def _date_parts(text: str | None) -> tuple[int, int, int, bool]:
    date = parse_birth_date(text)
    return (date.year, date.month, date.day, date.placeholder) if date else (0, 0, 0, False)


_address_parts = lru_cache(maxsize=_CACHE)(address_parts)
_city = lru_cache(maxsize=_CACHE)(normalise_city)
_postal = lru_cache(maxsize=_CACHE)(normalise_postal_code)


def normalise_record(record: IdentityRecord, communes: CommuneTable | None = None) -> Normalised:
    """Every trait of ``record`` in its comparison form ('' / 0 when absent)."""
    communes = communes or default_table()
    given = _given_forms(tuple(record.given_names))
    year, month, day, placeholder = _date_parts(record.birth_date)
    place = communes.current(record.birth_place)
    house, street = _address_parts(record.address)
    surname, core, surname_phon = _surname_forms(record.birth_name)
    used, _, used_phon = _surname_forms(record.used_name)
    nir_raw = "".join(ch for ch in record.nir.upper() if ch.isalnum()) if record.nir else ""
    sex = (record.sex or "").strip().upper()[:1]
    return Normalised(
        surname=surname,
        surname_core=core,
        used=used,
        surname_phon=surname_phon,
        used_phon=used_phon,
        given=given,
        given_first=given[0] if given else "",
        given_second=given[1] if len(given) > 1 else "",
        given_third=given[2] if len(given) > 2 else "",
        given_two=" ".join(given[:2]),
        given_all=" ".join(given),
        given_phon=phonetic(given[0]) if given else "",
        year=year,
        month=month,
        day=day,
        placeholder=placeholder,
        sex=sex if sex in ("M", "F") else "",
        place=place,
        department=department(place),
        house=house,
        street=street,
        postal=_postal(record.postal_code),
        city=_city(record.city),
        email=normalise_email(record.email),
        phone=normalise_phone(record.phone),
        national_id=nir_raw,
        trusted_nir=(trusted_nir(record.nir, record.sex, record.birth_date) or "") if record.nir else "",
        source=f"{record.system}\x1f{record.local_id}",
    )


class Vocabulary:
    """String -> integer code, shared by all columns of one kind; code 0 is the empty string."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {"": 0}

    def encode(self, values: Sequence[str]) -> np.ndarray:
        codes = self.codes
        return np.fromiter(
            (codes.setdefault(v, len(codes)) for v in values), dtype=np.int64, count=len(values)
        )


_STRING_COLUMNS = (
    "surname",
    "surname_core",
    "used",
    "surname_phon",
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
)
# Columns compared with each other share a vocabulary (a surname against a given name when the
# two were swapped, a birth name against a used name after marriage).
_VOCABULARY_OF = {
    "surname": "name",
    "surname_core": "name",
    "used": "name",
    "given_first": "name",
    "given_second": "name",
    "given_third": "name",
}


class Features:
    """Column view of normalised records: ``strings[col]`` (object array) and ``codes[col]`` (int64)."""

    def __init__(self, rows: Sequence[Normalised]) -> None:
        self.n = len(rows)
        self.rows = rows
        vocabularies: dict[str, Vocabulary] = {}
        self.strings: dict[str, np.ndarray] = {}
        self.codes: dict[str, np.ndarray] = {}
        columns = dict(zip(Normalised._fields, zip(*rows, strict=True), strict=True)) if rows else {}
        for column in _STRING_COLUMNS:
            values = list(columns.get(column, ()))
            vocabulary = vocabularies.setdefault(_VOCABULARY_OF.get(column, column), Vocabulary())
            self.strings[column] = np.array(values, dtype=object)
            self.codes[column] = vocabulary.encode(values)
        self.given = list(columns.get("given", ()))
        # First letters (as code points, 0 when absent) of the names a swap may cross.
        self.initials = {
            column: np.fromiter(
                (ord(v[0]) if v else 0 for v in self.strings[column].tolist()), np.int32, self.n
            )
            for column in ("surname", "used", "given_first")
        }
        self.given_count = np.fromiter(map(len, self.given), dtype=np.int8, count=self.n)
        self.year = np.array(columns.get("year", ()), dtype=np.int32)
        self.month = np.array(columns.get("month", ()), dtype=np.int32)
        self.day = np.array(columns.get("day", ()), dtype=np.int32)
        self.placeholder = np.array(columns.get("placeholder", ()), dtype=bool)

    @classmethod
    def of(cls, records: Sequence[IdentityRecord], communes: CommuneTable | None = None) -> Features:
        return cls([normalise_record(record, communes) for record in records])
