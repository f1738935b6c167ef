"""The shipped master-data event flow, end to end: a steward merges two golden records the école
knows as two family files, the worker runs flows/citizen-merge-event.yaml, the école sandbox (its
real REST API) shows the two files as one person; an unmerge splits them back; the same event run
again after a worker's death makes no second link; systems the event does not concern are not
called; and no client can file the event flow itself."""

from __future__ import annotations

import json
import secrets
import string
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from hub.cli import app
from hub.db.master_models import XREFS
from hub.db.models import JournalEntry, OutboxMessage, Request
from sandbox.ecole.app import DEFAULT_TOKEN
from tests.conftest import CONFIG

FLOW = "citizen-merge-event"


def _surname() -> str:
    """A surname no other test of the session gave the école sandbox (its state is shared)."""
    return "Lefèvre-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(8)).capitalize()


@pytest.fixture
def ecole_api(sandbox) -> httpx.Client:
    with httpx.Client(
        base_url=sandbox.urls["ecole"], headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}, timeout=10
    ) as client:
        yield client


def _import(tmp_path: Path, monkeypatch, database_url: str, system: str, records: list[dict]) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    path = tmp_path / f"{system}.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["citizens", "import", "--system", system, str(path), "-c", str(CONFIG)])
    assert result.exit_code == 0, result.output


def _golden_ids(hub, local_ids: list[str]) -> list[str]:
    query = select(XREFS.c.local_id, XREFS.c.golden_id).where(XREFS.c.local_id.in_(local_ids))
    with hub.db.sessions() as session:
        found = {row.local_id: row.golden_id for row in session.execute(query)}
    return [found[local_id] for local_id in local_ids]


def _finished(hub, request_id: str, timeout_s: float = 30.0) -> Request:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with hub.db.sessions() as session:
            request = session.get(Request, request_id)
            if request.status in ("completed", "failed", "rejected"):
                request.events  # noqa: B018 - loaded before the session closes
                return request
        time.sleep(0.05)
    raise AssertionError(f"event request {request_id} still {request.status}")


def _timeline(hub, request_id: str) -> list[tuple[str, str, str | None]]:
    with hub.db.sessions() as session:
        return [(e.step, e.outcome, e.detail) for e in session.get(Request, request_id).events]


def _links_sent(hub, request_id: str) -> list[JournalEntry]:
    with hub.db.sessions() as session:
        return list(
            session.scalars(
                select(JournalEntry)
                .where(JournalEntry.request_id == request_id, JournalEntry.direction == "outbound")
                .order_by(JournalEntry.id)
            )
        )


def _records_of(ecole_api: httpx.Client, citizen_id: str) -> set[str]:
    answer = ecole_api.get(f"/citizens/{citizen_id}")
    assert answer.status_code == 200, answer.text
    return {record["id"] for record in answer.json()["records"]}


def test_a_steward_merge_and_unmerge_reach_the_ecole_over_its_api_once(
    live_hub, sandbox, ecole_api, tmp_path, monkeypatch, database_url
):
    hub, state = live_hub.hub, sandbox.states["ecole"]
    surname = _surname()
    # The école holds the same mother twice: a file from 2019 and one opened with a typo'd birth date.
    files = [
        ecole_api.post(
            "/families",
            json={"responsible": {"birth_name": surname, "first_names": first, "birth_date": born}},
        ).json()["id"]
        for first, born in (("Élodie", "1985-03-14"), ("Elodie Marie", "1985-04-13"))
    ]
    _import(
        tmp_path,
        monkeypatch,
        database_url,
        "ecole",
        [
            {
                "local_id": files[0],
                "birth_name": surname,
                "given_names": ["Élodie"],
                "birth_date": "1985-03-14",
                "sex": "F",
                "address": "12 rue des Lilas",
                "postal_code": "33000",
                "city": "Bordeaux",
            },
            {
                "local_id": files[1],
                "birth_name": surname,
                "given_names": ["Elodie", "Marie"],
                "birth_date": "1985-04-13",
                "sex": "F",
                "address": "4 cours Victor Hugo",
                "postal_code": "33800",
                "city": "Bordeaux",
            },
        ],
    )
    survivor, absorbed = _golden_ids(hub, files)
    assert survivor != absorbed  # two golden records, as the école has two files
    links_before = state.counters["citizen_links_received"]
    steward = hub.clients.add("steward-events", ["stewardship:write"])

    with live_hub.client(steward) as client:
        merged = client.post(f"/v1/citizens/{survivor}/merge", json={"other": absorbed})
    assert merged.status_code == 200, merged.text
    notice = merged.json()["notice_request_id"]
    request = _finished(hub, notice)
    assert (request.flow, request.status, request.client) == (FLOW, "completed", "hub:master-data")
    assert request.context["ecole_merged"]["applied_to"] == sorted(files)
    # The école, asked over its own API, has both files as the one person the hub knows.
    assert _records_of(ecole_api, survivor) == set(files)
    assert state.counters["citizen_links_received"] == links_before + 1
    timeline = _timeline(hub, notice)
    assert ("tell-ecole-merged", "ok", "ecole.LinkCitizenRecords") in timeline
    [skipped] = [event for event in timeline if event[0] == "tell-ecole-unmerged"]
    assert skipped[1] == "skipped" and "$.data.event equals 'citizen.unmerged'" in skipped[2]
    [sent] = _links_sent(hub, notice)
    assert (sent.system, sent.operation, sent.outcome) == ("ecole", "LinkCitizenRecords", "ok")
    assert (sent.purpose, sent.legal_basis, sent.citizen_ref) == (
        "referentiel_usagers",
        "public_task",
        survivor,
    )
    assert surname not in repr(vars(sent))  # identifiers and digests only in the journal

    # The worker dies right after the call, before its checkpoint: the next worker runs the step
    # again with the same idempotency key, and the école makes no second link.
    replays_before = state.idempotency.replays
    with hub.db.sessions() as session, session.begin():
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.request_id == notice)
            .values(
                state="pending", step=0, lease_until=None, claimed_by=None, available_at=request.created_at
            )
        )
        session.execute(
            update(Request)
            .where(Request.id == notice)
            .values(status="processing", completed_at=None, context={})
        )
    hub.wake_workers()
    assert _finished(hub, notice).status == "completed"
    first, again = _links_sent(hub, notice)
    assert again.operation == "LinkCitizenRecords" and again.payload_digest == first.payload_digest
    assert state.counters["citizen_links_received"] == links_before + 1
    assert state.idempotency.replays == replays_before + 1

    with live_hub.client(steward) as client:
        split = client.post(f"/v1/citizens/{survivor}/unmerge", json={"restore": absorbed})
    assert split.status_code == 200, split.text
    undone = _finished(hub, split.json()["notice_request_id"])
    assert undone.status == "completed" and undone.body["data"]["event"] == "citizen.unmerged"
    assert _records_of(ecole_api, survivor) == {files[0]}
    assert _records_of(ecole_api, absorbed) == {files[1]}
    [sent] = _links_sent(hub, undone.id)
    assert (sent.operation, sent.purpose, sent.outcome) == ("LinkCitizenRecords", "referentiel_usagers", "ok")
    assert state.counters["citizen_links_received"] == links_before + 2


