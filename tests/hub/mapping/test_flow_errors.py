"""A message that fails its mapping fails the request with a permanent error code, not a crash."""

from __future__ import annotations

from sqlalchemy import select

from hub.db.models import OutboxMessage
from hub.mapping import load_mapping
from hub.mapping.tables import load_tables
from tests.conftest import ROOT, sample
from tests.hub.test_birth_certificate_flow import acts_for, wait_for

ANSWER = "etat-civil/act-request-created"


def test_an_answer_the_mapping_cannot_read_fails_the_request_with_mapping_failed(live_hub, sandbox, tmp_path):
    # The engineer's answer mapping does not know the registry's PENDING status (its table stops
    # at ISSUED/REJECTED): the registry took the request, but the hub cannot say where it stands.
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "act-request-statuses.yaml").write_text(
        "table: act-request-statuses\nvalues: {ISSUED: completed, REJECTED: rejected}\n", encoding="utf-8"
    )
    flow = live_hub.hub.flows["birth-certificate"]
    shipped = ROOT / "mappings" / "etat-civil" / "act-request-created.yaml"
    flow.mappings[ANSWER] = load_mapping(shipped, tables=load_tables(tmp_path / "tables"), fragments={})
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=sample("02-de-la-fontaine-extrait-filiation")).json()[
            "id"
        ]
        state = wait_for(client, request_id)
    assert state["status"] == "failed"
    [failure] = [event for event in state["timeline"] if event["outcome"] == "failed"]
    assert failure["step"] == "request-copy"
    assert failure["detail"] == (
        f"mapping {ANSWER}: field status from $.response.status: code not in table act-request-statuses "
        "(value 'P…' (7 chars))"
    )
    assert len(acts_for(sandbox, request_id)) == 1  # the call was made once, not retried
    with live_hub.hub.db.sessions() as session:
        message = session.scalars(select(OutboxMessage).where(OutboxMessage.request_id == request_id)).one()
    assert message.state == "dead" and message.last_error.startswith("mapping_failed")
