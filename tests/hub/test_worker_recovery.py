"""A worker killed mid-flow: its lease expires, another worker finishes the request, once."""

from __future__ import annotations

import itertools
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
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


@dataclass(frozen=True)
class Kill:
    """Where the worker is killed in the shipped birth-certificate flow, and what must follow."""

    knobs: dict[str, float]  # latency per system while the doomed worker runs
    after: str | None  # kill inside the slow call after this operation's answer is journaled
    # (None: once the message is claimed)
    pause_before_step: int | None  # the worker stops dead before the checkpoint to this step
    journal: list[tuple[str, str, str | None, int]]  # outbound (operation, outcome, error, attempt)
    timeline: list[tuple[str, str]]


BEFORE = [("received", "ok"), ("processing", "ok")]
KILLS = {
    "during the first call": Kill(
        {"etat_civil": 2000},
        None,
        None,
        [
            ("RequestActCopy", "interrupted", "WORKER_LOST", 1),
            ("RequestActCopy", "ok", None, 2),
            ("GetActRequestStatus", "ok", None, 1),
            ("FileDocument", "ok", None, 1),
        ],
        # the lost worker wrote no checkpoint: the survivor's run is the whole timeline
        [
            *BEFORE,
            ("request-copy", "interrupted"),
            ("request-copy", "ok"),
            ("submitted", "ok"),
            ("wait-issued", "ok"),
            ("file-issued-act", "ok"),
            ("completed", "ok"),
        ],
    ),
    "during a status poll": Kill(
        {"etat_civil": 2000},
        "RequestActCopy",
        None,
        [
            ("RequestActCopy", "ok", None, 1),
            ("GetActRequestStatus", "interrupted", "WORKER_LOST", 1),
            ("GetActRequestStatus", "ok", None, 2),
            ("FileDocument", "ok", None, 1),
        ],
        [
            *BEFORE,
            ("request-copy", "ok"),
            ("submitted", "ok"),
            ("wait-issued", "interrupted"),
            ("wait-issued", "ok"),
            ("file-issued-act", "ok"),
            ("completed", "ok"),
        ],
    ),
    "during the GED filing after a finished wait": Kill(
        {"ged": 3000},
        "GetActRequestStatus",
        None,
        [
            ("RequestActCopy", "ok", None, 1),
            ("GetActRequestStatus", "ok", None, 1),  # not polled again: the wait's answer was kept
            ("FileDocument", "interrupted", "WORKER_LOST", 1),
            ("FileDocument", "ok", None, 2),
        ],
        [
            *BEFORE,
            ("request-copy", "ok"),
            ("submitted", "ok"),
            ("wait-issued", "ok"),
            ("file-issued-act", "interrupted"),
            ("file-issued-act", "ok"),
            ("completed", "ok"),
        ],
    ),
    "between two calls": Kill(
        {},
        None,
        2,  # RequestActCopy answered, its end not journaled yet (it goes with this checkpoint)
        [
            # The outbox still names the first call and no row says it ended: it is reported as a
            # call that may have reached the registry, and made again with the same key (one act).
            ("RequestActCopy", "interrupted", "WORKER_LOST", 1),
            ("RequestActCopy", "ok", None, 2),
            ("GetActRequestStatus", "ok", None, 1),
            ("FileDocument", "ok", None, 1),
        ],
        # the lost worker's events were never written
        [
            *BEFORE,
            ("request-copy", "interrupted"),
            ("request-copy", "ok"),
            ("submitted", "ok"),
            ("wait-issued", "ok"),
            ("file-issued-act", "ok"),
            ("completed", "ok"),
        ],
    ),
    "between the status poll and the GED filing": Kill(
        {},
        None,
        3,  # RequestActCopy's end written with the checkpoint to the poll; the poll answered
        [
            ("RequestActCopy", "ok", None, 1),
            # the outbox names the poll and no row says it ended: reported, and made again
            ("GetActRequestStatus", "interrupted", "WORKER_LOST", 1),
            ("GetActRequestStatus", "ok", None, 2),
            ("FileDocument", "ok", None, 1),
        ],
        [
            *BEFORE,
            ("request-copy", "ok"),
            ("submitted", "ok"),
            ("wait-issued", "interrupted"),
            ("wait-issued", "ok"),
            ("file-issued-act", "ok"),
            ("completed", "ok"),
        ],
    ),
}


