"""Durability settings, client keys, and concurrent claims of the outbox."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from hub.auth import hash_key
from hub.cli import app
from hub.db import engine as engine_module
from hub.db.engine import Checkpointer, Database
from hub.db.models import ApiClient, OutboxMessage
from hub.outbox import claim
from tests.conftest import CONFIG, sample


def test_sqlite_runs_in_wal_with_full_synchronous_commits(hub):
    if hub.db.dialect != "sqlite":
        pytest.skip("SQLite-only settings (this run uses PostgreSQL)")
    with hub.db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        # Checkpoints are the background thread's (hub.db.engine.Checkpointer), never a commit's.
        assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0


def test_sqlite_wal_is_checkpointed_in_the_background_and_starts_over(database_url, monkeypatch):
    """Commits never checkpoint; the background checkpointer does, and once the WAL is long it
    finds a pause between writes so that the WAL is reused from its beginning: the file stays far
    smaller than everything written through it."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite-only behaviour (this run uses PostgreSQL)")
    monkeypatch.setattr(Checkpointer, "RESTART_PAGES", 50)
    monkeypatch.setattr(engine_module, "CHECKPOINT_INTERVAL_S", 0.05)
    db = Database(database_url)
    wal = Path(database_url.removeprefix("sqlite:///") + "-wal")
    written = 0
    try:
        while written < 8_000_000:
            model = '"' + "x" * 8000 + '"'
            with db.connection() as connection:
                connection.execute(
                    text("INSERT INTO md_match_models (created_at, records, model) VALUES (:at, 1, :m)"),
                    {"at": "2026-01-01 00:00:00", "m": model},
                )
            written += len(model)
            time.sleep(0.002)  # a worker's pause between requests
        size = wal.stat().st_size
    finally:
        db.dispose()
    assert size < written / 2, f"the WAL grew to {size} bytes for {written} written: it never started over"


def test_clients_add_prints_the_key_once_alone_on_the_last_line(hub, monkeypatch, database_url):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_CONFIG", str(CONFIG))
    result = CliRunner().invoke(app, ["clients", "add", "portail", "--scopes", "portal", "-s", "audit"])
    assert result.exit_code == 0, result.output
    key = result.output.rstrip("\n").splitlines()[-1]
    assert key.startswith("hub_") and len(key) > 40 and " " not in key
    with hub.db.sessions() as session:
        stored = session.get(ApiClient, "portail")
    assert stored.key_sha256 == hash_key(key) and key not in stored.key_sha256
    assert stored.scopes == "audit portal"
    principal = hub.clients.authenticate(key)
    assert principal.name == "portail" and principal.has("audit")
    again = CliRunner().invoke(app, ["clients", "add", "portail", "--scopes", "portal"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(app, ["clients", "add", "x", "--scopes", "superuser"])
    assert bad.exit_code == 1 and "unknown scope" in bad.output


def test_concurrent_workers_never_claim_the_same_message(live_api):
    with live_api.client() as client:
        for i in range(40):
            client.post(
                "/v1/requests", json=sample("06-dubois-enfant"), headers={"Idempotency-Key": f"c-{i}"}
            )
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def take(name: str) -> None:
        barrier.wait()
        ids = []
        for _ in range(10):
            ids += [c.message_id for c in claim(live_api.hub.db, name, 5, lease_s=60)]
        claimed.append(ids)

    threads = [threading.Thread(target=take, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [message for ids in claimed for message in ids]
    assert len(every) == 40 and len(set(every)) == 40
    with live_api.hub.db.sessions() as session:
        assert session.scalar(select(func.count()).where(OutboxMessage.claimed_by.is_(None))) == 0


def test_pseudonym_key_rules(tmp_path, monkeypatch):
    from hub.runtime import pseudonym_key
    from hub.yamlfile import ConfigError

    monkeypatch.setenv("HUB_PSEUDONYM_KEY", "00")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        pseudonym_key(tmp_path, "sqlite:///x.db")
    monkeypatch.delenv("HUB_PSEUDONYM_KEY")
    with pytest.raises(ConfigError, match="set HUB_PSEUDONYM_KEY"):
        pseudonym_key(tmp_path, "postgresql://db/hub")
    first = pseudonym_key(tmp_path, "sqlite:///x.db")
    assert len(first) == 32 and pseudonym_key(tmp_path, "sqlite:///x.db") == first
    assert [p.name for p in tmp_path.iterdir()] == ["pseudonym.key"]


def test_a_config_client_named_like_a_database_client_is_refused(hub, tmp_path, database_url):
    import shutil

    from hub.runtime import build_hub
    from hub.yamlfile import ConfigError
    from tests.conftest import ROOT

    hub.clients.add("portail", ["portal"])
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    hub_yaml = tmp_path / "config" / "hub.yaml"
    hub_yaml.write_text(
        hub_yaml.read_text().replace(
            "clients: {}", f"clients:\n  portail: {{key_sha256: {'b' * 64}, scopes: [portal]}}"
        )
    )
    with pytest.raises(ConfigError, match=r"portail declared in hub\.yaml also exist"):
        build_hub(hub_yaml, url=database_url, migrate=False)
