"""Signed checkpoints kept outside the database: a rollback to an older genuine head (its row
replayed, the tail deleted) verifies from inside, and is caught by a checkpoint taken before it."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, text
from typer.testing import CliRunner

from hub import journal
from hub.cli import app
from hub.db.models import JournalEntry, JournalHead
from hub.journal_checkpoint import (
    CheckpointError,
    CheckpointSigner,
    HeadRefused,
    checkpoint,
    journal_origin,
    open_checkpoint,
)
from tests.conftest import CONFIG
from tests.hub.test_journal import fill
from tests.hub.test_journal_head import set_head

KEY = bytes(range(32))
AT = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)


def signer() -> CheckpointSigner:
    return CheckpointSigner(journal_origin("33063"), KEY)


# ------------------------------------------------------------------------------ the signed note


def test_a_checkpoint_is_a_c2sp_signed_note_an_auditor_opens_with_the_verifier_key_alone():
    made = signer().sign(1234, "ab" * 32, AT)
    body, signature_line = made.note.split("\n\n")
    assert body.split("\n") == [
        "hub-journal/33063",
        "1234",
        base64.b64encode(bytes.fromhex("ab" * 32)).decode(),
        "time 2026-11-30T10:00:00Z",
    ]
    # The signature line, key id and signed bytes as the signed-note spec defines them.
    dash, name, encoded = signature_line.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "hub-journal/33063")
    name_part, key_id_hex, public_b64 = signer().verifier_key.split("+", 2)
    public = base64.b64decode(public_b64)
    assert name_part == name and public[:1] == b"\x01"
    expected_id = hashlib.sha256(name.encode() + b"\n" + public).digest()[:4]
    raw = base64.b64decode(encoded)
    assert raw[:4] == expected_id and key_id_hex == expected_id.hex()
    Ed25519PublicKey.from_public_bytes(public[1:]).verify(raw[4:], (body + "\n").encode())

    opened = open_checkpoint(made.note, signer().verifier_key)  # no journal key needed
    assert (opened.seq, opened.hash, opened.time, opened.origin) == (1234, "ab" * 32, AT, "hub-journal/33063")


def test_any_edit_of_a_checkpoint_is_refused():
    note = signer().sign(7, "cd" * 32, AT).note
    body_length = note.index("\n\n")
    for position in range(body_length):
        if note[position] == "\n":
            continue
        edited = note[:position] + ("X" if note[position] != "X" else "Y") + note[position + 1 :]
        with pytest.raises(CheckpointError, match="does not verify"):
            open_checkpoint(edited, signer().verifier_key)


@pytest.mark.parametrize(
    ("note", "problem"),
    [
        ("", "not a signed note"),
        ("hub-journal/33063\n1\n\n", "no signature line"),
        ("hub-journal/33063\n1\n\n- hub-journal/33063 QUJD\n", "malformed signature line"),
        ("a\n\n\u2014 someone-else QUJDREVGR0g=\n", "not signed by this journal's key"),
        ("a\n\n\u2014 hub-journal/33063 not*base64\n", "not base64"),
        ("a\x00\n\n\u2014 x y\n", "control characters"),
        ("x" * 5000, "longer than"),
    ],
)
def test_what_is_not_a_checkpoint_says_why(note, problem):
    with pytest.raises(CheckpointError, match=problem):
        open_checkpoint(note, signer().verifier_key)


def test_another_hubs_checkpoint_is_refused():
    other = CheckpointSigner(journal_origin("33063"), b"another hub's journal key")
    with pytest.raises(CheckpointError, match=r"does not verify|not signed by this journal's key"):
        signer().open(other.sign(3, "00" * 32, AT).note)


# --------------------------------------------------------------------------- against the journal


def roll_back(hub, saved: JournalHead) -> None:
    """What someone with write access to the database can do: replay a saved genuine head row and
    delete the rows sealed after it."""
    with hub.db.transaction() as session:
        session.execute(text("DELETE FROM journal WHERE seq > :s"), {"s": saved.seq})
    set_head(hub, seq=saved.seq, hash=saved.hash, mac_from_id=saved.mac_from_id, mac=saved.mac)


def saved_head(hub) -> JournalHead:
    with hub.db.sessions() as session:
        return session.get(JournalHead, 1)


def test_a_rollback_to_an_older_genuine_head_is_caught_by_a_checkpoint(hub):
    fill(hub, 5)
    old = saved_head(hub)
    fill(hub, 5)
    kept = checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key)
    assert kept.seq == 10
    confirmed = journal.verify(hub.db, hub.journal_key, [kept])
    assert confirmed.ok and confirmed.checkpoints == 1 and "1 checkpoint(s) confirmed" in confirmed.describe()

    roll_back(hub, old)
    inside = journal.verify(hub.db, hub.journal_key)
    assert inside.ok and inside.head_seq == 5  # from inside, an older genuine state is all there is
    result = journal.verify(hub.db, hub.journal_key, [hub.checkpoint_signer.open(kept.note)])
    assert not result.ok and result.first_bad_seq == 6
    assert "the head (seq 5) is behind the checkpoint of" in result.problem
    assert "rolled back to an older head, rows 6..10 are gone" in result.problem


def test_a_rollback_sealed_again_past_the_checkpoint_is_caught_at_its_position(hub):
    """Roll back, drop a row, let the hub seal the rest again and more rows after: the head is past
    the checkpoint again, but the checkpoint's position no longer holds its hash."""
    fill(hub, 4)
    old = saved_head(hub)
    fill(hub, 4)
    kept = checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key)
    with hub.db.transaction() as session:
        session.execute(text("DELETE FROM journal WHERE seq = 6"))
        session.execute(text("UPDATE journal SET seq = NULL, prev_hash = NULL, hash = NULL WHERE seq > 4"))
    set_head(hub, seq=old.seq, hash=old.hash, mac=old.mac)
    fill(hub, 3)  # seals the three left over and three new rows: seq 5..10
    assert journal.verify(hub.db, hub.journal_key).ok
    result = journal.verify(hub.db, hub.journal_key, [kept])
    assert not result.ok and result.first_bad_seq == 8
    assert "recorded hash" in result.problem and "rewritten since" in result.problem


