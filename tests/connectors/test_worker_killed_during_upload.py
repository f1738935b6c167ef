"""A hub worker killed in the middle of an SFTP upload: no partial file is ever visible to the
finance system, and the worker that takes the request over delivers the file once."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from sqlalchemy import select

from hub.db.models import JournalEntry, OutboxMessage, Request
from hub.runtime import build_hub
from hub.worker import Worker
from tests.conftest import ROOT, _live, sample, worker_process
from tests.connectors.test_file_flows import FLOW, MAPPING

LINES = [f"AIDE-{n};Ndiaye;Awa;FR7630001007941234567890185;{n % 90 + 10}.00;AE03;" for n in range(10)]


def project_with_short_lease(tmp_path: Path) -> Path:
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "flows" / "paiement-aide.yaml").write_text(FLOW)
    (tmp_path / "mappings" / "paiement").mkdir()
    (tmp_path / "mappings" / "paiement" / "lines.yaml").write_text(MAPPING)
    hub_yaml = tmp_path / "config" / "hub.yaml"
    hub_yaml.write_text(hub_yaml.read_text().replace("  lease_s: 30", "  lease_s: 11"))
    return hub_yaml


def test_worker_killed_mid_upload_leaves_no_visible_file_and_the_file_is_delivered_once(
    sandbox, knobs_reset, database_url, tmp_path
):
    config = project_with_short_lease(tmp_path)
    finances = sandbox.states["finances"]
    hub = build_hub(config, url=database_url, migrate=False)
    try:
        for live in _live(hub, with_worker=False):
            with live.client() as client:
                body = {
                    "flow": "paiement-aide",
                    "citizen": sample("03-ndiaye-extrait-sans-filiation")["citizen"],
                    "data": {"lines": LINES},
                }
                request_id = client.post("/v1/requests", json=body).json()["id"]
        # Every SFTP operation but reads and writes now takes 2 s: the worker is killed after its
        # bytes are written under the temporary name, before the rename.
        sandbox.knobs["finances"].update({"latency_ms": 2000})
        temporary = [None]

        def partial_written() -> bool:
            found = [
                p for p in finances.inbox.iterdir() if p.name.endswith(".part") and request_id[:8] in p.name
            ]
            temporary[0] = found[0] if found else None
            return bool(found) and found[0].stat().st_size > 0

        with worker_process(database_url, config) as worker:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not partial_written():
                assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
                time.sleep(0.02)
            assert temporary[0] is not None, "the worker never started the upload"
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        sandbox.knobs["finances"].update({"latency_ms": 0})
        time.sleep(0.3)  # the intake polls every 50 ms: it must leave the partial file alone
        assert [p.name for p in finances.inbox.iterdir()] == [temporary[0].name]
        processed_before = [p for p in finances.processed if request_id[:8] in p["name"]]
        assert processed_before == []

        survivor = Worker(hub, name="survivor")
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and _status(hub, request_id) not in ("completed", "failed"):
            survivor.run_once()
            time.sleep(0.1)
        assert _status(hub, request_id) == "completed"
        delivered = [p for p in finances.processed if request_id[:8] in p["name"]]
        assert len(delivered) == 1 and delivered[0]["accepted"] == len(LINES)
        assert not temporary[0].exists()
        with hub.db.sessions() as session:
            message = session.scalar(select(OutboxMessage).where(OutboxMessage.request_id == request_id))
            assert message.state == "done"
            outcomes = session.execute(
                select(JournalEntry.system, JournalEntry.outcome)
                .where(JournalEntry.request_id == request_id, JournalEntry.direction == "outbound")
                .order_by(JournalEntry.id)
            ).all()
        # the upload cut short by the kill is on record (it may have reached the server), then the
        # survivor's complete one and the acknowledgement's polls
        assert tuple(outcomes[0]) == ("finances", "interrupted")
        assert len(outcomes) > 1 and {tuple(o) for o in outcomes[1:]} == {("finances", "ok")}
    finally:
        hub.close()


def _status(hub, request_id: str) -> str:
    with hub.db.sessions() as session:
        return session.get(Request, request_id).status
