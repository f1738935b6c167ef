"""A birth abroad given by the country's name gets the country's INSEE code, however it is written."""

from __future__ import annotations

import csv

import pytest
from pydantic import ValidationError

from master_data.countries import SHIPPED_TABLE, country_code, name_key
from master_data.identity import BirthPlace
from master_data.sources import read_records


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Espagne", "99134"),
        ("ESPAGNE", "99134"),
        ("  espagne ", "99134"),
        ("Maroc", "99350"),
        ("Algérie", "99352"),
        ("Côte d'Ivoire", "99326"),
        ("COTE D IVOIRE", "99326"),
        ("Cap-Vert", "99396"),
        ("République de Corée", "99239"),
        ("Corée (République de)", "99239"),
        ("Corée du Nord", "99238"),
        ("Congo", "99324"),
        ("République démocratique du Congo", "99312"),
        ("Irlande", "99136"),
        ("Eire", "99136"),
        ("Royaume-Uni", "99132"),
        ("Angleterre", "99132"),
        ("Tchécoslovaquie", "99115"),  # historical entries stay: old birth records name them
        ("Soudan du Sud", "99349"),
        ("Soudan", "99343"),
    ],
)
def test_a_country_is_found_however_it_is_written(name: str, code: str) -> None:
    assert country_code(name) == code


def test_unknown_names_are_not_guessed() -> None:
    assert country_code("Atlantide") is None
    assert country_code("") is None
    assert country_code("Corée du Centre") is None


def test_the_table_never_gives_one_name_two_codes() -> None:
    with SHIPPED_TABLE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    assert len(rows) > 250 and all(len(r["code"]) == 5 and r["code"].startswith("99") for r in rows)
    seen: dict[tuple[str, ...], str] = {}
    for row in rows:
        for name in [row["name"], *filter(None, row["aliases"].split("|"))]:
            key = name_key(name)
            assert seen.setdefault(key, row["code"]) == row["code"], (name, seen[key], row["code"])


def test_a_birth_place_given_by_country_alone_gets_its_code() -> None:
    place = BirthPlace(country="Espagne", city="Madrid")
    assert (place.insee_code, place.country, place.abroad) == ("99134", "Espagne", True)
    # a French commune with "France" (or an unknown country text) as country is fine
    assert BirthPlace(insee_code="75056", country="France").insee_code == "75056"
    assert BirthPlace(insee_code="75056", country="FR, métropole").insee_code == "75056"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"country": "Atlantide"}, "unknown country 'Atlantide'"),
        ({"country": "France"}, "born in France: give the INSEE code of the birth commune"),
        ({"city": "Madrid"}, "give insee_code"),
        ({"insee_code": "99131", "country": "Espagne"}, "country 'Espagne' is INSEE code 99134, not 99131"),
        ({"insee_code": "75056", "country": "Espagne"}, "99134, but 75056 is a French commune"),
        ({"insee_code": "99100"}, "99100 is France: give the INSEE code of the birth commune"),
    ],
)
def test_a_birth_place_that_cannot_be_placed_is_refused_saying_why(given: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BirthPlace(**given)


def test_a_country_named_in_an_export_is_imported_as_its_code(tmp_path) -> None:
    export = tmp_path / "ecole.csv"
    export.write_text(
        "local_id,birth_name,given_names,birth_date,sex,birth_place\n"
        "F-1,Benali,Yasmine,2012-04-02,F,Maroc\nF-2,Durand,Léa,2013-05-06,F,33063\n",
        encoding="utf-8",
    )
    first, second = read_records(export, "ecole")
    assert (first.birth_place, second.birth_place) == ("99350", "33063")
