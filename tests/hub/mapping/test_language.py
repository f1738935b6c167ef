"""The mapping language as an integration engineer writes it: each construct, on small files."""

from __future__ import annotations

import pytest

from hub.mapping import MappingFailed
from tests.hub.mapping.helpers import mapping, write

FAMILY = {
    "citizen": {
        "birth_name": "Dupont",
        "used_name": "",
        "given_names": ["Anne", "Marie"],
        "address": {"city": "Lyon"},
    },
    "data": {
        "children": [
            {"name": "Léa", "age": 6, "fees": [10, 2.5]},
            {"name": "Tom", "age": 2, "fees": []},
            {"name": "Zoé", "age": 9, "fees": [4]},
        ]
    },
}


def test_path_first_of_value_and_omission_of_empty_values(tmp_path):
    m = mapping(
        tmp_path,
        """
        name: {first_of: [$.citizen.used_name, $.citizen.birth_name]}
        first: {path: "$.citizen.given_names[0]"}
        last: {path: "$.citizen.given_names[-1]"}
        channel: {value: PORTAIL}
        nothing: {path: $.citizen.nickname}
        empty: {path: $.citizen.used_name}
        """,
    )
    assert m.apply(FAMILY) == {"name": "Dupont", "first": "Anne", "last": "Marie", "channel": "PORTAIL"}


def test_default_is_written_as_is_even_null_and_required_names_the_field(tmp_path):
    m = mapping(
        tmp_path,
        """
        country: {path: $.citizen.address.country, default: FR, transforms: [lower]}
        nickname: {path: $.citizen.nickname, default: null}
        city: {path: $.citizen.address.city, required: true}
        """,
    )
    assert m.apply(FAMILY) == {"country": "FR", "nickname": None, "city": "Lyon"}
    with pytest.raises(MappingFailed) as caught:
        m.apply({"citizen": {}})
    assert (caught.value.field, caught.value.source, caught.value.reason) == (
        "city",
        "$.citizen.address.city",
        "required value is missing",
    )


def test_a_value_emptied_by_its_transforms_counts_as_missing(tmp_path):
    m = mapping(tmp_path, "name: {path: $.n, transforms: [trim], required: true}")
    with pytest.raises(MappingFailed, match="required value is missing"):
        m.apply({"n": "   "})


def test_each_with_where_builds_an_array_and_errors_name_the_item(tmp_path):
    m = mapping(
        tmp_path,
        """
        children:
          each: "$.data.children[*]"
          where: {path: "@.age", gte: 3}
          fields:
            given_name: {path: "@.name", transforms: [upper]}
            family_name: {path: $.citizen.birth_name}
            fees_total: {sum: "@.fees[*]"}
            fees_count: {count: "@.fees[*]"}
        names: {each: "$.data.children[*]", path: "@.name"}
        """,
    )
    assert m.apply(FAMILY) == {
        "children": [
            {"given_name": "LÉA", "family_name": "Dupont", "fees_total": 12.5, "fees_count": 2},
            {"given_name": "ZOÉ", "family_name": "Dupont", "fees_total": 4, "fees_count": 1},
        ],
        "names": ["Léa", "Tom", "Zoé"],
    }
    broken = {
        "data": {"children": [{"name": "A", "age": 5, "fees": [1]}, {"name": "B", "age": 7, "fees": ["x"]}]}
    }
    with pytest.raises(MappingFailed) as caught:
        m.apply(broken)
    assert caught.value.field == "children[1].fees_total" and "not a number" in caught.value.reason


def test_nested_arrays_report_every_index(tmp_path):
    m = mapping(
        tmp_path,
        """
        invoices:
          each: "$.invoices[*]"
          fields:
            lines:
              each: "@.lines[*]"
              fields:
                amount: {path: "@.amount", transforms: [{number: {decimals: 2}}], required: true}
        """,
    )
    document = {"invoices": [{"lines": [{"amount": 1}]}, {"lines": [{"amount": 2}, {"amount": None}]}]}
    with pytest.raises(MappingFailed) as caught:
        m.apply(document)
    assert caught.value.field == "invoices[1].lines[1].amount"
    document["invoices"][1]["lines"][1]["amount"] = "3,5"
    assert m.apply(document) == {
        "invoices": [{"lines": [{"amount": "1.00"}]}, {"lines": [{"amount": "2.00"}, {"amount": "3.50"}]}]
    }


