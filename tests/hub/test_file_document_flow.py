"""A flow files a justificatif the portal attached (base64 in the request) into the GED, on a
copy of the shipped configuration, against the sandbox over real sockets."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

import pytest

from hub.runtime import build_hub
from tests.conftest import ROOT, _live, sample
from tests.connectors.test_connect_a_system import wait_for

FLOW = """\
flow: justificatif-domicile
title: Dépôt d'un justificatif de domicile
purpose: ged_dossiers
input:
  type: object
  additionalProperties: false
  required: [justificatif]
  properties:
    justificatif:
      type: object
      additionalProperties: false
      required: [filename, content]
      properties:
        filename: {type: string, maxLength: 100}
        content: {type: string, contentEncoding: base64, maxLength: 100000}
steps:
  - id: file
    file_document:
      system: ged
      content: {base64: $.data.justificatif.content}
      metadata: test/justificatif-fields
      content_type: application/pdf
      data_categories: [identite, documents_justificatifs]
    save_as: justificatif
  - id: done
    set_status: completed
"""

FIELDS = """\
mapping: test/justificatif-fields
source: {name: request}
target: {name: GED metadata}
fields:
  title: {value: Justificatif de domicile}
  type: {value: justificatif}
  filename: {path: $.data.justificatif.filename}
"""


@pytest.fixture
def live(tmp_path: Path, sandbox, knobs_reset, database_url):
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "flows" / "justificatif-domicile.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "mappings" / "test").mkdir()
    (tmp_path / "mappings" / "test" / "justificatif-fields.yaml").write_text(FIELDS, encoding="utf-8")
    hub = build_hub(tmp_path / "config" / "hub.yaml", url=database_url, migrate=False)
    yield from _live(hub, with_worker=True)
    hub.close()


def body(content: str) -> dict:
    return {
        "flow": "justificatif-domicile",
        "citizen": sample("01-lefevre-copie-integrale")["citizen"],
        "data": {"justificatif": {"filename": "facture edf.pdf", "content": content}},
    }


def test_an_attached_justificatif_is_filed_and_the_request_keeps_its_claim_check(live, sandbox):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 64
    with live.client() as client:
        request_id = client.post("/v1/requests", json=body(base64.b64encode(pdf).decode())).json()["id"]
        state = wait_for(client, request_id, {"completed"})
    assert state["status"] == "completed", state
    claim = state["result"]["justificatif"]
    assert claim["sha256"] == hashlib.sha256(pdf).hexdigest() and claim["size"] == len(pdf)
    ged = sandbox.states["ged"]
    assert ged.content_path(claim["document_id"]).read_bytes() == pdf
    filed = ged.documents[claim["document_id"]]
    assert (filed["type"], filed["request_ref"], filed["filename"]) == (
        "justificatif",
        request_id,
        "facture edf.pdf",
    )


def test_an_attachment_that_is_not_base64_fails_the_request_naming_the_path(live, sandbox):
    with live.client() as client:
        request_id = client.post("/v1/requests", json=body("not base64 at all!")).json()["id"]
        state = wait_for(client, request_id, {"completed"})
    assert state["status"] == "failed"
    assert state["error"]["code"] == "mapping_failed"
    assert "$.data.justificatif.content" in state["error"]["message"]
    assert "not base64 at all" not in state["error"]["message"]
    assert sandbox.states["ged"].documents == {} or all(
        d["request_ref"] != request_id for d in sandbox.states["ged"].documents.values()
    )
