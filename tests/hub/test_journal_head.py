"""The journal head is authenticated: without the hub's key, nobody rewinds it over a deleted tail,
edits its hash, moves ``mac_from_id`` or strips its MAC unseen, and the seal does not extend (so
vouch for) a head that fails its MAC."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy import insert, select, text
from typer.testing import CliRunner

from connectors.exchange import CallContext, Exchange
from hub import journal
from hub.cli import app
from hub.db.engine import Database
from hub.db.migrate import upgrade
from hub.db.models import JOURNAL, JournalEntry, JournalHead
from tests.conftest import CONFIG
from tests.hub.test_journal import fill, forged_row


def head(hub) -> JournalHead:
    with hub.db.sessions() as session:
        return session.get(JournalHead, 1)


def set_head(hub, **values) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    with hub.db.transaction() as session:
        session.execute(text(f"UPDATE journal_head SET {assignments} WHERE id = 1"), values)


def record_one(hub, operation: str = "Late") -> None:
    hub.recorder.record(
        Exchange(
            system="etat_civil",
            operation=operation,
            attempt=1,
            outcome="ok",
            latency_ms=1.0,
            payload_digest="d",
        ),
        CallContext(correlation_id="c-late"),
    )


def test_an_untampered_journal_verifies_and_each_seal_authenticates_its_head(hub):
    fresh = head(hub)
    assert (fresh.seq, fresh.hash, fresh.mac) == (0, journal.GENESIS, None)  # the public empty head
    assert journal.verify(hub.db, hub.journal_key).ok
    fill(hub, 12)
    sealed = head(hub)
    assert sealed.seq == 12
    assert sealed.mac == journal.head_mac(hub.journal_key, 12, sealed.hash, sealed.mac_from_id)
    result = journal.verify(hub.db, hub.journal_key)
    assert result.ok and result.checked == 12 and not result.at_head


def test_a_deleted_tail_with_the_head_rewound_is_detected(hub):
    """The case left open: delete the last rows and move the head back to the last one left. The
    chain below the head is intact; only the head's MAC tells."""
    fill(hub, 10)
    with hub.db.transaction() as session:
        eighth = session.scalar(select(JournalEntry).where(JournalEntry.seq == 8))
        session.execute(text("DELETE FROM journal WHERE seq > 8"))
        last_hash = eighth.hash
    set_head(hub, seq=8, hash=last_hash)
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.at_head
    assert "fails its MAC" in result.problem and "seq (8)" in result.problem
    assert result.describe().startswith("journal BROKEN at the head: journal head fails its MAC")


def test_an_edited_head_hash_is_detected(hub):
    fill(hub, 5)
    set_head(hub, hash="0" * 64)
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.at_head and "fails its MAC" in result.problem


def test_a_raised_mac_from_id_is_detected_before_the_rows_it_would_excuse(hub):
    """Raising ``mac_from_id`` would excuse rows forged without a MAC; the head's MAC covers it."""
    fill(hub, 3)
    with hub.db.transaction() as session:
        session.add(forged_row())
    set_head(hub, mac_from_id=1_000_000)
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.at_head
    assert "fails its MAC" in result.problem and "mac_from_id (1000000)" in result.problem


def test_a_removed_head_mac_is_detected(hub):
    fill(hub, 4)
    set_head(hub, mac=None)
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.at_head and "has no MAC: it was removed" in result.problem


def test_the_empty_head_without_mac_may_not_excuse_rows(hub):
    """The empty journal's head needs no MAC only as it is made: MACs required from the first row."""
    set_head(hub, mac_from_id=50)
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.at_head and "has no MAC" in result.problem


def test_the_seal_does_not_extend_a_head_that_fails_its_mac(hub):
    """Sealing over a rewound head would give it a fresh, valid MAC: the seal refuses, the new rows
    stay unsealed (each with its own MAC) and the head stays as found, for verify to name."""
    fill(hub, 6)
    with hub.db.transaction() as session:
        session.execute(text("DELETE FROM journal WHERE seq = 6"))
        fifth = session.scalar(select(JournalEntry.hash).where(JournalEntry.seq == 5))
    set_head(hub, seq=5, hash=fifth)
    record_one(hub)
    with pytest.raises(journal.HeadNotAuthentic, match="fails its MAC"):
        journal.seal(hub.db, hub.journal_key)
    after = head(hub)
    assert (after.seq, after.hash) == (5, fifth)
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.at_head and result.unsealed == 1


def test_the_seal_with_nothing_to_seal_checks_nothing(hub):
    fill(hub, 2)
    set_head(hub, mac=None)
    assert journal.seal(hub.db, hub.journal_key) == 0  # an idle seal costs no HMAC and raises nothing


