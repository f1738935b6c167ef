"""Normalisation for comparison: French spellings of one identity compare equal, idempotently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from master_data.communes import CommuneFileError, CommuneTable, load_cog_movements
from master_data.matching import IdentityRecord, Matcher, MatchModel
from master_data.nir import nir_agrees, trusted_nir, valid_nir
from master_data.normalise import (
    address_parts,
    fold,
    given_name_list,
    normalise_birth_date,
    normalise_email,
    normalise_phone,
    parse_birth_date,
    surname_core,
    surname_key,
)
from master_data.phonetics import phonetic

names = st.text(alphabet=st.sampled_from("abcdeéèêëàâçîïôöûüÿœæABCDEÉÈ -'’ßdDlL"), max_size=30)


def test_fold_strips_case_accents_and_separators() -> None:
    assert fold("  Hélène-Françoise  d’Aubigné ") == "HELENE FRANCOISE D AUBIGNE"
    assert fold("Œuvray") == "OEUVRAY"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("de La Fontaine", "LAFONTAINE"),
        ("de La Fontaine", "Delafontaine"),
        ("Le Gall", "LEGALL"),
        ("d'Artagnan", "DARTAGNAN"),
        ("Lefèvre", "LEFEVRE"),
    ],
)
def test_surnames_written_with_or_without_particles_compare_equal(a: str, b: str) -> None:
    assert surname_key(a) == surname_key(b) or surname_core(a) == surname_core(b)


def test_short_names_are_not_stripped_into_other_names() -> None:
    # "Leroy" is not "Roy" and "Dupont" is not "Pont": glued particles go only before 5+ letters.
    assert surname_core("Leroy") == "LEROY"
    assert surname_core("Dupont") == "DUPONT"
    assert surname_core("Le") == "LE"


def test_compound_given_names_are_one_name() -> None:
    assert given_name_list(("Jean-Pierre", "Marie")) == ("JEANPIERRE", "MARIE")
    assert given_name_list("Jean Pierre, Marie") == ("JEANPIERRE", "MARIE")
    assert given_name_list(("", " ")) == ()


@pytest.mark.parametrize(
    ("text", "iso", "placeholder"),
    [
        ("1980-03-12", "1980-03-12", False),
        ("19800312", "1980-03-12", False),
        ("12/03/1980", "1980-03-12", False),
        ("1980-01-01", "1980-01-01", True),
        ("1980-00-00", "1980-00-00", True),
        ("1980", "1980-00-00", True),
    ],
)
def test_birth_dates_and_placeholders(text: str, iso: str, placeholder: bool) -> None:
    parsed = parse_birth_date(text)
    assert parsed is not None and parsed.iso() == iso
    assert parsed.placeholder is placeholder


@pytest.mark.parametrize("text", ["", "hier", "1980-13-01", "1980-02-40", "0012-01-01"])
def test_unreadable_birth_dates_are_missing_not_errors(text: str) -> None:
    assert parse_birth_date(text) is None


def test_contacts() -> None:
    assert normalise_phone("06 12 34 56 78") == normalise_phone("+33 6 12 34 56 78") == "612345678"
    assert normalise_phone("0033612345678") == "612345678"
    assert normalise_email(" Jean.Dupont@Mairie.FR ") == "jean.dupont@mairie.fr"
    assert normalise_email("pas une adresse") == ""


def test_address_parts_unify_abbreviations() -> None:
    assert address_parts("12 bis, Av. de la Gare") == ("12BIS", "AVENUE DE LA GARE")
    assert address_parts("12bis avenue de la gare") == ("12BIS", "AVENUE DE LA GARE")
    assert address_parts("Lieu-dit Les Granges") == ("", "LIEU DIT LES GRANGES")


def test_french_phonetic_key() -> None:
    assert phonetic("Thibault") == phonetic("Tibo")
    assert phonetic("Philippe") == phonetic("Filip")
    assert phonetic("Lefebvre") == phonetic("Lefèvre") == phonetic("Lefeuvre")
    assert phonetic("Christophe") == phonetic("Kristof")
    assert phonetic("Martin") != phonetic("Bernard")


def test_communes_arrondissements_mergers_and_corsica() -> None:
    table = CommuneTable()
    assert table.current("75112") == table.current("75056") == "75056"
    assert table.current("69383") == "69123"
    assert table.current("13208") == "13055"
    assert table.current("74011") == table.current("74010")  # Annecy-le-Vieux joined Annecy in 2017
    assert table.current("2A004") == table.current("20004")  # Ajaccio before 1976
    assert table.current("2a004") == table.current("2A004")
    assert table.current("99134") == "99134"  # born abroad (Spain)
    assert table.current(None) == ""


def test_communes_from_an_insee_cog_movements_file(tmp_path) -> None:
    cog = tmp_path / "v_mvt_commune_2024.csv"
    cog.write_text(
        "MOD,DATE_EFF,TYPECOM_AV,COM_AV,TNCC_AV,NCC_AV,NCCENR_AV,LIBELLE_AV,TYPECOM_AP,COM_AP\n"
        "32,2024-01-01,COM,01001,0,A,A,A,COM,01002\n"
        "32,2024-01-01,COMD,01003,0,B,B,B,COM,01002\n"
        "10,2024-01-01,COM,01004,0,C,C,C,COM,01005\n",
        encoding="utf-8",
    )
    merges = load_cog_movements(cog)
    assert merges == {"01001": "01002"}
    assert CommuneTable(merges).current("01001") == "01002"


def test_nir_validation_with_key_and_corsica() -> None:
    assert valid_nir("2 95 10 99 126 111 93") == "295109912611193"
    assert valid_nir("2 95 10 99 126 111 94") is None  # wrong key
    corsican = _with_key("18001" + "2A" + "004" + "123")
    assert valid_nir(corsican) == corsican


def test_nir_must_agree_with_the_record() -> None:
    nir = "295109912611193"  # woman, born October 1995
    assert nir_agrees(nir, "F", "1995-10-04")
    assert not nir_agrees(nir, "M", "1995-10-04")
    assert not nir_agrees(nir, "F", "1965-10-04")
    assert nir_agrees(nir, "F", "1995-01-01")  # placeholder month agrees with anything
    assert trusted_nir(nir, "M", None) is None


def _with_key(body: str) -> str:
    number = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{body}{97 - number % 97:02d}"


@given(names)
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(names)
def test_surname_forms_are_idempotent(text: str) -> None:
    assert surname_key(surname_key(text)) == surname_key(text)
    assert surname_core(surname_core(text)) == surname_core(text)


@given(st.lists(names, max_size=4))
def test_given_names_are_idempotent(values: list[str]) -> None:
    once = given_name_list(values)
    assert given_name_list(once) == once


@given(st.dates(), st.sampled_from(["{:%Y-%m-%d}", "{:%Y%m%d}", "{:%d/%m/%Y}"]))
def test_birth_date_normalisation_is_idempotent(day, pattern: str) -> None:
    once = normalise_birth_date(pattern.format(day))
    assert once == normalise_birth_date(once)
    if 1800 <= day.year <= 2200:
        assert once == day.isoformat()


@given(st.text(alphabet="0123456789 +.()-", max_size=20))
def test_phone_normalisation_is_idempotent(text: str) -> None:
    assert normalise_phone(normalise_phone(text)) == normalise_phone(text)


@given(st.from_regex(r"\d{0,3} ?(bis|ter)? ?(av|bd|rue|chemin|pl)\.? [a-zé' -]{0,20}", fullmatch=True))
def test_address_normalisation_is_idempotent(text: str) -> None:
    number, street = address_parts(text)
    assert address_parts(f"{number} {street}") == (number, street)


COG_FILE = Path(__file__).with_name("data") / "v_mvt_commune_2024.csv"


def test_an_insee_movements_file_makes_an_old_and_a_new_code_the_same_birth_place() -> None:
    """Born in Châtillon-en-Michaille (01091) before it joined Valserhône (01033): one place with
    INSEE's file, two without it (the shipped table does not hold this merger)."""
    born_then = IdentityRecord("etat_civil", "N-1", "Girod", None, ("Louise",), "1950-06-02", "F", "01091")
    born_now = IdentityRecord("ecole", "F-1", "Girod", None, ("Louise",), "1950-06-02", "F", "01033")
    model = MatchModel.default()

    def birth_place(matcher: Matcher) -> str:
        return next(
            c.level for c in matcher.explain(born_then, born_now).comparisons if c.field == "birth_place"
        )

    assert birth_place(Matcher(model)) == "same_department"
    configured = Matcher(model, communes=CommuneTable(load_cog_movements(COG_FILE)))
    assert birth_place(configured) == "exact"
    # The same full pivot identity then links by rule, not only by score.
    assert configured.explain(born_then, born_now).rule == "same_pivot_identity"
    assert Matcher(model).explain(born_then, born_now).rule is None


