"""Mapping (first form): JSONPath compiled once at load, transforms, required fields, errors."""

from __future__ import annotations

from pathlib import Path

import jsonpath_ng.ext
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hub.mapping.paths
from hub.mapping import MappingFailed, load_mapping, load_mappings
from hub.mapping.transforms import SIMPLE
from tests.conftest import ROOT, sample

MAPPINGS = ROOT / "mappings"


def document(name: str = "01-lefevre-copie-integrale") -> dict:
    body = sample(name)
    return {"request": {"id": "req-1"}, "citizen": body["citizen"], "data": body["data"], "steps": {}}


def test_request_act_copy_mapping_builds_the_soap_message():
    mapping = load_mappings(MAPPINGS)["etat-civil/request-act-copy"]
    assert mapping.apply(document()) == {
        "copyType": "COPIE_INTEGRALE",
        "birthName": "LEFÈVRE",
        "usedName": "MARTIN",
        "givenNames": "Élodie Marie",
        "birthDate": "1985-03-14",
        "birthPlaceInsee": "75056",
        "sex": "F",
        "requesterEmail": "elodie.martin@example.org",
        "deliveryAddress": {
            "line1": "12 rue des Lilas",
            "postalCode": "33000",
            "city": "BORDEAUX",
            "country": "FR",
        },
        "reference": "req-1",
    }


def test_optional_empty_values_are_omitted():
    mapping = load_mappings(MAPPINGS)["etat-civil/request-act-copy"]
    message = mapping.apply(document("03-ndiaye-extrait-sans-filiation"))
    assert "usedName" not in message and "requesterEmail" not in message


def test_missing_required_value_names_mapping_field_and_source():
    mapping = load_mappings(MAPPINGS)["etat-civil/request-act-copy"]
    doc = document()
    del doc["citizen"]["birth_name"]
    with pytest.raises(MappingFailed) as caught:
        mapping.apply(doc)
    assert caught.value.mapping == "etat-civil/request-act-copy"
    assert caught.value.field == "birthName" and caught.value.source == "$.citizen.birth_name"


def test_unparseable_date_fails_the_mapping_without_echoing_the_value(tmp_path: Path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "mapping: t\nfields:\n  d: {path: $.d, transforms: [{date: {from: '%Y-%m-%d', to: '%d/%m/%Y'}}]}\n"
    )
    mapping = load_mapping(path)
    assert mapping.apply({"d": "2024-02-29"}) == {"d": "29/02/2024"}
    with pytest.raises(MappingFailed) as caught:
        mapping.apply({"d": "31/12/1999"})
    assert "31/12/1999" not in str(caught.value) and "date does not match" in str(caught.value)


def test_no_jsonpath_is_parsed_while_messages_are_mapped(monkeypatch):
    mappings = load_mappings(MAPPINGS)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("JSONPath parsed at mapping time")

    monkeypatch.setattr(jsonpath_ng.ext, "parse", forbidden)
    monkeypatch.setattr(hub.mapping.paths, "parse_jsonpath", forbidden)
    for _ in range(3):
        mappings["etat-civil/request-act-copy"].apply(document())


def test_unknown_transform_is_a_load_error_with_line(tmp_path: Path):
    path = tmp_path / "m.yaml"
    path.write_text("mapping: t\nfields:\n  a: {path: $.a}\n  b: {path: $.b, transforms: [shout]}\n")
    with pytest.raises(Exception) as caught:
        load_mapping(path)
    assert f"{path}:4:" in str(caught.value) and "unknown transform 'shout'" in str(caught.value)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40))
def test_upper_and_trim_are_idempotent(value):
    upper, trim = SIMPLE["upper"][0], SIMPLE["trim"][0]
    once = upper(trim(value))
    assert upper(trim(once)) == once