@pytest.mark.parametrize("where", list(KILLS))
def test_a_worker_killed_anywhere_in_the_flow_leaves_the_lost_call_journaled_once(
    where, live_api, sandbox, tmp_path, database_url
):
    """kill -9 of a ``hub worker`` at each kind of step of the shipped birth-certificate flow: the
    survivor journals the call that was in flight, and only that one, under its own operation and
    step, with the digest of the message it sends again; the request completes once, with one act
    at the registry and one document in the GED."""
    kill = KILLS[where]
    config = short_lease_config(tmp_path)
    body = sample("01-lefevre-copie-integrale")
    body["data"]["delivery"] = "espace_citoyen"  # the flow's every step kind, the GED filing too
    with live_api.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
    for system, latency in kill.knobs.items():
        sandbox.knobs[system].update({"latency_ms": latency})
    flag = tmp_path / "paused"
    wrapper = {}
    if kill.pause_before_step is not None:
        wrapper = {
            "module": "tests.hub.paused_worker",
            "env": {
                "HUB_TEST_PAUSE_BEFORE_STEP": str(kill.pause_before_step),
                "HUB_TEST_PAUSED_FLAG": str(flag),
            },
        }
    with worker_process(database_url, config, **wrapper) as worker:
        if kill.pause_before_step is not None:
            reached = _wait(worker, flag.exists)
        elif kill.after is not None:
            reached = _wait(worker, lambda: _answered(live_api.hub, request_id, kill.after))
        else:
            reached = _wait(worker, lambda: _claimed(live_api.hub, request_id))
        assert reached, worker.stderr.read1().decode() if worker.poll() is not None else where
        if kill.pause_before_step is None:
            time.sleep(0.5)  # inside the slow call
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    for knobs in sandbox.knobs.values():
        knobs.update({"latency_ms": 0})
    assert _outbox(live_api.hub, request_id).state == "pending"  # the dead worker never released it

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
    # One effect at each back-end: the retried call carried the same idempotency key.
    assert len(acts_for(sandbox, request_id)) == 1
    assert len([d for d in sandbox.states["ged"].documents.values() if d["request_ref"] == request_id]) == 1
    with live_api.hub.db.sessions() as session:
        calls = session.execute(
            select(
                JournalEntry.operation,
                JournalEntry.outcome,
                JournalEntry.error_code,
                JournalEntry.attempt,
                JournalEntry.payload_digest,
            )
            .where(JournalEntry.request_id == request_id, JournalEntry.direction == "outbound")
            .order_by(JournalEntry.id)
        ).all()
    assert [tuple(c[:4]) for c in calls] == kill.journal
    for lost, retry in itertools.pairwise(calls):
        if lost.outcome == "interrupted":  # the very message the lost worker sent, sent again
            assert (retry.operation, retry.payload_digest) == (lost.operation, lost.payload_digest)
    with live_api.client() as client:
        timeline = client.get(f"/v1/requests/{request_id}").json()["timeline"]
    assert [(e["step"], e["outcome"]) for e in timeline] == kill.timeline


def _wait(worker, condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and worker.poll() is None:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _answered(hub, request_id: str, operation: str) -> bool:
    with hub.db.sessions() as session:
        outcomes = session.scalars(
            select(JournalEntry.outcome).where(
                JournalEntry.request_id == request_id, JournalEntry.operation == operation
            )
        ).all()
    return "ok" in outcomes


def _outbox(hub, request_id: str) -> OutboxMessage:
    with hub.db.sessions() as session:
        return session.scalar(select(OutboxMessage).where(OutboxMessage.request_id == request_id))


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


class _Killed(BaseException):
    """The worker's process ends here: nothing after it runs, nothing catches it."""


def _lease_runs_out(hub, message_id: int) -> None:
    from datetime import timedelta

    from hub.db.models import utcnow

    with hub.db.sessions() as session:
        session.get(OutboxMessage, message_id).lease_until = utcnow() - timedelta(seconds=1)
        session.commit()


def test_a_claim_that_takes_over_and_is_lost_in_turn_is_reported_too(live_api, sandbox, monkeypatch):
    """Worker A is lost between two calls (its RequestActCopy answered, the answer's row not yet
    written); B takes over, reports A's call as possibly made, sends it again and is lost in turn
    before its next checkpoint. C reports B's call too, then completes: every send that may have
    reached the registry has its row, and the registry made one act (one idempotency key)."""
    from hub import runner as runner_module
    from hub.outbox import claim
    from hub.runner import FlowRunner

    with live_api.client() as client:
        request_id = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale")).json()["id"]
    hub = live_api.hub
    save = runner_module.save_checkpoint

    def killed_before(db, checkpoint):
        raise _Killed()

    saved = []

    def killed_at_the_second(db, checkpoint):
        if saved:
            raise _Killed()
        saved.append(save(db, checkpoint))
        return saved[-1]

    runner = FlowRunner(hub)
    [lost_a] = claim(hub.db, "worker-a", 1, lease_s=30)
    monkeypatch.setattr(runner_module, "save_checkpoint", killed_before)
    with pytest.raises(_Killed):
        runner.process(lost_a)  # RequestActCopy answered, killed before the status poll's checkpoint
    _lease_runs_out(hub, lost_a.message_id)
    [lost_b] = claim(hub.db, "worker-b", 1, lease_s=30)
    assert lost_b.interrupted == lost_a.token
    monkeypatch.setattr(runner_module, "save_checkpoint", killed_at_the_second)
    with pytest.raises(_Killed):
        runner.process(lost_b)  # its mark written, RequestActCopy sent again, killed after it
    assert saved == [True]
    _lease_runs_out(hub, lost_b.message_id)
    [survivor] = claim(hub.db, "worker-c", 1, lease_s=30)
    assert survivor.interrupted == lost_b.token
    monkeypatch.setattr(runner_module, "save_checkpoint", save)
    assert runner.process(survivor) == "done"

    assert _status(hub, request_id) == "completed"
    assert len(acts_for(sandbox, request_id)) == 1
    with hub.db.sessions() as session:
        calls = session.execute(
            select(JournalEntry.operation, JournalEntry.outcome, JournalEntry.attempt)
            .where(JournalEntry.request_id == request_id, JournalEntry.direction == "outbound")
            .order_by(JournalEntry.id)
        ).all()
    assert [tuple(c) for c in calls] == [
        ("RequestActCopy", "interrupted", 1),  # A's send, reported by B before sending again
        ("RequestActCopy", "interrupted", 1),  # B's, reported by C (attempts count failures)
        ("RequestActCopy", "ok", 2),
        ("GetActRequestStatus", "ok", 1),
    ]
    with live_api.client() as client:
        timeline = client.get(f"/v1/requests/{request_id}").json()["timeline"]
    # B's mark checkpoint wrote its report; C's run wrote its own
    assert [e["step"] for e in timeline if e["outcome"] == "interrupted"] == ["request-copy"] * 2