def test_the_worker_says_once_that_it_cannot_seal(hub, caplog):
    from hub.worker import Worker

    fill(hub, 2)
    set_head(hub, hash="f" * 64)
    worker = Worker(hub, concurrency=1)
    try:
        with caplog.at_level(logging.ERROR, logger="hub.worker"):
            for _ in range(3):
                record_one(hub)
                worker.seal_if_due(force=True)
    finally:
        worker._pool.shutdown(wait=True)
    refusals = [r for r in caplog.records if "the journal is not sealed" in r.getMessage()]
    assert len(refusals) == 1 and "fails its MAC" in refusals[0].getMessage()


@pytest.fixture
def cli_env(hub, monkeypatch, database_url):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_CONFIG", str(CONFIG))
    return hub


def test_cli_verify_exits_1_naming_the_head(cli_env):
    fill(cli_env, 5)
    set_head(cli_env, seq=4, hash="a" * 64)
    result = CliRunner().invoke(app, ["audit", "verify"])  # its seal refuses; verify names why
    assert result.exit_code == 1, result.output
    assert "journal BROKEN at the head: journal head fails its MAC" in result.output


# ------------------------------------------------------------------------------- migration 0009


def _sealed_before_0009(url: str, rows: int) -> tuple[int, str]:
    """A journal as the hub before 0009 left it: rows with MACs, sealed, the head unauthenticated."""
    db = Database(url)
    try:
        key = journal.journal_key(bytes.fromhex(os.environ["HUB_PSEUDONYM_KEY"]))
        context = CallContext(correlation_id="old")
        running = journal.GENESIS
        with db.engine.begin() as connection:
            for seq in range(1, rows + 1):
                row = journal._row(
                    key, context, "outbound", "etat_civil", f"Op{seq}", "ok", 1, 1.0, "d", None, None
                )
                row_id = connection.execute(insert(JOURNAL), row).inserted_primary_key[0]
                digest = journal._content_hash({**row, "id": row_id, "seq": seq}, running)
                connection.execute(
                    text("UPDATE journal SET seq = :s, prev_hash = :p, hash = :h WHERE id = :i"),
                    {"s": seq, "p": running, "h": digest, "i": row_id},
                )
                running = digest
            connection.execute(text("UPDATE journal_head SET seq = :s, hash = :h"), {"s": rows, "h": running})
        return rows, running
    finally:
        db.dispose()


@pytest.fixture
def old_database(database_template, tmp_path) -> Iterator[str]:
    """A database at revision 0008: a SQLite file, or a fresh schema of the PostgreSQL test database."""
    if not database_template.startswith("postgresql"):
        url = f"sqlite:///{tmp_path / 'before-0009.db'}"
        upgrade(url, "0008")
        yield url
        return
    schema = f"m0009_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in database_template else "?"
    url = f"{database_template}{separator}options={quote(f'-csearch_path={schema}')}"
    admin = sa.create_engine(database_template.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        upgrade(url, "0008")
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _revision_and_columns(url: str) -> tuple[str, list[str]]:
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            columns = [column["name"] for column in sa.inspect(connection).get_columns("journal_head")]
        return revision, columns
    finally:
        db.dispose()


def test_the_upgrade_authenticates_the_existing_head_with_the_hubs_key(old_database, sandbox):
    from hub.runtime import build_hub

    seq, digest = _sealed_before_0009(old_database, 3)
    hub = build_hub(CONFIG, url=old_database, migrate=True)  # `hub db upgrade`, serve, worker: with the key
    try:
        upgraded = head(hub)
        assert (upgraded.seq, upgraded.hash) == (seq, digest)
        assert upgraded.mac == journal.head_mac(hub.journal_key, seq, digest, upgraded.mac_from_id)
        assert journal.verify(hub.db, hub.journal_key).ok
        fill(hub, 2)
        assert journal.verify(hub.db, hub.journal_key).checked == 5
    finally:
        hub.close()


def test_an_upgrade_without_the_key_refuses_a_sealed_journal_and_changes_nothing(old_database):
    _sealed_before_0009(old_database, 2)
    with pytest.raises(RuntimeError, match="hub db upgrade"):
        upgrade(old_database)
    revision, columns = _revision_and_columns(old_database)
    assert revision == "0008" and "mac" not in columns


def test_an_empty_journal_upgrades_without_the_key(old_database):
    upgrade(old_database)
    db = Database(old_database)
    try:
        assert journal.verify(db, b"any key").ok
    finally:
        db.dispose()