def test_older_checkpoints_and_the_empty_journals_are_confirmed(hub):
    points = [checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key)]  # seq 0, the genesis
    for _ in range(3):
        fill(hub, 2)
        points.append(checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key))
    assert [p.seq for p in points] == [0, 2, 4, 6]
    result = journal.verify(hub.db, hub.journal_key, points)
    assert result.ok and result.checkpoints == 4


def test_two_checkpoints_of_one_position_must_both_hold(hub):
    """Two signed checkpoints of one seq with two hashes: the hub signed two histories; the one the
    chain no longer holds is named, whichever order they are given in."""
    fill(hub, 3)
    first = checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key, at=datetime(2026, 11, 1, tzinfo=UTC))
    with hub.db.transaction() as session:
        session.execute(text("UPDATE journal SET seq = NULL, prev_hash = NULL, hash = NULL WHERE seq = 3"))
        session.execute(text("DELETE FROM journal WHERE seq = 2"))
    set_head(hub, seq=1, hash=row_hash(hub, 1), mac=journal.head_mac(hub.journal_key, 1, row_hash(hub, 1), 1))
    fill(hub, 1)  # the old third row and a new one: seq 2 and 3 again, other hashes
    second = checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key, at=datetime(2026, 11, 2, tzinfo=UTC))
    assert (first.seq, second.seq) == (3, 3) and first.hash != second.hash
    for given in ([first, second], [second, first]):
        result = journal.verify(hub.db, hub.journal_key, given)
        assert not result.ok and result.first_bad_seq == 3
        assert "the checkpoint of 2026-11-01T00:00:00Z (seq 3) recorded hash" in result.problem


def row_hash(hub, seq: int) -> str:
    with hub.db.sessions() as session:
        return session.scalar(select(JournalEntry.hash).where(JournalEntry.seq == seq))


def test_no_checkpoint_is_signed_for_a_head_that_fails_its_mac(hub):
    fill(hub, 3)
    set_head(hub, seq=2)
    with pytest.raises(HeadRefused, match="fails its MAC"):
        checkpoint(hub.db, hub.checkpoint_signer, hub.journal_key)


# ----------------------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(hub, monkeypatch, database_url):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_CONFIG", str(CONFIG))
    return hub