def test_a_merge_the_ecole_has_no_record_of_calls_no_system(
    live_hub, sandbox, tmp_path, monkeypatch, database_url
):
    """Two registry records merged: the école is not in the event's systems, état civil is, but
    the registry has no interface for identity links (see the flow file): nothing is called."""
    hub, state = live_hub.hub, sandbox.states["ecole"]
    surname = _surname()
    _import(
        tmp_path,
        monkeypatch,
        database_url,
        "etat_civil",
        [
            {
                "local_id": "N-33063-1990-0001",
                "birth_name": surname,
                "given_names": ["Paul"],
                "birth_date": "1990-07-02",
                "sex": "M",
                "birth_place": "33063",
            },
            {
                "local_id": "N-2A004-1991-0002",
                "birth_name": surname,
                "given_names": ["Antoine"],
                "birth_date": "1991-01-20",
                "sex": "M",
                "birth_place": "2A004",
            },
        ],
    )
    survivor, absorbed = _golden_ids(hub, ["N-33063-1990-0001", "N-2A004-1991-0002"])
    links_before = state.counters["citizen_links_received"]
    steward = hub.clients.add("steward-registry", ["stewardship:write"])
    with live_hub.client(steward) as client:
        merged = client.post(f"/v1/citizens/{survivor}/merge", json={"other": absorbed}).json()
    request = _finished(hub, merged["notice_request_id"])
    assert request.status == "completed" and request.body["data"]["systems"] == ["etat_civil"]
    assert [(step, outcome) for step, outcome, _ in _timeline(hub, request.id)][-3:] == [
        ("tell-ecole-merged", "skipped"),
        ("tell-ecole-unmerged", "skipped"),
        ("told", "ok"),
    ]
    assert _links_sent(hub, request.id) == []
    assert state.counters["citizen_links_received"] == links_before


def test_no_client_can_file_the_event_flow(live_api):
    """Filed by a client, the event flow would make the hub tell the école that two people are one."""
    body = {
        "flow": FLOW,
        "citizen": {
            "birth_name": "Martin",
            "given_names": ["Léa"],
            "birth_date": "1990-01-01",
            "sex": "F",
            "birth_place": {"insee_code": "33063", "city": "Bordeaux"},
        },
        "data": {
            "event": "citizen.merged",
            "event_id": 1,
            "golden_id": "a",
            "other_golden_id": "b",
            "moved": [],
            "cross_references": [{"system": "ecole", "local_id": "FAM-000001"}],
            "systems": ["ecole"],
        },
    }
    with live_api.client() as client:
        refused = client.post("/v1/requests", json=body, headers={"Idempotency-Key": "forged-merge"})
        unknown = client.post("/v1/requests", json={**body, "flow": "nope"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "flow_not_requestable"
    assert FLOW not in unknown.json()["error"]["details"]["known_flows"]
    with live_api.hub.db.sessions() as session:
        assert session.scalars(select(Request).where(Request.flow == FLOW)).all() == []
