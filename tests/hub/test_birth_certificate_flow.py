"""The first démarche end to end: portal -> hub -> état civil (SOAP over a socket) -> status."""

from __future__ import annotations

import hashlib
import shutil
import time

import pytest
from sqlalchemy import func, select

from hub import journal
from hub.db.master_models import CrossReference
from hub.db.models import JournalEntry, OutboxMessage, Request
from tests.conftest import sample

TERMINAL = {"completed", "failed", "rejected"}


def wait_for(client, request_id: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get(f"/v1/requests/{request_id}").json()
        if state["status"] in TERMINAL:
            return state
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} still {state['status']} after {timeout_s} s")


def acts_for(sandbox, request_id: str) -> list:
    return [act for act in sandbox.states["etat_civil"].act_requests() if act.reference == request_id]


def test_birth_certificate_completes_with_the_registry_request_number(live_hub, sandbox):
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale")).json()["id"]
        state = wait_for(client, request_id)
    assert state["status"] == "completed", state
    assert state["target_system"] == "etat_civil"
    [act] = acts_for(sandbox, request_id)
    assert state["result"]["act_request"]["request_number"] == act.request_number
    assert act.copy_type == "COPIE_INTEGRALE" and act.act_number == "N-75056-1985-0412"
    steps = [(event["step"], event["outcome"]) for event in state["timeline"]]
    assert steps == [
        ("received", "ok"),
        ("processing", "ok"),
        ("request-copy", "ok"),
        ("submitted", "ok"),
        ("wait-issued", "ok"),
        ("file-issued-act", "skipped"),  # delivery by post: nothing filed in the GED
        ("completed", "ok"),
    ]
    assert "issued_act" not in state["result"]
    ged = sandbox.states["ged"].documents
    assert [d for d in ged.values() if d["request_ref"] == request_id] == []


def test_the_copies_and_the_reason_the_citizen_asked_reach_the_registry(live_hub, sandbox):
    """Sample 04 asks for 2 copies: the registry must be asked for 2, not the default one."""
    body = sample("04-santoni-corse")
    body["data"]["reason"] = "Dossier  de retraite"
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        state = wait_for(client, request_id)
    assert state["status"] == "completed", state
    [act] = acts_for(sandbox, request_id)
    assert (act.copies, act.reason) == (2, "Dossier de retraite")
    assert state["result"]["act_request"]["copies"] == 2  # what the registry said it will issue


def test_the_issued_act_is_filed_in_the_ged_and_the_request_keeps_only_its_claim_check(live_hub, sandbox):
    body = sample("02-de-la-fontaine-extrait-filiation")
    body["data"]["delivery"] = "espace_citoyen"  # delivered into the citizen's online space
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        state = wait_for(client, request_id)
    assert state["status"] == "completed", state
    claim = state["result"]["issued_act"]
    assert set(claim) == {"system", "document_id", "sha256", "size", "content_type"}
    ged = sandbox.states["ged"]
    filed = ged.documents[claim["document_id"]]
    content = ged.content_path(claim["document_id"]).read_bytes()
    assert hashlib.sha256(content).hexdigest() == claim["sha256"] == filed["sha256"]
    assert filed["request_ref"] == request_id and filed["type"] == "acte"
    assert filed["citizen_ref"] == state_golden_id(live_hub, request_id)  # a pseudonym, not a name
    [act] = acts_for(sandbox, request_id)
    assert f"<numeroDemandeRegistre>{act.request_number}</numeroDemandeRegistre>".encode() in content
    assert b"FONTAINE" not in content.upper()  # references only, never the identity
    [row] = [r for r in _outbound(live_hub, request_id) if r.system == "ged"]
    assert (row.operation, row.outcome, row.purpose) == ("FileDocument", "ok", "etat_civil_delivrance_actes")


def state_golden_id(live_hub, request_id: str) -> str:
    with live_hub.hub.db.sessions() as session:
        return session.get(Request, request_id).golden_id


