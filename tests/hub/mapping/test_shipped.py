"""Every shipped mapping loads, has test cases, and passes them; nothing is parsed while mapping."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import hub.mapping.paths
from hub.mapping import load_mappings
from hub.mapping.cases import case_files, load_case, missing_cases, run_case
from hub.mapping.jsonschema import mapping_file_schema, portal_request_schema
from tests.conftest import ROOT

MAPPINGS = ROOT / "mappings"
SHIPPED = load_mappings(MAPPINGS)
CASES = [(name, path) for name, mapping in sorted(SHIPPED.items()) for path in case_files(mapping)]


@pytest.mark.parametrize(("name", "case"), CASES, ids=[f"{n}::{p.stem}" for n, p in CASES])
def test_shipped_case_passes(name, case):
    result = run_case(SHIPPED[name], case)
    assert result.passed, "\n".join(result.differences)


OUTPUT_CASES = [(name, path) for name, path in CASES if load_case(path)[0].expect_error is None]


@pytest.mark.parametrize(("name", "case"), OUTPUT_CASES, ids=[f"{n}::{p.stem}" for n, p in OUTPUT_CASES])
def test_what_a_shipped_mapping_builds_fits_the_schema_flows_are_checked_against(name, case):
    """Flows check $.steps.<name>.* paths and values against Mapping.produces (hub.flow_paths):
    a record the mapping really builds must fit it, or a valid flow would be refused."""
    mapping = SHIPPED[name]
    record = mapping.apply(load_case(case)[1])
    jsonschema.validate(record, mapping.produces)


def test_produces_knows_the_values_of_a_table_a_constant_and_a_copied_enum():
    produced = SHIPPED["etat-civil/act-status-answer"].produces["properties"]
    assert produced["status"] == {"enum": ["submitted", "completed", "rejected"], "type": "string"}
    assert produced["registry_status"]["enum"] == ["PENDING", "ISSUED", "REJECTED"]  # from the WSDL
    assert produced["issued_at"] == {}  # a datetime transform: anything
    assert SHIPPED["ged/issued-act-fields"].produces["properties"]["type"]["enum"] == ["acte"]
    address = SHIPPED["etat-civil/request-act-copy"].produces["properties"]["deliveryAddress"]
    assert set(address["properties"]) == {"line1", "postalCode", "city", "country"}
    assert address["additionalProperties"] is False


def test_every_shipped_mapping_has_cases_and_an_error_case_when_it_can_fail():
    assert missing_cases(SHIPPED) == []
    for name, mapping in SHIPPED.items():
        kinds = {"error" if load_case(path)[0].expect_error else "output" for path in case_files(mapping)}
        assert "output" in kinds, name
        if any(field.required for field in mapping.spec.fields.values()):
            assert "error" in kinds, f"{name} has required fields but no case showing the error"


def test_the_four_systems_have_mappings_in_both_directions():
    prefixes = {name.split("/")[0] for name in SHIPPED}
    assert {"etat-civil", "ecole", "finances", "ged"} <= prefixes
    answers = {
        name
        for name, m in SHIPPED.items()
        if any("$.response" in (f.path or "") for f in m.spec.fields.values())
    }
    assert {"etat-civil/act-status-answer", "ecole/enrolment-answer", "ged/document-filed"} <= answers
    formats = {m.format for m in SHIPPED.values()}
    assert formats == {"json", "soap", "csv", "fixed_width", "xml"}


def test_no_jsonpath_is_parsed_while_the_shipped_cases_run(monkeypatch):
    documents = [(SHIPPED[name], load_case(path)[1]) for name, path in CASES]

    def forbidden(*_args, **_kwargs):
        raise AssertionError("JSONPath parsed while mapping")

    monkeypatch.setattr(hub.mapping.paths, "parse_jsonpath", forbidden)
    monkeypatch.setattr("jsonpath_ng.ext.parse", forbidden)
    monkeypatch.setattr("jsonpath_ng.parse", forbidden)
    for mapping, document in documents:
        with contextlib.suppress(hub.mapping.MappingFailed):
            mapping.render(document)


def test_published_json_schema_is_current_and_accepts_every_shipped_mapping():
    published = json.loads((ROOT / "docs" / "schemas" / "mapping.schema.json").read_text(encoding="utf-8"))
    assert published == mapping_file_schema(), (
        "run: hub mappings schema --output docs/schemas/mapping.schema.json"
    )
    validator = jsonschema.Draft202012Validator(published)
    for mapping in SHIPPED.values():
        document = yaml.safe_load(Path(mapping.path).read_text(encoding="utf-8"))
        assert list(validator.iter_errors(document)) == [], mapping.path


def test_published_json_schema_flags_what_the_loader_refuses():
    validator = jsonschema.Draft202012Validator(mapping_file_schema())
    wrong = {
        "mapping": "x",
        "fields": {"a": {"path": "$.a", "transforms": ["shout", {"pad": {"widht": 2}}]}, "b": {"pth": "$.b"}},
    }
    assert len(list(validator.iter_errors(wrong))) >= 2


def test_portal_request_schema_is_generated_from_the_citizen_model():
    shipped = json.loads((MAPPINGS / "schemas" / "portal-request.json").read_text(encoding="utf-8"))
    assert shipped == portal_request_schema()


def test_finance_file_headers_in_hub_yaml_are_the_mappings_columns():
    from hub.config import load_config
    from tests.conftest import CONFIG

    config, _ = load_config(CONFIG)
    headers = config.systems["finances"].files.headers
    assert headers["billing"] == SHIPPED["finances/billing-line"].renderer.header()
    assert headers["aid_payment"] == SHIPPED["finances/aid-payment-line"].renderer.header()
