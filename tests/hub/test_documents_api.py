"""An agent retrieves the document a request filed in the GED: real sockets end to end (portal ->
hub -> état civil SOAP -> GED REST -> agent), claim check verified, every attempt journaled."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy import select

from hub.db.models import JournalEntry
from tests.conftest import sample
from tests.hub.test_birth_certificate_flow import wait_for


def agent_key(live_hub, *scopes: str) -> str:
    return live_hub.hub.clients.add(f"agent-{'-'.join(s.replace(':', '') for s in scopes)}", list(scopes))


def filed(live_hub) -> tuple[str, dict]:
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=sample("03-ndiaye-extrait-sans-filiation")).json()["id"]
        state = wait_for(client, request_id)
    assert state["status"] == "completed", state
    return request_id, state["result"]["issued_act"]


def test_an_agent_retrieves_the_filed_act_with_its_digest_checked_and_journaled(live_hub, sandbox):
    request_id, claim = filed(live_hub)
    with live_hub.client(agent_key(live_hub, "documents:read")) as agent:
        response = agent.get(f"/v1/requests/{request_id}/documents/{claim['document_id']}")
    assert response.status_code == 200, response.text
    assert hashlib.sha256(response.content).hexdigest() == claim["sha256"]
    assert response.headers["x-content-sha256"] == claim["sha256"]
    assert response.headers["content-type"].startswith("application/xml")
    with live_hub.hub.db.sessions() as session:
        rows = session.scalars(
            select(JournalEntry)
            .where(JournalEntry.client == "agent-documentsread")
            .order_by(JournalEntry.seq)
        ).all()
    assert [(r.direction, r.system, r.operation, r.outcome) for r in rows] == [
        ("outbound", "ged", "RetrieveDocument", "ok"),
        ("inbound", "hub", "GET /v1/requests/{id}/documents/{document_id}", "ok"),
    ]
    assert {r.request_id for r in rows} == {request_id}
    assert {r.purpose for r in rows} == {"etat_civil_delivrance_actes"}


def test_only_documents_the_request_filed_and_only_with_the_scope(live_hub, sandbox):
    request_id, claim = filed(live_hub)
    foreign = httpx.post(  # in the GED, but not filed by this request
        sandbox.urls["ged"] + "/documents",
        params={"title": "other", "type": "autre"},
        content=b"someone else's",
        headers={"X-Api-Key": sandbox.ged_api_key},
    ).json()["id"]
    with live_hub.client() as portal:  # the portal's key lacks documents:read
        assert portal.get(f"/v1/requests/{request_id}/documents/{claim['document_id']}").status_code == 403
    with live_hub.client(agent_key(live_hub, "documents:read")) as agent:
        for path in (
            f"/v1/requests/{request_id}/documents/{foreign}",
            f"/v1/requests/no-such-request/documents/{claim['document_id']}",
        ):
            response = agent.get(path)
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_bytes_changed_in_the_ged_are_refused_not_served(live_hub, sandbox):
    request_id, claim = filed(live_hub)
    ged = sandbox.states["ged"]
    ged.content_path(claim["document_id"]).write_bytes(b"<forged/>")
    ged.documents[claim["document_id"]]["sha256"] = hashlib.sha256(b"<forged/>").hexdigest()
    with live_hub.client(agent_key(live_hub, "documents:read")) as agent:
        response = agent.get(f"/v1/requests/{request_id}/documents/{claim['document_id']}")
    assert response.status_code == 502 and response.json()["error"]["code"] == "document_changed"
    assert b"forged" not in response.content


def test_the_cli_writes_the_document_for_a_named_agent_journaled(
    live_hub, sandbox, tmp_path, monkeypatch, database_url
):
    from typer.testing import CliRunner

    from hub.cli import app
    from tests.conftest import CONFIG

    request_id, claim = filed(live_hub)
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    out = tmp_path / "acte.xml"
    args = ["documents", "get", request_id, claim["document_id"], "-o", str(out), "--agent", "agent.martin"]
    result = CliRunner().invoke(app, [*args, "--config", str(CONFIG)])
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == claim["sha256"]
    refused = CliRunner().invoke(
        app, ["documents", "get", request_id, "nope", "-o", str(tmp_path / "x"), "--config", str(CONFIG)]
    )
    assert refused.exit_code == 1 and "not_found" in refused.output
    with live_hub.hub.db.sessions() as session:
        rows = session.scalars(select(JournalEntry).where(JournalEntry.client == "agent.martin")).all()
    assert {(r.system, r.operation, r.outcome) for r in rows} == {
        ("ged", "RetrieveDocument", "ok"),
        ("hub", "hub documents get", "ok"),
    }


def test_only_the_flow_filing_steps_results_are_claim_checks(hub):
    from hub.documents import filed_documents

    flow = hub.flows["birth-certificate"]
    claim = {"system": "ged", "document_id": "D-1", "sha256": "ab" * 32, "size": 3}
    lookalike = {"system": "ged", "document_id": "D-2", "sha256": "cd" * 32}  # a back-end's answer
    context = {"act_request": lookalike, "issued_act": claim, "act_status": {"status": "ISSUED"}}
    assert filed_documents(flow, context) == [claim]
    assert filed_documents(flow, {"act_request": lookalike}) == []
    assert filed_documents(flow, None) == []
