"""API clients from the operator's side: valid names only, keys revoked with `hub clients revoke`
(the key then answers 401 and each use is journaled), dead letters listed with their whole id."""

from __future__ import annotations

import shutil
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import hub.auth
from hub.cli import app
from hub.db.models import ApiClient, JournalEntry
from tests.conftest import CONFIG, ROOT, sample


@pytest.fixture
def cli(monkeypatch, database_url):
    """`hub ...` against the test's database, as an operator runs it."""
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_CONFIG", str(CONFIG))

    def run(*args: str, width: int = 80):
        result = CliRunner().invoke(app, list(args), terminal_width=width)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        return result

    return run


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "Portail",
        "portail mairie",
        "hub:master-data",
        "-portal",
        "p" * 65,
        "portail\n",
        "portail;drop",
    ],
    ids=[
        "empty",
        "blank",
        "upper-case",
        "space",
        "hub-reserved",
        "leading-dash",
        "too-long",
        "newline",
        "semicolon",
    ],
)
def test_a_client_name_hub_yaml_would_refuse_is_refused(hub, cli, name):
    result = cli("clients", "add", "--scopes", "portal", "--", name)
    assert result.exit_code == 1
    assert (
        f"error: invalid client name {name!r}: a lower-case letter, then lower-case letters" in result.output
    )
    with hub.db.sessions() as session:
        assert session.scalar(select(ApiClient).where(ApiClient.name == name)) is None


def rows_of(hub, client: str) -> list[JournalEntry]:
    with hub.db.sessions() as session:
        return list(session.scalars(select(JournalEntry).where(JournalEntry.client == client)))


def test_a_revoked_key_answers_401_and_each_use_is_journaled(live_api, cli, monkeypatch):
    monkeypatch.setattr(hub.auth, "_CACHE_TTL_S", 0.2)  # a running hub's cache, shortened
    added = cli("clients", "add", "portail-ancien", "--scopes", "portal")
    key = added.output.strip().splitlines()[-1]
    with live_api.client(key) as client:
        assert client.post("/v1/requests", json=sample("01-lefevre-copie-integrale")).status_code == 202
        revoked = cli("clients", "revoke", "portail-ancien", "--operator", "dupont")
        assert revoked.exit_code == 0, revoked.output
        assert "client portail-ancien revoked: its key answers 401" in revoked.output
        time.sleep(0.3)
        refused = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale"))
        read = client.get("/v1/requests/whatever")
    for answer in (refused, read):
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"] == {
            "code": "unauthorized",
            "message": "this client key was revoked",
            "details": None,
        }
    rows = rows_of(live_api.hub, "portail-ancien")
    assert [(r.operation, r.outcome, r.error_code) for r in rows] == [
        ("POST /v1/requests (birth-certificate)", "accepted", None),
        ("POST /v1/requests", "rejected", "unauthorized"),
        ("GET /v1/requests/{request_id}", "rejected", "unauthorized"),
    ]
    [revocation] = rows_of(live_api.hub, "dupont")
    assert (revocation.operation, revocation.outcome) == ("revoke client key", "accepted")
    listed = cli("clients", "list", width=120)
    [line] = [text for text in listed.output.splitlines() if "portail-ancien" in text]
    assert "revoked 20" in line


def test_an_unknown_key_is_still_not_journaled(live_api):
    with live_api.client("hub_not-a-key") as client:
        assert client.get("/v1/requests/x").status_code == 401
    with live_api.hub.db.sessions() as session:
        assert session.scalar(select(JournalEntry).where(JournalEntry.error_code == "unauthorized")) is None


def test_revoking_twice_says_so_and_changes_nothing(hub, cli):
    cli("clients", "add", "portail-b", "--scopes", "portal")
    assert cli("clients", "revoke", "portail-b", "--operator", "ops").exit_code == 0
    again = cli("clients", "revoke", "portail-b", "--operator", "ops")
    assert again.exit_code == 0 and "client portail-b was already revoked (at 20" in again.output
    assert len(rows_of(hub, "ops")) == 1  # the revocation, once


def test_revoking_an_unknown_client_lists_the_known_ones(hub, cli):
    cli("clients", "add", "portail-c", "--scopes", "portal")
    result = cli("clients", "revoke", "portail-x")
    assert result.exit_code == 1
    assert "error: no client 'portail-x'; clients added with `hub clients add`: portail-c" in result.output


def test_a_hub_yaml_client_is_revoked_in_hub_yaml(tmp_path, monkeypatch, database_url):
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    config = tmp_path / "config" / "hub.yaml"
    declared = "clients:\n  erp:\n    key_sha256: " + "a" * 64 + "\n    scopes: [portal]\n"
    config.write_text(config.read_text(encoding="utf-8").replace("clients: {}\n", declared), encoding="utf-8")
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["clients", "revoke", "erp", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert (
        "client 'erp' is declared in hub.yaml: remove it there (and restart) to revoke its key"
        in result.output
    )


def test_dead_letters_list_prints_whole_ids_on_an_80_column_terminal(live_hub, cli):
    """`replay` takes the whole id: the list must never cut it, however narrow the terminal."""
    body = sample("01-lefevre-copie-integrale")
    body["citizen"]["birth_name"] = "Inconnu"  # the registry has no such act: a permanent failure
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/requests/{request_id}").json()["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    for width in (80, 40):
        listed = cli("dead-letters", "list", width=width)
        assert listed.exit_code == 0
        lines = listed.output.splitlines()
        [first] = [line for line in lines if request_id in line]
        assert first.startswith(f"{request_id}  birth-certificate  step 0 (request-copy)  since 20")
        assert "RECORD_NOT_FOUND" in listed.output
        assert lines[-1] == "1 dead letter(s)"
    replayed = cli("dead-letters", "replay", request_id)
    assert replayed.exit_code == 0 and f"request {request_id} queued again" in replayed.output