def test_aggregates_count_sum_min_max(tmp_path):
    m = mapping(
        tmp_path,
        """
        n: {count: "$.data.children[*]"}
        oldest: {max: "$.data.children[*].age"}
        youngest: {min: "$.data.children[*].age"}
        total_age: {sum: "$.data.children[*].age"}
        none: {count: "$.data.pets[*]"}
        """,
    )
    assert m.apply(FAMILY) == {"n": 3, "oldest": 9, "youngest": 2, "total_age": 17, "none": 0}


def test_sum_of_money_is_exact(tmp_path):
    m = mapping(tmp_path, 'total: {sum: "$.lines[*]"}')
    assert m.apply({"lines": [0.1, 0.2, "0,30"]}) == {"total": 0.6}


def test_when_conditions(tmp_path):
    m = mapping(
        tmp_path,
        """
        abroad: {value: true, when: {path: $.place, matches: "^99"}}
        minor: {value: true, when: {all: [{path: $.age, lt: 18}, {not: {path: $.emancipated, equals: true}}]}}
        known: {value: "yes", when: {any: [{path: $.nir, exists: true}, {path: $.ins, exists: true}]}}
        kind: {value: large, when: {path: $.size, in: [L, XL]}}
        """,
    )
    assert m.apply({"place": "99134", "age": 12, "ins": "x", "size": "XL"}) == {
        "abroad": True,
        "minor": True,
        "known": "yes",
        "kind": "large",
    }
    assert m.apply({"place": "75056", "age": 12, "emancipated": True, "size": "S"}) == {}


def test_contains_tests_a_list_or_the_matches_of_a_path(tmp_path):
    m = mapping(
        tmp_path,
        """
        urgent: {value: true, when: {path: $.tags, contains: urgent}}
        school: {value: true, when: {path: "$.refs[*].system", contains: ecole}}
        """,
    )
    assert m.apply({"tags": ["urgent", "x"], "refs": [{"system": "etat_civil"}, {"system": "ecole"}]}) == {
        "urgent": True,
        "school": True,
    }
    # a string holding the text is no list; no match at all is not a match
    assert m.apply({"tags": "urgent!", "refs": [{"system": "etat_civil"}]}) == {}
    assert m.apply({}) == {}


def test_when_on_a_block_and_ref_to_earlier_fields(tmp_path):
    m = mapping(
        tmp_path,
        """
        number: {path: $.n, transforms: [upper]}
        label: {ref: number, transforms: [{format: "Facture {}"}]}
        address:
          when: {path: $.city, exists: true}
          fields:
            city: {path: $.city, transforms: [upper]}
        town: {ref: address.city}
        """,
    )
    assert m.apply({"n": "fa-1", "city": "Lyon"}) == {
        "number": "FA-1",
        "label": "Facture FA-1",
        "address": {"city": "LYON"},
        "town": "LYON",
    }
    assert m.apply({"n": "fa-2"}) == {"number": "FA-2", "label": "Facture FA-2"}


def test_fragments_are_included_from_their_own_file_and_read_from_a_node(tmp_path):
    write(
        tmp_path,
        "fragments/address.yaml",
        """
        fragment: address
        fields:
          city: {path: "@.city", transforms: [upper], required: true}
          zip: {path: "@.postal_code"}
        """,
    )
    m = mapping(
        tmp_path,
        """
        home: {fragment: address, from: $.home}
        work: {fragment: address, from: $.work}
        places: {each: "$.others[*]", fragment: address}
        """,
    )
    assert m.apply({"home": {"city": "Lyon", "postal_code": "69001"}, "others": [{"city": "Nantes"}]}) == {
        "home": {"city": "LYON", "zip": "69001"},
        "places": [{"city": "NANTES"}],
    }
    with pytest.raises(MappingFailed) as caught:
        m.apply({"home": {"postal_code": "69001"}})
    assert caught.value.field == "home.city"


def test_shared_yaml_csv_and_inline_tables_with_default_and_reverse(tmp_path):
    write(tmp_path, "tables/sex.yaml", 'table: sex\nvalues: {M: "1", F: "2"}\n')
    write(tmp_path, "tables/countries.csv", "code;iso2;name\n99134;ES;Espagne\n99109;DE;Allemagne\n")
    m = mapping(
        tmp_path,
        """
        sex: {path: $.sex, transforms: [{table: sex}]}
        back: {path: $.code, transforms: [{table: {name: sex, reverse: true}}]}
        country: {path: $.place, transforms: [{table: {name: countries, column: iso2, default: XX}}]}
        flag: {path: $.flag, transforms: [{table: {values: {O: true, N: false}}}]}
        numeric: {path: $.n, transforms: [{table: {values: {"1": one}}}]}
        """,
    )
    assert m.apply({"sex": "F", "code": "1", "place": "99134", "flag": "N", "n": 1}) == {
        "sex": "2",
        "back": "M",
        "country": "ES",
        "flag": False,
        "numeric": "one",
    }
    assert m.apply({"place": "99999"}) == {"country": "XX"}
    with pytest.raises(MappingFailed) as caught:
        m.apply({"sex": "X"})
    assert caught.value.field == "sex" and caught.value.reason == "code not in table sex"


