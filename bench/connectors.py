"""Per protocol: calls/s and p50/p99 latency through the hub's instrumented client vs the bare library.

The sandbox runs in its own process (``python -m sandbox``) so its servers never share the
benchmark's GIL. For each protocol the same call is made, one at a time on a kept-alive
connection, by:

- ``bare``: the library alone (zeep, httpx, paramiko), configured as the hub configures it;
- ``hub``: the hub's adapter through its gateway (breaker, concurrency slot, tenacity, guards,
  digests, stats) with a recorder that keeps nothing, i.e. the client's own cost (the goal:
  at most 10 % over bare);
- ``hub_journal``: the same with the hub's real journal recorder on a SQLite file (one durable
  INSERT per attempt), i.e. what a worker pays per call in the embedded setup.

Rounds alternate between the variants so drift on a shared machine hits them alike, and their
order turns each round (a variant running right after ``hub_journal`` meets its SQLite fsyncs
still draining).

    .venv/bin/python bench/connectors.py [--calls 400] [--rounds 6] [--protocols rest,soap]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import paramiko
import requests
import zeep
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, emit, note, percentile, ratio
from connectors.documents import DocumentsAdapter
from connectors.exchange import CallContext, NullRecorder
from connectors.gateway import Gateway, SystemPolicy
from connectors.httpguard import HttpAuth
from connectors.rest import RestAdapter, load_openapi
from connectors.sftp import SftpAdapter
from connectors.soap import SoapAdapter

WSDL = ROOT / "config" / "wsdl" / "etat-civil.wsdl"
OPENAPI = ROOT / "config" / "openapi" / "ecole.yaml"
SEARCH = {
    "birthName": "LEFEVRE",
    "givenNames": "Élodie Marie",
    "birthDate": "1985-03-14",
    "birthPlaceInsee": "75056",
}
CONTEXT = CallContext(correlation_id="bench-connectors", request_id="bench", purpose="bench")


class Sandbox:
    """``python -m sandbox`` in a child process; its addresses read from its stdout."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--issue-delay", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.urls: dict[str, str] = {}
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("finances known_hosts: "):
                self.known_hosts = line.split(": ", 1)[1].strip()
            elif line.startswith("credentials:"):
                self.ecole_token = re.search(r"Bearer (\S+)", line).group(1)  # type: ignore[union-attr]
                self.ged_key = re.search(r"X-Api-Key: (\S+)", line).group(1)  # type: ignore[union-attr]
                self.sftp_password = line.rsplit("/", 1)[1].strip()
            elif line.startswith("Ctrl-C"):
                break
            elif ": " in line:
                name, url = line.split(": ", 1)
                self.urls[name] = url.strip()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def gateway(system: str, recorder) -> Gateway:
    return Gateway(system, SystemPolicy(timeout_s=10, max_attempts=1, max_concurrency=4), recorder)


def journal_recorder(workdir: Path):
    from hub.db.engine import Database
    from hub.db.migrate import upgrade
    from hub.journal import JournalRecorder

    url = f"sqlite:///{workdir / 'journal.db'}"
    upgrade(url)
    return JournalRecorder(Database(url), key=b"bench journal key")


# ------------------------------------------------------------------------------ the calls, per protocol


def soap_calls(sandbox: Sandbox, recorder_for) -> dict[str, Callable[[], object]]:
    endpoint = sandbox.urls["etat_civil"]
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0))
    settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    bare_client = zeep.Client(
        str(WSDL), transport=zeep.Transport(session=session, timeout=10), settings=settings
    )
    binding = next(iter(bare_client.wsdl.bindings))
    bare = bare_client.create_service(binding, endpoint)
    calls: dict[str, Callable[[], object]] = {"bare": lambda: bare.SearchBirthRecord(**SEARCH)}
    for variant in ("hub", "hub_journal"):
        adapter = SoapAdapter("etat_civil", WSDL, endpoint, gateway("etat_civil", recorder_for(variant)))
        calls[variant] = lambda adapter=adapter: adapter.call("SearchBirthRecord", SEARCH, CONTEXT)
    return calls


