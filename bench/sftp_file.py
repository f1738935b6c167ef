"""A 100,000-line finance file, rendered and uploaded over SFTP: end-to-end time and memory.

The sandbox finance server runs in its own process (``python -m sandbox``). Measured in one run:

- ``hub``: lines rendered one by one by the shipped mapping ``finances/billing-line`` (a
  generator: one invoice document mapped per line), streamed by ``FinancesConnector.send_file`` into a spool
  file while hashed, uploaded through the gateway (temporary name, size check, rename); then the
  time until the finance system's acknowledgement is read back (``file_status`` = ACCEPTED);
- ``bare``: the same lines rendered the same way into a local file, then ``paramiko``'s ``putfo``
  of that file on an already open session (no hashing, no rename, no gateway).

Memory: the peak of Python allocations (tracemalloc, in separate runs) during the hub's render +
upload of a tenth, once and three times the lines: a streamed path has the same peak for the two
larger ones (the spool keeps up to 1 MiB in memory, then goes to a temporary file).

    .venv/bin/python bench/sftp_file.py [--lines 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import emit, note, ratio
from bench.connectors import Sandbox
from connectors.exchange import CallContext, NullRecorder
from connectors.finances import FinancesConnector
from connectors.gateway import Gateway, SystemPolicy
from connectors.sftp import SftpAdapter
from hub.acks import SqlAckLedger
from hub.db.engine import Database
from hub.db.migrate import upgrade
from hub.mapping import load_mapping

BILLING = load_mapping(Path(__file__).resolve().parent.parent / "mappings" / "finances" / "billing-line.yaml")
HEADER = BILLING.renderer.header()


def render(count: int, tag: str) -> Iterator[str]:
    """Billing lines rendered by the shipped mapping ``finances/billing-line`` (CSV, ';'), one
    invoice document each; ``tag`` makes each file's content unique (the finance system ignores a
    content seen before)."""
    for number in range(count):
        invoice = {
            "invoice": {
                "number": f"fa-{tag}-{number:07d}",
                "family_id": f"FAM-{number % 5000:06d}",
                "date": "2026-11-01",
                "due_date": "2026-11-30",
                "lines": [{"amount": 30 + number % 17}, {"amount": "12,50"}],
            },
            "payer": {"birth_name": "Lefèvre", "used_name": "d'Alembert", "given_names": ["Élodie"]},
        }
        yield BILLING.render(invoice)


def hub_upload(connector: FinancesConnector, count: int, *, traced: bool = False) -> tuple[float, int, str]:
    """Seconds to render and upload, peak traced bytes (when ``traced``: tracemalloc slows every
    allocation, so timed runs are untraced), remote name."""
    context = CallContext(correlation_id="bench-sftp", idempotency_key=f"bench-{uuid.uuid4().hex}")
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    receipt = connector.send_file("billing", render(count, uuid.uuid4().hex[:8]), context)
    elapsed = time.perf_counter() - started
    peak = 0
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return elapsed, peak, receipt.name


def bare_upload(sandbox: Sandbox, count: int, folder: Path) -> float:
    url = httpx.URL(sandbox.urls["finances"].replace("sftp://", "http://"))
    transport = paramiko.Transport((url.host, url.port))
    host_key = paramiko.hostkeys.HostKeyEntry.from_line(sandbox.known_hosts).key
    transport.get_security_options().key_types = [host_key.get_name()]
    transport.start_client(timeout=10)
    transport.auth_password(url.username, sandbox.sftp_password)
    sftp = paramiko.SFTPClient.from_transport(transport)
    assert sftp is not None
    try:
        started = time.perf_counter()
        local = folder / "bare.csv"
        with local.open("w", encoding="utf-8") as out:
            out.write(HEADER + "\n")
            for line in render(count, uuid.uuid4().hex[:8]):
                out.write(line + "\n")
        with local.open("rb") as source:
            sftp.putfo(source, f"inbox/bare-{uuid.uuid4().hex}.csv", confirm=True)
        return time.perf_counter() - started
    finally:
        sftp.close()
        transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    sandbox = Sandbox()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sftp-") as folder:
            url = f"sqlite:///{Path(folder) / 'hub.db'}"
            upgrade(url)
            db = Database(url)
            gateway = Gateway("finances", SystemPolicy(timeout_s=30, max_attempts=1), NullRecorder())
            adapter = SftpAdapter(
                "finances",
                sandbox.urls["finances"],
                gateway,
                known_hosts=sandbox.known_hosts,
                password=sandbox.sftp_password,
            )
            connector = FinancesConnector(adapter, SqlAckLedger(db), headers={"billing": HEADER})
            note(f"warm-up, then {args.lines} lines through the hub and bare paramiko, alternately (x2)")
            hub_upload(connector, 1000)
            hub_times, bare_times = [], []
            for _ in range(2):
                elapsed, _, name = hub_upload(connector, args.lines)
                hub_times.append(elapsed)
                bare_times.append(bare_upload(sandbox, args.lines, Path(folder)))
            started = time.perf_counter()
            context = CallContext(correlation_id="bench-sftp-ack")
            while connector.file_status(name, context)["status"] == "PENDING":
                time.sleep(0.05)
            ack_elapsed = time.perf_counter() - started
            status = connector.file_status(name, context)
            note("memory: traced runs at a tenth, once and three times the line count")
            peaks = {
                label: hub_upload(connector, max(1, int(args.lines * factor)), traced=True)[1]
                for label, factor in (("tenth", 0.1), ("full", 1), ("triple", 3))
            }
            adapter.close()
            db.dispose()
    finally:
        sandbox.stop()
    hub_elapsed, bare_elapsed = sum(hub_times) / len(hub_times), sum(bare_times) / len(bare_times)
    emit("sftp_file_lines", args.lines, "lines")
    emit("sftp_file_hub_render_upload", hub_elapsed, "s")
    emit("sftp_file_bare_render_upload", bare_elapsed, "s")
    emit("sftp_file_hub_vs_bare", ratio(hub_elapsed, bare_elapsed), "ratio")
    emit("sftp_file_hub_lines_per_s", args.lines / hub_elapsed, "lines/s")
    emit("sftp_file_ack_after_upload", ack_elapsed, "s")
    emit("sftp_file_hub_end_to_end_with_ack", hub_times[-1] + ack_elapsed, "s")
    emit("sftp_file_accepted_lines", status["accepted"], "lines")
    for label, peak in peaks.items():
        emit(f"sftp_file_hub_peak_traced_{label}", peak / 1024 / 1024, "MiB")
    emit("sftp_file_peak_triple_vs_full", ratio(peaks["triple"], peaks["full"]), "ratio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