def test_csv_line_quotes_and_header(tmp_path):
    m = mapping(
        tmp_path,
        """
        id: {path: $.id}
        name: {path: $.name}
        amount: {path: $.amount, transforms: [{number: {decimals: 2, decimal_separator: ","}}]}
        """,
        head="target: {name: line, format: csv, csv: {delimiter: ';'}}\n",
    )
    assert m.renderer.header() == "id;name;amount"
    assert m.render({"id": 7, "name": 'Du;pont "le"', "amount": "12.5"}) == '7;"Du;pont ""le""";12,50'
    assert m.render({"id": 8}) == "8;;"


def test_fixed_width_pads_aligns_and_refuses_overflow(tmp_path):
    m = mapping(
        tmp_path,
        """
        code: {path: $.code}
        amount: {path: $.amount}
        """,
        head="""
        target:
          name: line
          format: fixed_width
          fixed_width:
            columns:
              code: {width: 5}
              amount: {width: 6, align: right, fill: "0"}
        """,
    )
    assert m.render({"code": "AB", "amount": 42}) == "AB   000042"
    with pytest.raises(MappingFailed) as caught:
        m.render({"code": "ABCDEF", "amount": 1})
    assert (
        caught.value.mapping == "t" and caught.value.field == "code" and "6 characters" in caught.value.reason
    )


def test_xml_elements_attributes_repeats_and_namespace(tmp_path):
    m = mapping(
        tmp_path,
        """
        "@id": {path: $.id}
        title: {path: $.title}
        tag: {each: "$.tags[*]", path: "@"}
        size: {fields: {"@unit": {value: bytes}, value: {path: $.size}}}
        """,
        head="target: {name: doc, format: xml, xml: {root: document, namespace: 'urn:x'}}\n",
    )
    assert m.render({"id": "D1", "title": "A & B <c>", "tags": ["x", "y"], "size": 12}) == (
        '<document xmlns="urn:x" id="D1">\n'
        "  <title>A &amp; B &lt;c&gt;</title>\n"
        "  <tag>x</tag>\n"
        "  <tag>y</tag>\n"
        '  <size unit="bytes">\n'
        "    <value>12</value>\n"
        "  </size>\n"
        "</document>\n"
    )


def test_constants_are_not_shared_between_messages(tmp_path):
    m = mapping(tmp_path, "meta: {value: {tags: [a]}}")
    first = m.apply({})
    first["meta"]["tags"].append("b")
    assert m.apply({}) == {"meta": {"tags": ["a"]}}


def test_explain_gives_source_transforms_and_values_for_every_field(tmp_path):
    m = mapping(
        tmp_path,
        """
        name: {path: $.n, transforms: [trim, upper]}
        kids: {each: "$.k[*]", path: "@.x", transforms: [integer]}
        """,
    )
    traces, error = m.explain({"n": " ana ", "k": [{"x": "1"}, {"x": "2"}]})
    assert error is None
    assert [(t.target, t.source, t.transforms, t.raw, t.value) for t in traces] == [
        ("name", "$.n", ("trim", "upper"), " ana ", "ANA"),
        ("kids[0]", "@.x", ("integer",), "1", 1),
        ("kids[1]", "@.x", ("integer",), "2", 2),
    ]
    traces, error = m.explain({"n": "ana", "k": [{"x": "one"}]})
    assert [t.target for t in traces] == ["name"] and error is not None and error.field == "kids[0]"


def test_runtime_error_masks_the_personal_value(tmp_path):
    m = mapping(
        tmp_path, "born: {path: $.citizen.birth_date, transforms: [{date: {from: iso, to: '%d/%m/%Y'}}]}"
    )
    with pytest.raises(MappingFailed) as caught:
        m.apply({"citizen": {"birth_date": "31/12/1999"}})
    error = caught.value
    assert error.value == "31/12/1999" and "31/12/1999" not in str(error)
    assert str(error) == (
        "mapping t: field born from $.citizen.birth_date: date does not match 'iso' (value '3…' (10 chars))"
    )


def test_source_documents_from_zeep_are_read_like_dicts(tmp_path):
    from collections import OrderedDict

    m = mapping(tmp_path, "status: {path: $.response.status}")
    assert m.apply({"response": OrderedDict(status="ISSUED")}) == {"status": "ISSUED"}
