"""`hub db upgrade` and `hub serve` as an operator runs them: a fresh database, the API and its
embedded worker in their own process, a démarche filed over a socket and completed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import CONFIG, ROOT, sample, serve_process


def hub_command(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, **kwargs
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_upgrade_then_serve_files_and_completes_a_demarche(sandbox, tmp_path):
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "HUB_CONFIG": str(CONFIG)}
    upgraded = hub_command("db", "upgrade", env=env, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    again = hub_command("db", "upgrade", env=env, timeout=120)  # idempotent
    assert again.returncode == 0, again.stderr
    added = hub_command("clients", "add", "portal-test", "--scopes", "portal", env=env, timeout=120)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]

    with serve_process(env) as served:
        base = served.base_url
        headers = {"Authorization": f"Bearer {key}"}
        filed = httpx.post(f"{base}/v1/requests", json=sample("01-lefevre-copie-integrale"), headers=headers)
        assert filed.status_code == 202, filed.text
        status_url = base + filed.json()["status_url"]
        state: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = httpx.get(status_url, headers=headers).json()
            if state["status"] == "completed":
                break
            time.sleep(0.1)
        assert state["status"] == "completed", state
    server = served.process
    errors = served.errors()
    # uvicorn shuts down gracefully, then lets the signal end the process (what systemd expects).
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in errors, errors[-2000:]


def test_a_worker_process_serves_the_metrics_of_the_calls_it_makes(live_api, sandbox, database_url):
    """`hub worker` processes make the outbound calls: their exchange counters, breaker states and
    latencies exist only there, so each serves them (`--metrics-port`) for Prometheus to scrape."""
    port = free_port()
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_CONFIG": str(CONFIG)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "worker", "--metrics-port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "worker metrics at http://127.0.0.1:" in worker.stdout.readline()
        with live_api.client() as client:
            request_id = client.post("/v1/requests", json=sample("03-ndiaye-extrait-sans-filiation")).json()[
                "id"
            ]
            deadline = time.monotonic() + 60
            while client.get(f"/v1/requests/{request_id}").json()["status"] != "completed":
                assert time.monotonic() < deadline and worker.poll() is None, worker.stderr.read()
                time.sleep(0.1)
            served_by_api = client.get("/metrics").text
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    calls = 'hub_exchanges_total{direction="outbound",outcome="ok",system="etat_civil"}'
    made = next(line for line in scraped.splitlines() if line.startswith(calls))
    assert float(made.split()[-1]) >= 2  # RequestActCopy, then at least one status poll
    assert 'hub_exchange_latency_ms{quantile="0.99",system="etat_civil"}' in scraped
    assert 'hub_requests{flow="birth-certificate",status="completed"} 1.0' in scraped
    assert calls not in served_by_api  # the API process made no call


def test_a_worker_whose_metrics_port_is_taken_says_so(sandbox, database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_CONFIG": str(CONFIG)}
        result = hub_command("worker", "--metrics-port", str(port), env=env, timeout=60)
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
