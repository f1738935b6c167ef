"""The journal's hash chain: any row altered, deleted, inserted or reordered is detected."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from connectors.exchange import CallContext, Exchange
from hub import journal
from hub.cli import app
from hub.db.models import JournalEntry
from tests.conftest import CONFIG


def fill(hub, rows: int, *, seal: bool = True) -> None:
    context = CallContext(
        correlation_id="c-1",
        request_id="r-1",
        client="portal",
        purpose="p",
        legal_basis="legal_obligation",
        citizen_ref="cit_x",
    )
    for i in range(rows):
        hub.recorder.record(
            Exchange(
                system="etat_civil",
                operation=f"Op{i}",
                attempt=1,
                outcome="ok",
                latency_ms=1.5 + i,
                payload_digest=f"sha256:{i:064x}",
            ),
            context,
        )
    if seal:
        journal.seal(hub.db, hub.journal_key)


def forged_row(**fields) -> JournalEntry:
    """A row an attacker writes straight into the table."""
    return JournalEntry(
        at=journal.utcnow(),
        correlation_id="forged",
        direction="outbound",
        system="etat_civil",
        operation="Forged",
        outcome="ok",
        attempt=1,
        latency_ms=1.0,
        payload_digest="sha256:f",
        **fields,
    )


def row_ids(hub) -> list[int]:
    with hub.db.sessions() as session:
        return list(session.scalars(select(JournalEntry.id).order_by(JournalEntry.seq)))


def test_an_untouched_chain_verifies(hub):
    fill(hub, 20)
    result = journal.verify(hub.db, hub.journal_key)
    assert result.ok and result.checked == 20 and result.head_seq == 20 and result.unsealed == 0


def test_unsealed_rows_are_reported_then_sealed_in_order(hub):
    fill(hub, 3)
    hub.recorder.record(
        Exchange(
            system="s", operation="late", attempt=1, outcome="ok", latency_ms=1, payload_digest="sha256:0"
        ),
        CallContext(correlation_id="c"),
    )
    assert journal.verify(hub.db, hub.journal_key).unsealed == 1
    assert journal.seal(hub.db, hub.journal_key) == 1
    result = journal.verify(hub.db, hub.journal_key)
    assert result.ok and result.checked == 4


def test_seal_batches_and_verify_pages_smaller_than_the_journal(hub, monkeypatch):
    """Several seal batches chain as one (each batch's first row links to the last batch's), and
    verify reads rows a page at a time: every row is checked once across the pages' edges, and a
    problem on a later page (sealed or not) is named at its row, the reading stopped there."""
    fill(hub, 8, seal=False)
    assert journal.seal(hub.db, hub.journal_key, batch=3) == 8
    with hub.db.sessions() as session:
        chain = session.execute(
            select(JournalEntry.seq, JournalEntry.prev_hash, JournalEntry.hash).order_by(JournalEntry.id)
        ).all()
    assert [row.seq for row in chain] == list(range(1, 9))
    assert [row.prev_hash for row in chain] == [journal.GENESIS] + [row.hash for row in chain[:-1]]
    monkeypatch.setattr(journal, "_STREAM_PAGE", 3)
    result = journal.verify(hub.db, hub.journal_key)
    assert result.ok and result.checked == 8 and result.head_seq == 8

    fill(hub, 4, seal=False)
    with hub.db.transaction() as session:
        last = session.scalar(select(func.max(JournalEntry.id)))
        session.execute(update(JournalEntry).where(JournalEntry.id == last).values(outcome="tampered"))
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.first_bad_id == last and result.first_bad_seq is None
    assert result.checked == 8 and result.unsealed == 4 and "unsealed row" in result.problem

    with hub.db.transaction() as session:
        session.execute(update(JournalEntry).where(JournalEntry.seq == 7).values(outcome="tampered"))
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.first_bad_seq == 7 and result.checked == 6
    assert "altered" in result.problem


def test_altered_row_is_named(hub):
    fill(hub, 10)
    target = row_ids(hub)[4]
    with hub.db.transaction() as session:
        session.execute(
            update(JournalEntry).where(JournalEntry.id == target).values(outcome="permanent_error")
        )
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.first_bad_id == target and result.first_bad_seq == 5
    assert "altered" in result.problem


def test_deleted_row_is_detected(hub):
    fill(hub, 10)
    with hub.db.transaction() as session:
        session.execute(text("DELETE FROM journal WHERE seq = 6"))
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.first_bad_seq == 7 and "deleted" in result.problem


def test_deleted_tail_is_detected_against_the_head(hub):
    fill(hub, 10)
    with hub.db.transaction() as session:
        session.execute(text("DELETE FROM journal WHERE seq >= 9"))
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and "deleted at the end" in result.problem


def test_inserted_row_is_detected(hub):
    fill(hub, 10)
    with hub.db.transaction() as session:
        # Make room after seq 3 and slip a forged row in, with a plausible hash of its own.
        session.execute(text("UPDATE journal SET seq = seq + 1000 WHERE seq > 3"))
        session.execute(text("UPDATE journal SET seq = seq - 999 WHERE seq > 1000"))
        forged = forged_row(seq=4)
        session.add(forged)
        session.flush()
        forged.prev_hash = "0" * 64
        forged.hash = journal.entry_hash(forged, forged.prev_hash)
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.first_bad_seq == 4 and "inserted" in result.problem


def test_reordered_rows_are_detected(hub):
    fill(hub, 10)
    with hub.db.transaction() as session:
        session.execute(text("UPDATE journal SET seq = -1 WHERE seq = 3"))
        session.execute(text("UPDATE journal SET seq = 3 WHERE seq = 4"))
        session.execute(text("UPDATE journal SET seq = 4 WHERE seq = -1"))
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.first_bad_seq == 3


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(min_value=2, max_value=12), data=st.data())
def test_any_single_alteration_is_caught_at_its_row(hub, rows, data):
    with hub.db.transaction() as session:
        session.execute(text("DELETE FROM journal"))
        session.execute(
            text("UPDATE journal_head SET seq = 0, hash = :g, mac = NULL"), {"g": journal.GENESIS}
        )
    fill(hub, rows)
    seq = data.draw(st.integers(min_value=1, max_value=rows))
    column = data.draw(st.sampled_from(["operation", "outcome", "system", "payload_digest", "citizen_ref"]))
    with hub.db.transaction() as session:
        session.execute(text(f"UPDATE journal SET {column} = 'tampered' WHERE seq = :s"), {"s": seq})
    result = journal.verify(hub.db, hub.journal_key)
    assert not result.ok and result.first_bad_seq == seq


@pytest.fixture
def cli_env(hub, monkeypatch, database_url):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_CONFIG", str(CONFIG))
    return hub


def test_cli_audit_verify_exit_codes(cli_env):
    fill(cli_env, 5)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "journal OK: 5 rows" in ok.output
    with cli_env.db.transaction() as session:
        session.execute(text("UPDATE journal SET latency_ms = 0 WHERE seq = 2"))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "seq 2" in broken.output


def test_a_forged_row_outside_the_chain_is_detected(hub):
    fill(hub, 5)
    for seq in (0, 99):
        with hub.db.transaction() as session:
            session.add(forged_row(seq=seq, prev_hash="0" * 64, hash="0" * 64))
        result = journal.verify(hub.db, hub.journal_key)
        assert not result.ok and result.first_bad_seq == seq and "outside the chain" in result.problem
        with hub.db.transaction() as session:
            session.execute(text("DELETE FROM journal WHERE correlation_id = 'forged'"))
    assert journal.verify(hub.db, hub.journal_key).ok


def test_verify_while_sealing_never_raises_a_false_alarm(hub):
    import threading

    fill(hub, 3)
    stop = threading.Event()

    def keep_sealing() -> None:
        while not stop.is_set():
            fill(hub, 2)

    sealer = threading.Thread(target=keep_sealing)
    sealer.start()
    try:
        results = [journal.verify(hub.db, hub.journal_key) for _ in range(15)]
    finally:
        stop.set()
        sealer.join()
    assert all(r.ok for r in results), [r.describe() for r in results if not r.ok]


def test_a_row_slipped_in_before_its_seal_is_detected_by_its_mac(cli_env):
    """The audit's exact case: a plain INSERT (seq left NULL) is sealed like any pending row, so
    the chain alone would adopt it; its missing MAC names it, through `hub audit verify`."""
    fill(cli_env, 5)
    with cli_env.db.transaction() as session:
        forged = forged_row(citizen_ref="cit_forged")
        session.add(forged)
        session.flush()
        forged_id = forged.id
    unsealed = journal.verify(cli_env.db, cli_env.journal_key)
    assert not unsealed.ok and unsealed.first_bad_id == forged_id and "unsealed row" in unsealed.problem
    result = CliRunner().invoke(app, ["audit", "verify"])  # seals first, then verifies
    assert result.exit_code == 1, result.output
    assert f"row id {forged_id}" in result.output and "no valid MAC" in result.output


def test_a_row_changed_before_its_seal_or_copied_is_detected(hub):
    fill(hub, 3)
    context = CallContext(correlation_id="c-2", request_id="r-2", client="portal", citizen_ref="cit_y")
    hub.recorder.record(
        Exchange(
            system="ged",
            operation="FileDocument",
            attempt=1,
            outcome="ok",
            latency_ms=2.0,
            payload_digest="d",
        ),
        context,
    )
    with hub.db.transaction() as session:  # changed while pending: the MAC no longer fits
        session.execute(update(JournalEntry).where(JournalEntry.seq.is_(None)).values(citizen_ref="cit_z"))
    journal.seal(hub.db, hub.journal_key)
    changed = journal.verify(hub.db, hub.journal_key)
    assert not changed.ok and changed.first_bad_seq == 4 and "no valid MAC" in changed.problem


def test_a_copy_of_a_genuine_row_is_detected(hub):
    """The MAC cannot cover the row's id (given by the database): a copy of a genuine row, MAC and
    all, is refused as a copy."""
    fill(hub, 3)
    with hub.db.transaction() as session:
        genuine = session.scalar(select(JournalEntry).where(JournalEntry.seq == 2))
        copy = {name: getattr(genuine, name) for name in journal._MAC_FIELDS}
        session.add(JournalEntry(**copy, mac=genuine.mac))
    journal.seal(hub.db, hub.journal_key)
    copied = journal.verify(hub.db, hub.journal_key)
    assert not copied.ok and copied.first_bad_seq == 4 and "copy of another row" in copied.problem


def test_the_wrong_key_cannot_vouch_for_the_rows(hub):
    fill(hub, 3)
    assert journal.verify(hub.db, hub.journal_key).ok
    result = journal.verify(hub.db, b"another hub's key")
    assert not result.ok and result.at_head and "fails its MAC" in result.problem


def test_rows_written_before_macs_existed_still_verify(tmp_path, sandbox):
    """Upgrading a hub whose journal predates MACs: its old rows are accepted without one (the
    migration records where MACs begin); every row written after must carry one."""
    from hub.db.engine import Database
    from hub.db.migrate import upgrade
    from hub.runtime import build_hub

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0005")
    legacy = Database(url)  # the tables as 0005 left them
    with legacy.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO journal (at, correlation_id, direction, system, operation, outcome, attempt, "
                "latency_ms, payload_digest) VALUES ('2026-01-02 03:04:05.000006', 'old', 'inbound', 'hub', "
                "'POST /v1/requests', 'accepted', 1, 1.5, 'sha256:0')"
            )
        )
    legacy.dispose()
    hub = build_hub(CONFIG, url=url, migrate=True)
    try:
        fill(hub, 2)  # seals the old row and the new ones together
        assert journal.verify(hub.db, hub.journal_key).ok
        with hub.db.transaction() as session:
            session.add(forged_row())
        journal.seal(hub.db, hub.journal_key)
        result = journal.verify(hub.db, hub.journal_key)
        assert not result.ok and result.first_bad_seq == 4 and "no valid MAC" in result.problem
    finally:
        hub.close()
