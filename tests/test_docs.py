"""Examples in docs/ are run: the flow and mapping examples load, and the mapping gives its output."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from hub.config import load_config
from hub.flows import load_flow
from hub.mapping import load_fragments, load_mapping, load_mappings
from hub.mapping.tables import load_tables
from hub.mapping.transforms import NAMES
from tests.conftest import CONFIG, ROOT

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


MAPPING_EXAMPLES = list(
    zip(
        blocks("mappings.md", "mapping"),
        blocks("mappings.md", "input"),
        blocks("mappings.md", "expected"),
        strict=True,
    )
)


@pytest.mark.parametrize(("example", "document", "expected"), MAPPING_EXAMPLES)
def test_mapping_examples_give_the_documented_output(tmp_path, example, document, expected):
    path = tmp_path / "mapping.yaml"
    path.write_text(example, encoding="utf-8")
    shipped = ROOT / "mappings"
    mapping = load_mapping(
        path, tables=load_tables(shipped / "tables"), fragments=load_fragments(shipped / "fragments")
    )
    assert mapping.apply(json.loads(document)) == json.loads(expected)


def test_mappings_reference_covers_every_transform():
    text = (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"`{name}`" in text or f"{{{name}:" in text, name


def test_the_checkpoint_example_is_what_the_hub_signs():
    from datetime import UTC, datetime

    from hub.journal_checkpoint import CheckpointSigner, journal_origin

    [example] = blocks("audit.md", "checkpoint")
    body, signature = example.split("\n\n")
    signer = CheckpointSigner(journal_origin("33063"), b"any key")
    made = signer.sign(1520, "abcdef1234567890" * 4, datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    assert made.note.split("\n\n")[0] == body.rstrip("\n")
    assert made.note.split("\n\n")[1].startswith(
        signature.split(" ")[0] + " " + signature.split(" ")[1] + " "
    )
