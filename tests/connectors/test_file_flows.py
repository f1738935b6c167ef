"""SFTP and GED systems called from flows: a payment file's acknowledgement becomes the request's status."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from hub.runtime import build_hub
from tests.conftest import ROOT, _live, sample

FLOW = """
flow: paiement-aide
title: Paiement d'une aide sociale
purpose: facturation_aides
input:
  type: object
  additionalProperties: false
  required: [lines]
  properties:
    lines: {type: array, minItems: 1, maxItems: 10, items: {type: string, maxLength: 500}}
steps:
  - id: pay
    call: {system: finances, operation: SendAidPaymentFile, mapping: paiement/lines}
    save_as: file
  - id: submitted
    set_status: submitted
  - id: acknowledged
    wait_until:
      system: finances
      operation: GetFileStatus
      message: file
      until: {path: $.response.status, equals: ACCEPTED}
      fail_when: {path: $.response.status, equals: REJECTED}
      every_s: 0.1
      timeout_s: 120
    save_as: acknowledgement
  - id: paid
    set_status: completed
"""

# The lines arrive rendered here, so a test can send a line the finance software rejects; the
# shipped aid-payment flow renders its line with the mapping finances/aid-payment-line.
MAPPING = """
mapping: paiement/lines
description: The payment lines of the request -> the aid-payment file.
fields:
  lines: {path: $.data.lines, required: true}
"""

GED_FLOW = """
flow: pieces-dossier
title: Pièces d'un dossier
purpose: ged_dossiers
input: {type: object, additionalProperties: false, properties: {}}
steps:
  - id: find
    call: {system: ged, operation: SearchDocuments, mapping: pieces/criteria}
    save_as: documents
  - id: done
    set_status: completed
"""

GED_MAPPING = """
mapping: pieces/criteria
description: Documents filed for the citizen.
fields:
  citizen_ref: {value: cit-flow-test}
"""


@pytest.fixture
def live(tmp_path: Path, sandbox, knobs_reset, database_url):
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "flows" / "paiement-aide.yaml").write_text(FLOW)
    (tmp_path / "flows" / "pieces-dossier.yaml").write_text(GED_FLOW)
    for name, text in (("paiement/lines", MAPPING), ("pieces/criteria", GED_MAPPING)):
        path = tmp_path / "mappings" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    hub = build_hub(tmp_path / "config" / "hub.yaml", url=database_url, migrate=False)
    yield from _live(hub, with_worker=True)
    hub.close()


def run(live, flow: str, data: dict) -> dict:
    body = {"flow": flow, "citizen": sample("03-ndiaye-extrait-sans-filiation")["citizen"], "data": data}
    with live.client() as client:
        response = client.post("/v1/requests", json=body)
        assert response.status_code == 202, response.text
        request_id = response.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = client.get(f"/v1/requests/{request_id}").json()
            if state["status"] in ("completed", "rejected", "failed"):
                return state
            time.sleep(0.05)
    raise AssertionError(f"request still {state['status']}")


def test_accepted_payment_file_completes_the_request(live, sandbox) -> None:
    state = run(
        live, "paiement-aide", {"lines": ["AIDE-1;Ndiaye;Awa;FR7630001007941234567890185;150.00;AE03;"]}
    )
    assert state["status"] == "completed", state
    assert state["result"]["acknowledgement"]["status"] == "ACCEPTED"
    receipt = state["result"]["file"]
    assert receipt["name"].startswith("aides-") and len(receipt["sha256"]) == 64
    assert any(p["name"] == receipt["name"] for p in sandbox.states["finances"].processed)


def test_rejected_payment_file_rejects_the_request(live) -> None:
    state = run(
        live, "paiement-aide", {"lines": ["AIDE-2;Ndiaye;Awa;FR7630001007941234567890185;cent euros;AE03;"]}
    )
    assert state["status"] == "rejected", state
    steps = [event["step"] for event in state["timeline"]]
    assert steps[-1] == "acknowledged"


def test_shipped_aid_payment_flow_writes_the_line_its_mapping_renders(live, sandbox) -> None:
    state = run(
        live,
        "aid-payment",
        {"aid": "aide_energie", "amount": 150.5, "iban": "fr76 3000 6000 0112 3456 7890 189"},
    )
    assert state["status"] == "completed", state
    assert [event["step"] for event in state["timeline"]][-2:] == ["acknowledged", "paid"]
    receipt = state["result"]["file"]
    archived = sandbox.states["finances"].archive / receipt["name"]
    assert archived.read_text(encoding="utf-8").splitlines() == [
        "reference;nom;prenom;iban;montant;aide;tiers",
        f"{state['id']};N'DIAYE;AISSATOU;FR7630006000011234567890189;150,50;AE03;",  # not a payer yet
    ]


def test_ged_search_from_a_flow(live) -> None:
    state = run(live, "pieces-dossier", {})
    assert state["status"] == "completed", state
    assert state["result"]["documents"]["count"] == 0


def test_the_aid_payment_finds_a_citizen_the_finances_know_under_another_spelling(live, sandbox) -> None:
    """The finance software knows Aïssatou N'Diaye as "NDIAYE Aissatou": the démarche resolves
    her to the same golden record, its payment file is journaled under it (RGPD art. 15), and the
    line names her by the finance software's own payer id."""
    from sqlalchemy import select

    from hub.citizens import Citizens
    from hub.db.master_models import XREFS
    from hub.db.models import JournalEntry, Request
    from master_data.records import IdentityRecord

    known = IdentityRecord(
        "finances",
        "TIERS-4417",
        birth_name="NDIAYE",
        given_names=("Aissatou",),
        birth_date="1992-11-30",
        sex="F",
        birth_place="69123",
    )
    assert Citizens(live.hub).resolve(known, actor="test").outcome == "new"
    state = run(
        live,
        "aid-payment",
        {"aid": "aide_energie", "amount": 80.0, "iban": "FR7630006000011234567890189"},
    )
    assert state["status"] == "completed", state
    with live.hub.db.sessions() as session:
        golden_id = session.scalar(select(XREFS.c.golden_id).where(XREFS.c.local_id == "TIERS-4417"))
        request = session.get(Request, state["id"])
        sent = session.scalars(
            select(JournalEntry.citizen_ref).where(
                JournalEntry.request_id == state["id"], JournalEntry.system == "finances"
            )
        ).all()
    assert request.golden_id == golden_id
    assert sent and set(sent) == {golden_id}
    # and the payment goes to the payer the finance software knows: its own id, not a spelling
    receipt = state["result"]["file"]
    [line] = (
        (sandbox.states["finances"].archive / receipt["name"]).read_text(encoding="utf-8").splitlines()[1:]
    )
    assert line.endswith(";AE03;TIERS-4417")