def rest_calls(sandbox: Sandbox, recorder_for) -> dict[str, Callable[[], object]]:
    endpoint = sandbox.urls["ecole"]
    headers = {"Authorization": f"Bearer {sandbox.ecole_token}"}
    family = httpx.post(
        endpoint + "/families",
        json={"responsible": {"birth_name": "Bench", "first_names": "Marc", "birth_date": "1980-01-01"}},
        headers=headers,
    ).json()
    # The same request on the wire as the hub's: its static headers on the client, the
    # correlation id per call (the hub sends one with every call).
    bare_client = httpx.Client(
        headers={**headers, "User-Agent": "municipal-hub (httpx)", "Accept": "application/json"},
        timeout=10,
        trust_env=False,
        follow_redirects=False,
    )
    url = f"{endpoint}/families/{family['id']}"
    per_call = {"X-Correlation-Id": CONTEXT.correlation_id}
    calls: dict[str, Callable[[], object]] = {
        "bare": lambda: bare_client.get(url, headers=per_call).raise_for_status().json()
    }
    operations = load_openapi(OPENAPI)
    for variant in ("hub", "hub_journal"):
        adapter = RestAdapter(
            "ecole",
            endpoint,
            gateway("ecole", recorder_for(variant)),
            operations=operations,
            auth=HttpAuth("bearer", sandbox.ecole_token),
        )
        calls[variant] = lambda adapter=adapter: adapter.call(
            "GetFamily", {"family_id": family["id"]}, CONTEXT
        )
    return calls


def sftp_calls(sandbox: Sandbox, recorder_for) -> dict[str, Callable[[], object]]:
    """One small file (a one-line billing file) per call: write to a temporary name, check its
    size, rename; the bare variant makes exactly the same SFTP requests."""
    url = httpx.URL(sandbox.urls["finances"].replace("sftp://", "http://"))
    content = b"reference;nom;montant\nF-1;Bench;12.50\n"
    digest = hashlib.sha256(content).hexdigest()
    host_key = paramiko.hostkeys.HostKeyEntry.from_line(sandbox.known_hosts).key
    transport = paramiko.Transport((url.host, url.port))
    transport.get_security_options().key_types = [host_key.get_name()]
    transport.start_client(timeout=10)
    assert transport.get_remote_server_key().asbytes() == host_key.asbytes()
    transport.auth_password(url.username, sandbox.sftp_password)
    bare_sftp = paramiko.SFTPClient.from_transport(transport)
    assert bare_sftp is not None

    def bare() -> None:
        name = f"bench-bare-{uuid.uuid4().hex}.csv"
        with bare_sftp.open(f"inbox/.{name}.part", "wb") as remote:
            remote.set_pipelined(True)
            remote.write(content)
        assert bare_sftp.stat(f"inbox/.{name}.part").st_size == len(content)
        bare_sftp.rename(f"inbox/.{name}.part", f"inbox/{name}")

    calls: dict[str, Callable[[], object]] = {"bare": bare}
    for variant in ("hub", "hub_journal"):
        adapter = SftpAdapter(
            "finances",
            sandbox.urls["finances"],
            gateway("finances", recorder_for(variant)),
            known_hosts=sandbox.known_hosts,
            password=sandbox.sftp_password,
        )

        def hub(adapter: SftpAdapter = adapter, variant: str = variant) -> None:
            adapter.upload(
                "SendBillingFile",
                "inbox",
                f"bench-{variant}-{uuid.uuid4().hex}.csv",
                io.BytesIO(content),
                CONTEXT,
                sha256=digest,
                size=len(content),
            )

        calls[variant] = hub
    return calls


