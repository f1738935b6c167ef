"""A worker killed mid-flow: its lease expires, another worker finishes the request, once."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from sqlalchemy import select

from hub.db.models import JournalEntry, OutboxMessage, Request
from hub.worker import Worker
from tests.conftest import ROOT, sample, worker_process
from tests.hub.test_birth_certificate_flow import acts_for


def short_lease_config(tmp_path: Path) -> Path:
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    hub_yaml = tmp_path / "config" / "hub.yaml"
    # the shortest lease the config allows with 10 s call timeouts, so the test waits little
    hub_yaml.write_text(hub_yaml.read_text().replace("  lease_s: 30", "  lease_s: 11"))
    return hub_yaml


def test_killed_worker_mid_call_is_recovered_and_the_act_requested_once(
    live_api, sandbox, tmp_path, database_url
):
    config = short_lease_config(tmp_path)
    with live_api.client() as client:
        request_id = client.post("/v1/requests", json=sample("05-garcia-lopez-ne-a-l-etranger")).json()["id"]
    # The registry answers slowly: the worker is killed while its RequestActCopy is in flight.
    sandbox.knobs["etat_civil"].update({"latency_ms": 2000})
    with worker_process(database_url, config) as worker:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _claimed(live_api.hub, request_id):
            time.sleep(0.05)
        assert _claimed(live_api.hub, request_id), worker.stderr.read1().decode() if worker.poll() else ""
        time.sleep(0.5)  # inside the slow call
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    sandbox.knobs["etat_civil"].update({"latency_ms": 0})
    time.sleep(1.6)  # the registry finishes the call the dead worker made

    from hub.runtime import build_hub

    survivor_hub = build_hub(config, url=database_url, migrate=False)
    try:
        survivor = Worker(survivor_hub, name="survivor")
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and _status(survivor_hub, request_id) != "completed":
            survivor.run_once()
            time.sleep(0.1)
        assert _status(survivor_hub, request_id) == "completed"
    finally:
        survivor_hub.close()
    # The dead worker's call reached the registry; the survivor's retry carried the same key.
    assert len(acts_for(sandbox, request_id)) == 1
    # The dead worker never journaled its call: the survivor says it may have been made, with the
    # very message it then sent again, and numbers its own attempt after it.
    with live_api.hub.db.sessions() as session:
        calls = session.execute(
            select(
                JournalEntry.attempt,
                JournalEntry.outcome,
                JournalEntry.error_code,
                JournalEntry.payload_digest,
            )
            .where(JournalEntry.request_id == request_id, JournalEntry.operation == "RequestActCopy")
            .order_by(JournalEntry.id)
        ).all()
    assert [(c.attempt, c.outcome, c.error_code) for c in calls] == [
        (1, "interrupted", "WORKER_LOST"),
        (2, "ok", None),
    ]
    assert calls[0].payload_digest == calls[1].payload_digest
    with live_api.client() as client:
        timeline = client.get(f"/v1/requests/{request_id}").json()["timeline"]
    assert ("request-copy", "interrupted") in {(e["step"], e["outcome"]) for e in timeline}


def _claimed(hub, request_id: str) -> bool:
    with hub.db.sessions() as session:
        message = session.scalar(select(OutboxMessage).where(OutboxMessage.request_id == request_id))
        return message is not None and message.claimed_by is not None


def _status(hub, request_id: str) -> str:
    with hub.db.sessions() as session:
        return session.get(Request, request_id).status


def test_a_worker_that_stalled_past_its_lease_calls_no_back_end(live_api, sandbox):
    from hub.outbox import claim
    from hub.runner import FlowRunner

    with live_api.client() as client:
        request_id = client.post("/v1/requests", json=sample("03-ndiaye-extrait-sans-filiation")).json()["id"]
    db = live_api.hub.db
    [stalled] = claim(db, "stalled-worker", 1, lease_s=0.3)
    time.sleep(0.5)  # a long GC pause, a frozen VM...: the lease expires
    [taken_over] = claim(db, "other-worker", 1, lease_s=30)
    assert taken_over.message_id == stalled.message_id
    assert stalled.interrupted is None and taken_over.interrupted == stalled.token

    runner = FlowRunner(live_api.hub)
    assert runner.process(stalled) == "lost"
    assert acts_for(sandbox, request_id) == []  # the stalled worker sent nothing
    assert runner.process(taken_over) == "done"
    assert len(acts_for(sandbox, request_id)) == 1
    assert _status(live_api.hub, request_id) == "completed"


def test_claimed_ahead_messages_keep_their_lease_while_they_wait_for_a_slot(live_api, sandbox):
    """A worker claims a batch beyond its free slots. If the flows in hand are slow, the queued
    messages must not lose their lease: another worker would take them and report their untouched
    first call as interrupted."""
    from hub.outbox import claim

    with live_api.client() as client:
        ids = [
            client.post("/v1/requests", json=sample(name)).json()["id"]
            for name in ("01-lefevre-copie-integrale", "06-dubois-enfant")
        ]
    hub = live_api.hub
    worker = Worker(hub, name="busy", concurrency=1)
    waiting = claim(hub.db, "busy", 2, lease_s=0.6)  # short leases: the slot holder is slow
    worker._waiting.update((c.message_id, c) for c in waiting)
    worker._keep_waiting_leases()
    time.sleep(1.0)  # the claims' own leases have run out; the renewed ones hold
    assert claim(hub.db, "other", 2, lease_s=30) == []
    for item in waiting:
        worker._process_and_release(item.message_id)
    assert [_status(hub, request_id) for request_id in ids] == ["completed", "completed"]
    with hub.db.sessions() as session:
        outcomes = session.scalars(select(JournalEntry.outcome).where(JournalEntry.request_id.in_(ids))).all()
    assert "interrupted" not in outcomes and outcomes.count("ok") >= 4
