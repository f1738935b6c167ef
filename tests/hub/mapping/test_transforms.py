"""Each transform on the values French municipal data really holds, and properties that must hold."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.mapping import transforms as tx
from hub.mapping.transforms import WITH_ARGS

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


def build(name, args):
    kind = WITH_ARGS[name]
    return kind.build(kind.args.model_validate(args))


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("trim", "  Anne  ", "Anne"),
        ("upper", "élodie", "ÉLODIE"),
        ("lower", "ÉLODIE", "élodie"),
        ("title", "jean-pierre DE LA fontaine", "Jean-Pierre De La Fontaine"),
        ("collapse_spaces", " 12  rue\tdes  Lilas ", "12 rue des Lilas"),
        ("strip_accents", "ŒUVRE cœur Éloïse Nguyễn Façade", "OEUVRE coeur Eloise Nguyen Facade"),
        ("french_surname", "de la  Fontaine", "DE LA FONTAINE"),
        ("french_surname", "d’ Alembert", "D'ALEMBERT"),
        ("french_surname", "Martin - Dupont", "MARTIN-DUPONT"),
        ("french_surname", "Martin -- Dupont", "MARTIN--DUPONT"),
        ("digits", "+33 (0)6 12-34", "330612" + "34"),
        ("string", 42, "42"),
        ("integer", "042", 42),
        ("integer", 7.0, 7),
        ("decimal", "12,50", 12.5),
        ("decimal", "1 234", 1234),
        ("first", ["a", "b"], "a"),
        ("last", ["a", "b"], "b"),
    ],
)
def test_simple_transforms(name, value, expected):
    assert tx.SIMPLE[name][0](value) == expected


@pytest.mark.parametrize(
    ("name", "args", "value", "expected"),
    [
        ("pad", {"width": 5, "fill": "0"}, "42", "00042"),
        ("pad", {"width": 4, "side": "right"}, "ab", "ab  "),
        ("format", "FR-{}", "123", "FR-123"),
        ("format", "{:>6}", "ab", "    ab"),
        ("split", " ", "Jean  Pierre", ["Jean", "Pierre"]),
        ("join", ", ", ["a", None, "b"], "a, b"),
        ("substring", {"start": 0, "length": 1}, "Martin", "M"),
        ("substring", {"start": 2}, "FR7630", "7630"),
        ("replace", {"pattern": r"\s+", "with": ""}, "FR76 3000 6000", "FR7630006000"),
        ("truncate", 3, "abcdef", "abc"),
        (
            "number",
            {"decimals": 2, "decimal_separator": ",", "thousands_separator": " "},
            "1234567.891",
            "1 234 567,89",
        ),
        ("number", {"scale": 100, "decimals": 0}, "150.5", "15050"),
        ("number", {"decimals": 1}, -0.05, "-0.1"),
        ("number", {"decimals": 2}, "2.675", "2.68"),
        ("currency", {}, 1234.5, "1\u202f234,50\u00a0€"),
        ("date", {"from": "%Y-%m-%d", "to": "%d/%m/%Y"}, "1985-03-14", "14/03/1985"),
        ("date", {"from": ["%d/%m/%Y", "iso"], "to": "iso"}, "2020-02-29", "2020-02-29"),
        ("date", {"from": "iso", "to": "%Y%m%d"}, date(2021, 1, 2), "20210102"),
        (
            "datetime",
            {"from": "iso", "to": "iso", "timezone": "UTC"},
            "2026-07-01T10:00:00+02:00",
            "2026-07-01T08:00:00+00:00",
        ),
        (
            "datetime",
            {"from": "%d/%m/%Y %H:%M", "to": "iso"},
            "01/01/2026 12:00",
            "2026-01-01T12:00:00+01:00",
        ),
        (
            "datetime",
            {"from": "iso", "to": "%d/%m/%Y %H:%M", "assume": "UTC"},
            "2026-07-01T10:00:00",
            "01/07/2026 12:00",
        ),
        ("bool", {"if_true": "O", "if_false": "N"}, True, "O"),
        ("bool", {"if_true": 1, "if_false": 0}, "non", 0),
    ],
)
def test_transforms_with_arguments(name, args, value, expected):
    assert build(name, args)(value) == expected


@pytest.mark.parametrize(
    ("name", "args", "value", "reason"),
    [
        ("date", {"from": "iso"}, "31/02/2020", "date does not match 'iso'"),
        ("date", {"from": "iso"}, "2021-02-29", "date does not match"),
        ("datetime", {"from": "iso"}, "tomorrow", "date-time does not match"),
        ("number", {}, "12 euros", "not a number"),
        ("number", {}, "NaN", "not a finite number"),
        ("bool", {"if_true": "O", "if_false": "N"}, "peut-être", "not a boolean"),
        ("format", "{:d}", "abc", "does not fit the format"),
    ],
)
def test_transform_failures_say_why_without_the_value(name, args, value, reason):
    with pytest.raises(ValueError) as caught:
        build(name, args)(value)
    assert reason in str(caught.value) and str(value) not in str(caught.value)


def test_text_transforms_refuse_objects_rather_than_printing_them():
    with pytest.raises(TypeError):
        tx.SIMPLE["upper"][0]({"a": 1})


@given(TEXT)
def test_french_surname_is_idempotent(value):
    once = tx.french_surname(value)
    assert tx.french_surname(once) == once


@given(TEXT)
def test_strip_accents_is_idempotent_and_leaves_no_combining_mark(value):
    import unicodedata

    once = tx.strip_accents(value)
    assert tx.strip_accents(once) == once
    assert not any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", once))


@given(st.dates(min_value=date(1880, 1, 1), max_value=date(2100, 12, 31)))
def test_date_formats_round_trip(day):
    to_french = build("date", {"from": "iso", "to": "%d/%m/%Y"})
    back = build("date", {"from": "%d/%m/%Y", "to": "iso"})
    assert back(to_french(day.isoformat())) == day.isoformat()


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False))
def test_cents_formatting_is_exact(amount):
    cents = build("number", {"scale": 100, "decimals": 0})(str(amount))
    assert int(cents) == int(amount * 100)