def test_a_re_established_commune_is_a_place_of_its_own_again(tmp_path) -> None:
    cog = tmp_path / "v_mvt_commune_2025.csv"
    header = COG_FILE.read_text(encoding="utf-8").splitlines()[0]
    cog.write_text(
        f"{header}\n"
        "21,2022-01-01,COM,01002,0,B,B,B,COM,01003,0,C,C,C\n"  # applied in date order: after the merge
        "31,2016-01-01,COM,01003,0,C,C,C,COM,01002,0,B,B,B\n"
        "31,2016-01-01,COM,01007,0,D,D,D,COM,01002,0,B,B,B\n",
        encoding="utf-8",
    )
    assert load_cog_movements(cog) == {"01007": "01002"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "MOD,DATE_EFF,COM_AV,COM_AP\n32,2019-01-01,01091,01033\n",
            ":1: not an INSEE 'mouvements des communes' file",
        ),
        (
            "MOD,DATE_EFF,TYPECOM_AV,COM_AV,TYPECOM_AP,COM_AP\n32,2019-01-01,COM,01091,COM,01033\n"
            "32,2019-01-01,COM,1205,COM,01033\n",
            ":3: COM_AV '1205' is not a commune code",
        ),
        (
            "MOD,DATE_EFF,TYPECOM_AV,COM_AV,TYPECOM_AP,COM_AP\n32,01/01/2019,COM,01091,COM,01033\n",
            ":2: DATE_EFF",
        ),
    ],
)
def test_a_malformed_movements_file_is_refused_with_its_line(tmp_path, content: str, message: str) -> None:
    cog = tmp_path / "v_mvt_commune.csv"
    cog.write_text(content, encoding="utf-8")
    with pytest.raises(CommuneFileError, match=re.escape(f"{cog}{message}")):
        load_cog_movements(cog)