def test_every_exchange_is_journaled_with_purpose_and_citizen_reference(live_hub):
    with live_hub.client() as client:
        body = sample("04-santoni-corse")
        body["data"]["delivery"] = "espace_citoyen"  # the GED filing is an exchange too
        request_id = client.post("/v1/requests", json=body).json()["id"]
        assert wait_for(client, request_id)["status"] == "completed"
    journal.seal(live_hub.hub.db, live_hub.hub.journal_key)
    with live_hub.hub.db.sessions() as session:
        rows = session.scalars(
            select(JournalEntry).where(JournalEntry.request_id == request_id).order_by(JournalEntry.seq)
        ).all()
    assert [(r.direction, r.system, r.operation, r.outcome) for r in rows] == [
        ("inbound", "hub", "POST /v1/requests (birth-certificate)", "accepted"),
        ("outbound", "etat_civil", "RequestActCopy", "ok"),
        ("outbound", "etat_civil", "GetActRequestStatus", "ok"),
        ("outbound", "ged", "FileDocument", "ok"),
    ]
    # The intake journals the identity's pseudonym; from the first call on, the worker has resolved
    # the citizen's golden id, and the pseudonym is the portal's cross-reference to it.
    with live_hub.hub.db.sessions() as session:
        request = session.get(Request, request_id)
        xref = session.get(CrossReference, ("portal", rows[0].citizen_ref))
    assert rows[0].citizen_ref.startswith("cit_")
    assert {r.citizen_ref for r in rows[1:]} == {request.golden_id} and xref.golden_id == request.golden_id
    assert all(
        r.purpose == "etat_civil_delivrance_actes" and r.legal_basis == "legal_obligation" for r in rows
    )
    assert all(r.response_digest for r in rows[1:])
    assert journal.verify(live_hub.hub.db, live_hub.hub.journal_key).ok


def test_an_act_the_registry_refuses_ends_rejected(live_hub):
    body = sample("01-lefevre-copie-integrale")
    body["citizen"].update(
        birth_name="Moreau",
        given_names=["Hélène", "Françoise"],
        birth_date="1955-12-25",
        birth_place={"insee_code": "13055"},
        sex="F",
    )
    with live_hub.client() as client:
        state = wait_for(client, client.post("/v1/requests", json=body).json()["id"])
    assert state["status"] == "rejected"
    assert state["timeline"][-1]["outcome"] == "rejected"


def test_unknown_person_is_a_permanent_failure_dead_lettered(live_hub):
    body = sample("01-lefevre-copie-integrale")
    body["citizen"]["birth_name"] = "Inconnu"
    with live_hub.client() as client:
        state = wait_for(client, client.post("/v1/requests", json=body).json()["id"])
    assert state["status"] == "failed"
    assert state["error"]["code"] == "RECORD_NOT_FOUND"
    with live_hub.hub.db.sessions() as session:
        message = session.scalar(select(OutboxMessage).where(OutboxMessage.request_id == state["id"]))
    assert message.state == "dead" and "RECORD_NOT_FOUND" in message.last_error


def test_registry_down_for_a_while_then_back_delivers_each_request_once(live_hub, sandbox):
    sandbox.knobs["etat_civil"].down_for(1.5)
    names = [
        "01-lefevre-copie-integrale",
        "02-de-la-fontaine-extrait-filiation",
        "03-ndiaye-extrait-sans-filiation",
        "05-garcia-lopez-ne-a-l-etranger",
        "06-dubois-enfant",
    ]
    with live_hub.client() as client:
        ids = [client.post("/v1/requests", json=sample(name)).json()["id"] for name in names]
        states = [wait_for(client, request_id, timeout_s=60) for request_id in ids]
    assert [s["status"] for s in states] == ["completed"] * len(names)
    assert all(len(acts_for(sandbox, request_id)) == 1 for request_id in ids)
    retried = [s for s in states if any(e["outcome"] == "retry" for e in s["timeline"])]
    assert retried, "the outage should have caused at least one retry"
    with live_hub.hub.db.sessions() as session:
        failures = session.scalars(
            select(JournalEntry).where(JournalEntry.outcome == "transient_error")
        ).all()
    assert failures and all(f.system == "etat_civil" for f in failures)
    # a message put back to retry was released, not lost: no attempt is reported interrupted
    with live_hub.hub.db.sessions() as session:
        assert session.scalar(select(func.count()).where(JournalEntry.outcome == "interrupted")) == 0