def test_cli_checkpoint_file_round_trip_and_rollback(cli_env, tmp_path):
    runner = CliRunner()
    fill(cli_env, 3)
    old = saved_head(cli_env)
    fill(cli_env, 3)
    path = tmp_path / "journal-0006.checkpoint"
    made = runner.invoke(app, ["audit", "checkpoint", "--out", str(path)])
    assert made.exit_code == 0, made.output
    assert f"checkpoint of seq 6 written to {path}" in made.output
    assert cli_env.checkpoint_signer.open(path.read_text(encoding="utf-8")).seq == 6

    again = runner.invoke(app, ["audit", "checkpoint", "--out", str(path)])
    assert again.exit_code == 2 and "exists" in again.output  # a kept checkpoint is never overwritten

    ok = runner.invoke(app, ["audit", "verify", "--checkpoint", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "journal OK: 6 rows verified up to seq 6" in ok.output and "1 checkpoint(s) confirmed" in ok.output

    roll_back(cli_env, old)
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    caught = runner.invoke(app, ["audit", "verify", "--checkpoint", str(path)])
    assert caught.exit_code == 1
    assert "journal BROKEN at seq 4: the head (seq 3) is behind the checkpoint of" in caught.output


def test_cli_refuses_a_checkpoint_file_it_cannot_use_with_exit_2(cli_env, tmp_path):
    fill(cli_env, 2)
    runner = CliRunner()
    printed = runner.invoke(app, ["audit", "checkpoint"])
    assert printed.exit_code == 0
    note = printed.stdout
    assert cli_env.checkpoint_signer.open(note).seq == 2
    forged = tmp_path / "forged"
    forged.write_text(note.replace("\n2\n", "\n1\n", 1), encoding="utf-8")
    refused = runner.invoke(app, ["audit", "verify", "--checkpoint", str(forged)])
    assert refused.exit_code == 2
    assert f"{forged}: not a checkpoint of this journal: the signature of" in refused.output
    missing = runner.invoke(app, ["audit", "verify", "--checkpoint", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "cannot read the checkpoint" in missing.output


def test_cli_verifier_key_opens_the_cli_checkpoint(cli_env):
    fill(cli_env, 1)
    runner = CliRunner()
    key = runner.invoke(app, ["audit", "verifier-key"]).stdout.strip()
    assert key.startswith("hub-journal/33063+")
    note = runner.invoke(app, ["audit", "checkpoint"]).stdout
    assert open_checkpoint(note, key).seq == 1


def test_cli_checkpoint_refuses_a_head_that_fails_its_mac(cli_env):
    fill(cli_env, 2)
    set_head(cli_env, hash="e" * 64)
    result = CliRunner().invoke(app, ["audit", "checkpoint"])
    assert result.exit_code == 1 and "no checkpoint signed: journal head fails its MAC" in result.output


# ----------------------------------------------------------------------------------------- API


def test_api_signs_a_checkpoint_and_verifies_against_it(live_api):
    hub = live_api.hub
    fill(hub, 4)
    old = saved_head(hub)
    fill(hub, 2)
    auditor = hub.clients.add("cnil-checkpoints", ["audit"])
    with live_api.client(auditor) as client:
        answer = client.get("/v1/journal/checkpoint")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        note = answer.text
        assert open_checkpoint(note, hub.checkpoint_signer.verifier_key).seq == 6
        ok = client.post("/v1/journal/verify", json={"checkpoints": [note]})
        assert ok.status_code == 200 and ok.json()["ok"] and ok.json()["checkpoints"] == 1
        roll_back(hub, old)
        assert client.get("/v1/journal/verify").json()["ok"]  # without the checkpoint: nothing to see
        caught = client.post("/v1/journal/verify", json={"checkpoints": [note]}).json()
        assert not caught["ok"] and caught["first_bad_seq"] == 5 and "rolled back" in caught["problem"]
        forged = client.post("/v1/journal/verify", json={"checkpoints": [note.replace("\n6\n", "\n9\n")]})
        assert forged.status_code == 422 and forged.json()["error"]["code"] == "invalid_checkpoint"
        assert forged.json()["error"]["details"]["index"] == 0
        with live_api.client() as portal:  # the portal has no audit scope
            assert portal.get("/v1/journal/checkpoint").status_code == 403
    with hub.db.sessions() as session:
        reads = session.scalars(
            select(JournalEntry.outcome)
            .where(JournalEntry.client == "cnil-checkpoints")
            .order_by(JournalEntry.id)
        ).all()
    assert reads == ["ok", "ok", "ok", "broken", "invalid_checkpoint"]


def test_api_refuses_to_sign_a_head_that_fails_its_mac(live_api):
    hub = live_api.hub
    fill(hub, 2)
    set_head(hub, mac=None)
    auditor = hub.clients.add("cnil-refused", ["audit"])
    with live_api.client(auditor) as client:
        answer = client.get("/v1/journal/checkpoint")
        verified = client.get("/v1/journal/verify").json()
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "journal_head_not_authentic"
    assert not verified["ok"] and verified["at_head"] and "has no MAC" in verified["problem"]
