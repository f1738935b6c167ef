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

from tests.conftest import CONFIG, ROOT, sample


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

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
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
    finally:
        server.send_signal(signal.SIGTERM)  # as a service manager stops it
        try:
            server.wait(timeout=20)
        finally:
            if server.poll() is None:
                server.kill()
    errors = server.stderr.read().decode() if server.stderr else ""
    # uvicorn shuts down gracefully, then lets the signal end the process (what systemd expects).
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in errors, errors[-2000:]