@pytest.fixture
def patient_ged_hub(tmp_path, sandbox, knobs_reset, database_url):
    """The shipped configuration with a GED retry policy that outlasts a short outage for sure
    (the default's five jittered attempts may all fall within it)."""
    from hub.runtime import build_hub
    from tests.conftest import ROOT, _live

    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    config = tmp_path / "config" / "hub.yaml"
    text = config.read_text(encoding="utf-8")
    ged_key = "      api_key: ${env:HUB_GED_KEY}\n"
    assert ged_key in text
    policy = (
        "    retry: {max_attempts: 30, backoff_initial_s: 0.1, backoff_max_s: 0.3, max_elapsed_s: 60}\n"
        "    breaker: {failures: 5, reset_s: 0.5}\n"
    )
    config.write_text(text.replace(ged_key, ged_key + policy), encoding="utf-8")
    hub = build_hub(config, url=database_url, migrate=False)
    yield from _live(hub, with_worker=True)
    hub.close()


def test_ged_down_for_a_while_then_back_files_the_issued_act_once(patient_ged_hub, sandbox):
    """A GED outage is transient like any back-end's: the filing step is retried with the GED's
    retry policy, not dead-lettered, and the idempotency key files the act once."""
    body = sample("02-de-la-fontaine-extrait-filiation")
    body["data"]["delivery"] = "espace_citoyen"
    sandbox.knobs["ged"].down_for(1.5)
    with patient_ged_hub.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        state = wait_for(client, request_id, timeout_s=60)
    assert state["status"] == "completed", (state["error"], state["timeline"])
    assert any(e["step"] == "file-issued-act" and e["outcome"] == "retry" for e in state["timeline"])
    ged = sandbox.states["ged"].documents
    [filed] = [d for d in ged.values() if d["request_ref"] == request_id]
    assert filed["sha256"] == state["result"]["issued_act"]["sha256"]
    assert len(acts_for(sandbox, request_id)) == 1
    ged_calls = [r for r in _outbound(patient_ged_hub, request_id) if r.system == "ged"]
    assert "transient_error" in {r.outcome for r in ged_calls}
    assert [r.outcome for r in ged_calls].count("ok") == 1


def test_polling_waits_for_the_registry_to_issue_the_act(live_hub, sandbox):
    registry = sandbox.states["etat_civil"]
    registry.issue_delay_s = 1.2
    try:
        with live_hub.client() as client:
            request_id = client.post("/v1/requests", json=sample("06-dubois-enfant")).json()["id"]
            time.sleep(0.5)
            assert client.get(f"/v1/requests/{request_id}").json()["status"] == "submitted"
            state = wait_for(client, request_id)
    finally:
        registry.issue_delay_s = 0.0
    assert state["status"] == "completed"
    polls = [r for r in _outbound(live_hub, request_id) if r.operation == "GetActRequestStatus"]
    assert len(polls) >= 2, "the first poll finds the act still pending"
    # a message the worker put back to wait was released: its next claim recovers nothing
    assert all(r.outcome == "ok" for r in _outbound(live_hub, request_id))


def _outbound(live_hub, request_id: str) -> list[JournalEntry]:
    with live_hub.hub.db.sessions() as session:
        return session.scalars(
            select(JournalEntry).where(
                JournalEntry.request_id == request_id, JournalEntry.direction == "outbound"
            )
        ).all()


