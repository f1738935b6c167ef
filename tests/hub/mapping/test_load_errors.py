"""What the loader refuses, each at file:line:col with what would be valid."""

from __future__ import annotations

import pytest

from hub.mapping import load_mappings
from hub.yamlfile import ConfigError
from tests.conftest import ROOT
from tests.hub.mapping.helpers import mapping, write

WSDL = ROOT / "config" / "wsdl" / "etat-civil.wsdl"


def errors(tmp_path, fields: str, head: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        mapping(tmp_path, fields, head=head)
    return [str(issue) for issue in caught.value.issues]


def only(tmp_path, fields: str, head: str = "") -> str:
    [message] = errors(tmp_path, fields, head)
    return message


def test_unknown_key_lists_the_valid_keys(tmp_path):
    message = only(tmp_path, "a: {pth: $.a}")
    assert message.startswith(f"{tmp_path / 't.yaml'}:3:") and "unknown key 'pth'" in message
    assert "path" in message and "first_of" in message


def test_duplicate_key_names_both_lines(tmp_path):
    message = only(tmp_path, "a: {path: $.a}\na: {path: $.b}")
    assert ":4:" in message and "duplicate key 'a' (first defined at line 3)" in message


def test_a_field_needs_exactly_one_source(tmp_path):
    assert "exactly one of path, first_of" in only(tmp_path, "a: {path: $.a, value: 1}")
    assert "got none" in only(tmp_path, "a: {required: true}")


def test_invalid_jsonpath_at_its_line_and_column(tmp_path):
    message = only(tmp_path, "a: {path: $.a}\nb: {path: '$.b[?(@.x ==]'}")
    assert ":4:" in message and "invalid JSONPath" in message


def test_a_jsonpath_must_start_at_the_document_or_the_item(tmp_path):
    assert "starts with $" in only(tmp_path, "a: {path: citizen.name}")


def test_unknown_transform_and_bad_arguments(tmp_path):
    found = errors(
        tmp_path,
        """
        a: {path: $.a, transforms: [shout]}
        b: {path: $.b, transforms: [{pad: {widht: 3}}]}
        c: {path: $.c, transforms: [pad]}
        d: {path: $.d, transforms: [{format: "{0.__class__}"}]}
        e: {path: $.e, transforms: [{replace: {pattern: "(", with: ""}}]}
        f: {path: $.f, transforms: [{datetime: {timezone: Mars/Olympus}}]}
        """,
    )
    text = "\n".join(found)
    assert "unknown transform 'shout'" in text and "valid: trim" in text
    assert "unknown key 'widht'" in text
    assert "it takes arguments" in text
    assert "exactly one {} placeholder" in text
    assert "invalid regular expression" in text
    assert "unknown time zone 'Mars/Olympus'" in text
    assert len(found) == 7 and all(line.startswith(str(tmp_path)) for line in found)


def test_unknown_table_lists_the_tables(tmp_path):
    write(tmp_path, "tables/sex.yaml", 'table: sex\nvalues: {M: "1"}\n')
    message = only(tmp_path, "a: {path: $.a, transforms: [{table: sexe}]}")
    assert "unknown table 'sexe'; valid: sex" in message


def test_a_table_that_repeats_a_value_cannot_be_reversed(tmp_path):
    message = only(tmp_path, "a: {path: $.a, transforms: [{table: {values: {a: 1, b: 1}, reverse: true}}]}")
    assert "not reversible" in message


def test_unknown_fragment_and_a_fragment_including_itself(tmp_path):
    write(tmp_path, "fragments/loop.yaml", "fragment: loop\nfields:\n  x: {fragment: loop}\n")
    text = "\n".join(errors(tmp_path, "a: {fragment: adress}\nb: {fragment: loop}"))
    assert "unknown fragment 'adress'; valid: loop" in text
    assert "fragment 'loop' includes itself" in text and "fragments/loop.yaml:3:" in text


def test_ref_must_name_a_field_declared_before(tmp_path):
    message = only(tmp_path, "a: {ref: b}\nb: {value: 1}")
    assert ":3:" in message and "ref 'b' is not a target field declared before" in message


def test_target_not_in_the_declared_json_schema(tmp_path):
    write(
        tmp_path,
        "target.json",
        '{"type": "object", "additionalProperties": false, "properties": '
        '{"name": {"type": "string"}, "address": '
        '{"type": "object", "properties": {"city": {}}, "additionalProperties": false}}}',
    )
    text = "\n".join(
        errors(
            tmp_path,
            "name: {path: $.n}\nnmae: {path: $.n}\naddress:\n  fields:\n    town: {path: $.t}",
            head="target: {name: x, schema: target.json}\n",
        )
    )
    assert "target 'nmae' is not in the target schema; valid here: name, address" in text
    assert "target 'town' is not in the target schema; valid here: city" in text


def test_target_not_in_the_wsdl_message(tmp_path):
    head = f"target: {{name: x, format: soap, wsdl: {{file: {WSDL}, operation: RequestActCopy}}}}\n"
    message = only(tmp_path, "copyType: {value: X}\nbirthname: {value: X}", head=head)
    assert "target 'birthname' is not in the target schema" in message and "birthName" in message
    head = f"target: {{name: x, format: soap, wsdl: {{file: {WSDL}, operation: RequestCopy}}}}\n"
    assert "has no operation 'RequestCopy'; valid: GetActRequestStatus" in only(
        tmp_path, "a: {value: 1}", head=head
    )


def test_source_path_the_source_schema_proves_can_never_match(tmp_path):
    head = f"source: {{name: portal, schema: {ROOT / 'mappings' / 'schemas' / 'portal-request.json'}}}\n"
    text = "\n".join(
        errors(
            tmp_path,
            """
            a: {path: $.citizen.birthname}
            b: {path: "$.citizen.birth_name[0]"}
            c: {path: $.citizen.address.town}
            ok1: {path: $.data.anything.goes}
            ok2: {path: "$.citizen.given_names[0]"}
            """,
            head=head,
        )
    )
    assert "$.citizen.birthname can never match: the source schema has no $.citizen.birthname" in text
    assert "not an array" in text
    assert (
        "no $.citizen.address.town; valid here: city, country, insee_code, line1, line2, postal_code" in text
    )
    assert "ok1" not in text and "ok2" not in text


def test_file_formats_need_flat_fields_and_matching_columns(tmp_path):
    head = "target: {name: x, format: fixed_width, fixed_width: {columns: {a: {width: 3}, c: {width: 2}}}}\n"
    text = "\n".join(errors(tmp_path, "a: {value: 1}\nb: {fields: {x: {value: 1}}}", head=head))
    assert "a fixed_width line holds values, not blocks or arrays" in text
    assert "no column width for field(s): b" in text and "column(s) without a field: c" in text


def test_xml_target_names_must_be_element_names(tmp_path):
    head = "target: {name: x, format: xml, xml: {root: doc}}\n"
    assert "not an XML element name" in only(tmp_path, '"1st": {value: 1}', head=head)


def test_two_files_with_one_name_and_every_issue_at_once(tmp_path):
    write(tmp_path, "a/one.yaml", "mapping: same\nfields:\n  x: {value: 1}\n")
    write(tmp_path, "b/two.yaml", "mapping: same\nfields:\n  x: {value: 1}\n")
    write(
        tmp_path, "c/bad.yaml", "mapping: bad\nfields:\n  x: {path: $.a, transforms: [nope]}\n  y: {pth: 1}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_mappings(tmp_path)
    text = "\n".join(str(i) for i in caught.value.issues)
    assert "mapping name 'same' already used by" in text
    assert "c/bad.yaml:4:" in text or "c/bad.yaml:5:" in text


def test_table_files_are_checked_too(tmp_path):
    write(tmp_path, "tables/bad.csv", "code;value\nA;1\nA;2\n")
    write(tmp_path, "tables/nope.yaml", "table: nope\nvalues: {NO: Norway}\n")
    write(tmp_path, "m.yaml", "mapping: m\nfields:\n  x: {value: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load_mappings(tmp_path)
    text = "\n".join(str(i) for i in caught.value.issues)
    assert "bad.csv:3:1: duplicate code 'A'" in text
    assert "nope.yaml:2:" in text and "must be a string" in text  # YAML reads NO as false: quote it


def test_answer_paths_are_checked_against_the_wsdl_output_message(tmp_path):
    head = (
        f"source: {{name: answer, wsdl: {{file: {WSDL}, operation: GetActRequestStatus, message: output}}}}\n"
    )
    message = only(tmp_path, "a: {path: $.response.status}\nb: {path: $.response.issued}", head=head)
    valid = "copies, issuedAt, rejectionReason, requestNumber, status"
    assert ":5:" in message and f"no $.response.issued; valid here: {valid}" in message