def documents_calls(sandbox: Sandbox, recorder_for) -> dict[str, Callable[[], object]]:
    """Download of a 64 KiB document, streamed and digest-checked."""
    endpoint = sandbox.urls["ged"]
    headers = {"X-Api-Key": sandbox.ged_key}
    body = bytes(range(256)) * 256
    document = httpx.post(
        endpoint + "/documents",
        params={"title": "bench", "type": "autre"},
        content=body,
        headers={**headers, "Content-Type": "application/pdf"},
    ).json()
    bare_client = httpx.Client(headers=headers, timeout=10, trust_env=False)
    url = f"{endpoint}/documents/{document['id']}/content"

    def bare() -> None:
        out = io.BytesIO()
        digest = hashlib.sha256()
        with bare_client.stream("GET", url) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes(256 * 1024):
                digest.update(chunk)
                out.write(chunk)
        assert digest.hexdigest() == response.headers["x-content-sha256"]

    calls: dict[str, Callable[[], object]] = {"bare": bare}
    for variant in ("hub", "hub_journal"):
        adapter = DocumentsAdapter(
            "ged", endpoint, gateway("ged", recorder_for(variant)), auth=HttpAuth("api_key", sandbox.ged_key)
        )
        calls[variant] = lambda adapter=adapter: adapter.download(
            "RetrieveDocument", document["id"], io.BytesIO(), CONTEXT
        )
    return calls


# ------------------------------------------------------------------------------ measurement


def measure(
    calls: dict[str, Callable[[], object]], count: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Latencies (s) per variant, and the client's CPU seconds per call (this process: the
    back-end runs in another): ``rounds`` rounds, each variant making count/rounds calls in turn."""
    for call in calls.values():  # warm-up: connections, caches
        for _ in range(20):
            call()
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, float] = dict.fromkeys(calls, 0.0)
    per_round = max(1, count // rounds)
    names = list(calls)
    for number in range(rounds):
        # The order turns each round, so no variant always follows the journal's fsyncs.
        for name in names[number % len(names) :] + names[: number % len(names)]:
            call = calls[name]
            cpu_started = time.process_time()
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                latencies[name].append(time.perf_counter() - started)
            cpu[name] += time.process_time() - cpu_started
    return latencies, {name: spent / len(latencies[name]) for name, spent in cpu.items()}


def report(protocol: str, measured: tuple[dict[str, list[float]], dict[str, float]]) -> None:
    latencies, cpu = measured
    for variant, values in latencies.items():
        emit(f"{protocol}_{variant}_calls_per_s", len(values) / sum(values), "calls/s")
        emit(f"{protocol}_{variant}_p50", percentile([v * 1000 for v in values], 50), "ms")
        emit(f"{protocol}_{variant}_p99", percentile([v * 1000 for v in values], 99), "ms")
        emit(f"{protocol}_{variant}_client_cpu_per_call", cpu[variant] * 1e6, "us")
    bare = sum(latencies["bare"]) / len(latencies["bare"])
    for variant in ("hub", "hub_journal"):
        mean = sum(latencies[variant]) / len(latencies[variant])
        emit(f"{protocol}_{variant}_vs_bare_time_per_call", ratio(mean, bare), "ratio")
    emit(f"{protocol}_hub_vs_bare_client_cpu_per_call", ratio(cpu["hub"], cpu["bare"]), "ratio")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400, help="calls per variant and protocol")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per protocol")
    parser.add_argument(
        "--protocols", default="soap,rest,sftp,documents", help="comma-separated subset to run"
    )
    args = parser.parse_args()
    sandbox = Sandbox()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-connectors-") as folder:
            journal = journal_recorder(Path(folder))

            def recorder_for(variant: str):
                return journal if variant == "hub_journal" else NullRecorder()

            builders = {
                "soap": soap_calls,
                "rest": rest_calls,
                "sftp": sftp_calls,
                "documents": documents_calls,
            }
            for protocol in args.protocols.split(","):
                note(f"{protocol}: {args.calls} calls per variant in {args.rounds} alternating rounds")
                report(protocol, measure(builders[protocol](sandbox, recorder_for), args.calls, args.rounds))
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
