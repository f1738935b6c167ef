"""Shared fixtures: a fresh database per test (SQLite or PostgreSQL), the sandbox, a live hub.

The suite runs on SQLite by default. ``HUB_TEST_DATABASE_URL=postgresql://...`` runs it on
PostgreSQL (``.ci/run`` does both). With ``CI=true`` a missing peer fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import settings

from hub.db.migrate import upgrade
from sandbox.runner import TEST_CREDENTIALS

# Tests never assert wall-clock times: hypothesis's per-example deadline (200 ms) fails on a loaded
# 2-core machine for code that is correct, so it is off for every property test.
settings.register_profile("hub", deadline=None)
settings.load_profile("hub")

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "hub.yaml"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# A fixed pseudonymisation key: tests never write key files into the working tree.
os.environ.setdefault("HUB_PSEUDONYM_KEY", "00" * 32)
# The back-ends' credentials, as an operator's environment file gives them: the shipped hub.yaml
# only names the variables (the sandbox's test values here).
for _name, _value in TEST_CREDENTIALS.items():
    os.environ.setdefault(_name, _value)


def require_peer(available: bool, reason: str) -> None:
    """Skip visibly when a peer is missing, except in CI where it is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required peer is missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session; each test then starts from a copy (SQLite) or truncation (PG)."""
    url = os.environ.get("HUB_TEST_DATABASE_URL")
    if url:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception as exc:  # pragma: no cover - depends on the machine
            require_peer(False, f"PostgreSQL at {url} unreachable: {exc}")
        finally:
            engine.dispose()
        upgrade(url)
        return url
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return f"sqlite:///{path}"


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> str:
    if database_template.startswith("sqlite"):
        source = Path(database_template.removeprefix("sqlite:///"))
        target = tmp_path / "hub.db"
        shutil.copy(source, target)
        return f"sqlite:///{target}"
    engine = sa.create_engine(database_template.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        # Every table the migrations made (a new one is never forgotten), but the schema's own.
        tables = connection.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename NOT IN ('alembic_version', 'journal_head')"
            )
        ).scalars()
        connection.execute(sa.text(f"TRUNCATE {', '.join(sorted(tables))} RESTART IDENTITY CASCADE"))
        connection.execute(
            # An empty journal: every row from the first on must carry its MAC.
            sa.text(
                "UPDATE journal_head SET seq = 0, hash = :genesis, mac_from_id = 1, mac = NULL WHERE id = 1"
            ),
            {"genesis": "ae2b7f0a1bd6a6fa3fe94cd5e3b0c5d1b2d1a2f5d76fd0f3c0a9c73a8a6e4b10"},
        )
    engine.dispose()
    return database_template


@pytest.fixture(scope="session")
def sandbox():
    """The four back-ends on loopback ports; the hub's config reaches them through env variables."""
    from sandbox.runner import start_sandbox

    handle = start_sandbox(issue_delay_s=0.0)
    variables = handle.environment()
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    yield handle
    handle.stop()
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def knobs_reset(sandbox):
    """Every test starts with healthy back-ends and leaves them so."""
    for knobs in sandbox.knobs.values():
        knobs.update({"latency_ms": 0, "error_rate": 0, "down_until": 0})
    yield sandbox
    for knobs in sandbox.knobs.values():
        knobs.update({"latency_ms": 0, "error_rate": 0, "down_until": 0})


@pytest.fixture
def hub(sandbox, knobs_reset, database_url: str):
    from hub.runtime import build_hub

    instance = build_hub(CONFIG, url=database_url, migrate=False)
    yield instance
    instance.close()


@dataclass
class LiveHub:
    """The hub's API on a real loopback socket, optionally with its embedded worker."""

    hub: object
    base_url: str
    portal_key: str

    def client(self, key: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.portal_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def live_api(hub) -> Iterator[LiveHub]:
    """API only (no worker): requests stay queued, for intake tests."""
    yield from _live(hub, with_worker=False)


@pytest.fixture
def live_hub(hub) -> Iterator[LiveHub]:
    """API and embedded worker, as ``hub serve`` runs them."""
    yield from _live(hub, with_worker=True)


def _live(hub, *, with_worker: bool) -> Iterator[LiveHub]:
    from hub.api.app import create_app
    from hub.worker import run_in_thread
    from sandbox.runner import ServerThread, bind_socket

    key = hub.clients.add(f"portal-{uuid.uuid4().hex[:6]}", ["portal"])
    server = ServerThread("hub", create_app(hub), bind_socket("127.0.0.1", 0))
    server.start()
    worker = run_in_thread(hub) if with_worker else None
    try:
        yield LiveHub(hub, f"http://127.0.0.1:{server.port}", key)
    finally:
        if worker is not None:
            worker[1].set()
            worker[0].join(timeout=10)
        server.stop()


def sample(name: str) -> dict:
    import json

    return json.loads((ROOT / "sandbox" / "samples" / f"{name}.json").read_text(encoding="utf-8"))


@contextlib.contextmanager
def worker_process(
    database_url: str, config: Path, *, module: str = "hub.cli", env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """``hub worker`` in its own process, as operators run it, for tests that kill it mid-flow;
    killed at the end if the test left it running. ``module`` runs a wrapper of it instead
    (``tests.hub.paused_worker``), with ``env`` added to the environment."""
    env = {**os.environ, **(env or {}), "HUB_DATABASE_URL": database_url, "HUB_CONFIG": str(config)}
    worker = subprocess.Popen(
        [sys.executable, "-m", module, "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)


@dataclass
class Served:
    """A ``hub serve`` process and its base URL; once stopped, its exit code and stderr."""

    base_url: str
    process: subprocess.Popen

    def errors(self) -> str:
        return self.process.stderr.read().decode() if self.process.stderr else ""


@contextlib.contextmanager
def serve_process(env: dict[str, str], timeout_s: float = 60) -> Iterator[Served]:
    """``hub serve`` in its own process on a free loopback port, as operators run it, ready (its
    ``/health`` answered 200); stopped at the end with SIGTERM, as a service manager stops it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, served.errors()
            assert time.monotonic() < deadline, f"hub serve did not answer /health in {timeout_s:.0f} s"
            try:
                if httpx.get(f"{served.base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
