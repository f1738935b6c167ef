"""``hub mappings test|apply|explain|schema`` as an engineer runs them in a terminal."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from hub.cli import app
from hub.mapping.jsonschema import mapping_file_schema
from tests.conftest import ROOT
from tests.hub.mapping.helpers import write

runner = CliRunner()


def project(tmp_path):
    write(tmp_path, "tables/sex.yaml", 'table: sex\nvalues: {M: "1", F: "2"}\n')
    write(
        tmp_path,
        "people/person.yaml",
        """
        mapping: people/person
        fields:
          name: {path: $.name, transforms: [upper], required: true}
          sex: {path: $.sex, transforms: [{table: sex}]}
          kids:
            each: "$.kids[*]"
            fields: {born: {path: "@.born", transforms: [{date: {from: iso, to: "%d/%m/%Y"}}]}}
        """,
    )
    write(
        tmp_path, "tests/people/person/ok.yaml", "input: {name: ana, sex: F}\nexpect: {name: ANA, sex: '2'}\n"
    )
    write(
        tmp_path,
        "tests/people/person/missing.yaml",
        "input: {sex: F}\nexpect_error: {field: name, reason: missing}\n",
    )
    return tmp_path


def test_test_passes_and_exits_zero(tmp_path):
    result = runner.invoke(app, ["mappings", "test", str(project(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "PASS people/person :: ok" in result.output and "2 passed, 0 failed" in result.output


def test_a_failing_case_prints_a_diff_by_field_path_and_exits_one(tmp_path):
    project(tmp_path)
    write(
        tmp_path,
        "tests/people/person/kids.yaml",
        "input: {name: ana, kids: [{born: '2020-01-02'}, {born: '2021-03-04'}]}\n"
        "expect: {name: ANA, kids: [{born: 02/01/2020}, {born: 03/04/2021}], extra: 1}\n",
    )
    result = runner.invoke(app, ["mappings", "test", str(tmp_path / "people" / "person.yaml")])
    assert result.exit_code == 1
    assert "FAIL people/person :: kids" in result.output
    assert "kids[1].born: expected '03/04/2021', got '04/03/2021'" in result.output
    assert "extra: expected 1, missing" in result.output
    assert "2 passed, 1 failed" in result.output


def test_an_expected_error_that_does_not_happen_fails(tmp_path):
    project(tmp_path)
    write(tmp_path, "tests/people/person/wrong.yaml", "input: {name: x}\nexpect_error: {field: name}\n")
    result = runner.invoke(app, ["mappings", "test", str(tmp_path)])
    assert result.exit_code == 1 and "expected an error on 'name', the mapping succeeded" in result.output


def test_a_broken_mapping_file_gives_file_line_and_exit_one(tmp_path):
    project(tmp_path)
    write(tmp_path, "people/broken.yaml", "mapping: broken\nfields:\n  a: {path: '$.[', required: true}\n")
    result = runner.invoke(app, ["mappings", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        f"{tmp_path / 'people' / 'broken.yaml'}:3:" in result.output and "invalid JSONPath" in result.output
    )


def test_apply_prints_the_output(tmp_path):
    project(tmp_path)
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"name": "léa", "sex": "F"}), encoding="utf-8")
    result = runner.invoke(
        app, ["mappings", "apply", str(tmp_path / "people" / "person.yaml"), "--input", str(document)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"name": "LÉA", "sex": "2"}


def test_apply_a_file_line_mapping_prints_the_line(tmp_path):
    document = tmp_path / "aid.json"
    case = ROOT / "mappings" / "tests" / "finances" / "treasury-transfer-line" / "energy-aid.yaml"
    import yaml

    document.write_text(
        json.dumps(yaml.safe_load(case.read_text(encoding="utf-8"))["input"]), encoding="utf-8"
    )
    result = runner.invoke(
        app,
        [
            "mappings",
            "apply",
            str(ROOT / "mappings" / "finances" / "treasury-transfer-line.yaml"),
            "-i",
            str(document),
        ],
    )
    assert result.exit_code == 0 and len(result.output.rstrip("\n")) == 120


def test_apply_failure_exits_one_with_a_masked_value(tmp_path):
    project(tmp_path)
    document = tmp_path / "doc.json"
    document.write_text(
        json.dumps({"name": "ana", "sex": "X", "kids": [{"born": "02/01/2020"}]}), encoding="utf-8"
    )
    result = runner.invoke(
        app, ["mappings", "apply", str(tmp_path / "people" / "person.yaml"), "-i", str(document)]
    )
    assert result.exit_code == 1 and "mapping_failed: mapping people/person: field sex" in result.output
    assert "code not in table sex" in result.output


def test_apply_with_unreadable_input_exits_two(tmp_path):
    project(tmp_path)
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    result = runner.invoke(
        app, ["mappings", "apply", str(tmp_path / "people" / "person.yaml"), "-i", str(tmp_path / "bad.json")]
    )
    assert result.exit_code == 2 and "cannot read a JSON document" in result.output


def test_explain_shows_each_field_with_its_source_and_transforms(tmp_path):
    project(tmp_path)
    document = tmp_path / "doc.json"
    document.write_text(
        json.dumps({"name": "ana", "sex": "F", "kids": [{"born": "2020-01-02"}]}), encoding="utf-8"
    )
    result = runner.invoke(
        app,
        ["mappings", "explain", str(tmp_path / "people" / "person.yaml"), "-i", str(document)],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│" in line]
    assert any("name" in line and "$.name" in line and "upper" in line and '"ANA"' in line for line in lines)
    assert any("kids[0].born" in line and "@.born" in line and '"02/01/2020"' in line for line in lines)


def test_schema_prints_the_published_schema(tmp_path):
    result = runner.invoke(app, ["mappings", "schema"])
    assert result.exit_code == 0 and json.loads(result.output) == mapping_file_schema()