def test_attempts_are_numbered_across_redeliveries(live_hub, sandbox):
    sandbox.knobs["etat_civil"].down_for(1.0)
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=sample("02-de-la-fontaine-extrait-filiation")).json()[
            "id"
        ]
        assert wait_for(client, request_id)["status"] == "completed"
    # A call the open breaker refused never reached the wire: it is journaled (outcome rejected,
    # CIRCUIT_OPEN) with the number the next real attempt then takes; the real attempts count up.
    calls = [
        r
        for r in _outbound(live_hub, request_id)
        if r.operation == "RequestActCopy" and r.error_code != "CIRCUIT_OPEN"
    ]
    attempts = sorted(r.attempt for r in calls)
    assert len(attempts) >= 2
    assert attempts == list(range(1, len(attempts) + 1))
    assert [r.outcome for r in sorted(calls, key=lambda r: r.attempt)][-1] == "ok"


def test_dead_letter_is_replayed_by_an_operator_once_the_cause_is_fixed(live_hub, sandbox, monkeypatch):
    from hub.deadletters import list_dead, replay
    from sandbox.etat_civil.registry import BirthRecord

    body = sample("06-dubois-enfant")
    body["citizen"].update(birth_name="Nouveau", given_names=["Léa"], birth_date="2020-04-01")
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        assert wait_for(client, request_id)["error"]["code"] == "RECORD_NOT_FOUND"
        assert [d.request_id for d in list_dead(live_hub.hub)] == [request_id]
        # the registry clerk transcribes the birth; the operator replays the request
        registry = sandbox.states["etat_civil"]
        record = BirthRecord.from_seed(
            {
                "birth_name": "Nouveau",
                "given_names": "Léa",
                "birth_date": "2020-04-01",
                "birth_place_insee": "33063",
                "sex": "F",
                "act_number": "N-33063-2020-0101",
            }
        )
        monkeypatch.setattr(registry, "records", [*registry.records, record])
        replay(live_hub.hub, request_id, operator="agent.dupont")
        state = wait_for(client, request_id)
    assert state["status"] == "completed" and state["error"] is None
    assert "replay" in [event["step"] for event in state["timeline"]]
    assert list_dead(live_hub.hub) == []
    with live_hub.hub.db.sessions() as session:
        audit = session.scalar(select(JournalEntry).where(JournalEntry.operation == "replay dead letter"))
        golden_id = session.scalar(select(Request.golden_id).where(Request.id == request_id))
        calls = session.scalars(
            select(JournalEntry.citizen_ref).where(
                JournalEntry.request_id == request_id, JournalEntry.direction == "outbound"
            )
        ).all()
    assert audit.client == "agent.dupont" and audit.request_id == request_id
    # The replay names the citizen as every call for the request does: by the golden record.
    assert golden_id is not None and audit.citizen_ref == golden_id and set(calls) == {golden_id}
    assert audit.purpose == "etat_civil_delivrance_actes" and audit.legal_basis


def test_replaying_a_live_request_is_refused(live_api):
    from hub.deadletters import NotDead, replay

    with live_api.client() as client:
        request_id = client.post("/v1/requests", json=sample("06-dubois-enfant")).json()["id"]
    with pytest.raises(NotDead):
        replay(live_api.hub, request_id, operator="agent")


def test_a_citizen_born_abroad_may_give_the_country_by_name(live_hub, sandbox):
    """The portal knows "Espagne", not 99134: the hub files the request with the code the registry
    knows the birth under."""
    body = sample("05-garcia-lopez-ne-a-l-etranger")
    body["citizen"]["birth_place"] = {"city": "Madrid", "country": "Espagne"}
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        assert wait_for(client, request_id)["status"] == "completed"
        body["citizen"]["birth_place"] = {"country": "Atlantide"}
        refused = client.post("/v1/requests", json=body)
    assert len(acts_for(sandbox, request_id)) == 1
    with live_hub.hub.db.sessions() as session:
        assert session.get(Request, request_id).body["citizen"]["birth_place"]["insee_code"] == "99134"
    assert refused.status_code == 422
    [detail] = refused.json()["error"]["details"]
    assert detail["field"] == "citizen.birth_place" and "unknown country 'Atlantide'" in detail["message"]
