"""What a mapping says it builds (Mapping.produces) and reads (Mapping.reads): what flows check
their paths and values against (hub.flow_paths). It may say less than the truth, never more."""

from __future__ import annotations

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hub.mapping.helpers import mapping, write

FIELDS = """
kind: {path: $.data.kind, transforms: [{table: {values: {a: A, b: B}, default: Z}}]}
fixed: {value: 3}
counted: {count: "$.data.items[*]"}
plain: {path: $.data.name, transforms: [upper]}
guessed: {path: $.data.other, transforms: [{table: {values: {a: 1}}}], default: {unknown: true}}
nested:
  fields:
    inner: {path: $.data.name}
listed: {each: "$.data.items[*]", path: "@.v"}
blocks: {each: "$.data.items[*]", fields: {v: {path: "@.v"}}}
"""


def test_produces_describes_fields_blocks_arrays_and_known_values(tmp_path):
    built = mapping(tmp_path, FIELDS).produces
    assert built["additionalProperties"] is False
    properties = built["properties"]
    assert properties["kind"] == {"enum": ["A", "B", "Z"], "type": "string"}
    assert properties["fixed"] == {"enum": [3], "type": "integer"}
    assert properties["counted"] == {"type": "integer"}
    assert properties["plain"] == {}  # upper of anything: not known
    assert properties["guessed"] == {}  # a default of another kind than the table's values
    assert properties["nested"]["properties"] == {"inner": {}}
    assert properties["listed"] == {"type": "array", "items": {}}
    assert properties["blocks"]["items"]["properties"] == {"v": {}}


def test_reads_lists_each_absolute_path_with_its_location(tmp_path):
    write(tmp_path, "fragments/f.yaml", "fragment: f\nfields:\n  x: {path: $.citizen.email}\n")
    text = (
        FIELDS + "frag: {fragment: f}\nmaybe: {value: 1, when: {all: [{path: $.data.flag, equals: true}]}}\n"
    )
    reads = mapping(tmp_path, text).reads
    found = {(read.path.text, read.location) for read in reads}
    assert ("$.data.kind", ("fields", "kind", "path")) in found
    assert ("$.citizen.email", ("fields", "x", "path")) in found  # in the fragment's file
    assert ("$.data.flag", ("fields", "maybe", "when", "all", 0, "path")) in found
    assert not any(read.path.relative for read in reads)  # @ paths are the mapping's own business
    [condition] = [read for read in reads if read.condition is not None]
    assert condition.condition.equals is True


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["a", "b", "c", None]),
    name=st.one_of(st.none(), st.text(max_size=5)),
    items=st.lists(st.fixed_dictionaries({"v": st.one_of(st.integers(), st.text(max_size=3))}), max_size=3),
)
def test_every_record_the_mapping_builds_fits_what_it_says(tmp_path_factory, kind, name, items):
    built = _mapping(tmp_path_factory)
    data = {
        key: value for key, value in {"kind": kind, "name": name, "items": items}.items() if value is not None
    }
    jsonschema.validate(built.apply({"data": data}), built.produces)


_CACHE: dict[str, object] = {}


def _mapping(tmp_path_factory):
    if "m" not in _CACHE:
        _CACHE["m"] = mapping(tmp_path_factory.mktemp("produces"), FIELDS)
    return _CACHE["m"]
