"""Examples in docs/ are run: the flow and mapping examples load, and the mapping gives its output."""

from __future__ import annotations

import json
import re

import yaml

from hub.config import load_config
from hub.flows import load_flow
from hub.mapping import load_mapping, load_mappings
from tests.conftest import CONFIG, ROOT, sample

BLOCK = re.compile(r"```(\w+) (\w+)\n(.*?)```", re.S)


def blocks(document: str, kind: str) -> list[str]:
    text = (ROOT / "docs" / document).read_text(encoding="utf-8")
    return [body for _lang, tag, body in BLOCK.findall(text) if tag == kind]


def test_flow_example_is_the_shipped_flow_and_loads(tmp_path):
    [example] = blocks("flows.md", "flow")
    shipped = yaml.safe_load((ROOT / "flows" / "birth-certificate.yaml").read_text(encoding="utf-8"))
    assert yaml.safe_load(example) == shipped
    path = tmp_path / "flow.yaml"
    path.write_text(example, encoding="utf-8")
    config, _ = load_config(CONFIG)
    assert load_flow(path, config, load_mappings(ROOT / "mappings")).name == "birth-certificate"


def test_mapping_example_gives_the_documented_output(tmp_path):
    [example] = blocks("mappings.md", "mapping")
    [expected] = blocks("mappings.md", "expected")
    path = tmp_path / "mapping.yaml"
    path.write_text(example, encoding="utf-8")
    body = sample("01-lefevre-copie-integrale")
    assert load_mapping(path).apply({"citizen": body["citizen"]}) == json.loads(expected)
