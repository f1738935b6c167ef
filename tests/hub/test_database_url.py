"""An unusable HUB_DATABASE_URL is one line an operator can act on and exit 1, from every command
that opens the database; ``postgres://`` means PostgreSQL like ``postgresql://``."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.db import engine
from hub.db.engine import DatabaseUnusable, engine_url
from tests.conftest import CONFIG

COMMANDS = [
    ["db", "upgrade"],
    ["serve", "--port", "1"],
    ["worker"],
    ["audit", "verify"],
    ["dead-letters", "list"],
    ["dead-letters", "replay", "nope"],
    ["clients", "list"],
    ["clients", "add", "portal-x", "--scopes", "portal"],
    ["citizens", "thresholds"],
    ["systems", "status"],
]
EXPECTED = "postgresql://user@host:5432/database (or postgres://...) or sqlite:///path/to/hub.db"


def run(args: list[str], url: str, monkeypatch) -> tuple[int, list[str]]:
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_CONFIG", str(CONFIG))
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output.strip().splitlines()


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_an_unreachable_server_is_one_line_from_every_command(command, monkeypatch):
    code, lines = run(command, "postgresql://hub:secret@127.0.0.1:1/hub", monkeypatch)
    assert code == 1
    assert lines == [
        "error: cannot use the database postgresql://hub:***@127.0.0.1:1/hub: connection failed: connection "
        'to server at "127.0.0.1", port 1 failed: Connection refused'
    ]


@contextlib.contextmanager
def server_that_does_not_answer(kind: str) -> Iterator[int]:
    """A loopback port where a PostgreSQL client would wait for ever, its number. ``drops``: the
    listening socket's accept queue is full, so the kernel drops each new SYN, as a host that
    filters packets does; ``mute``: the TCP connection is made, but nothing answers the client's
    startup message (a hung server, a proxy that forwards to nowhere)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # room for one connection not yet accepted
        port = listener.getsockname()[1]
        with contextlib.ExitStack() as fillers:
            if kind == "drops":
                fillers.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            yield port


DOES_NOT_ANSWER = [["db", "upgrade"], ["serve", "--port", "1"], ["worker"], ["audit", "verify"]]


@pytest.mark.parametrize(
    ("kind", "command"),
    [("drops", command) for command in DOES_NOT_ANSWER] + [("mute", ["db", "upgrade"])],
    ids=[f"drops-{c[0]}" for c in DOES_NOT_ANSWER] + ["mute-db"],
)
def test_a_server_that_does_not_answer_is_one_line_naming_it_and_the_wait(kind, command, monkeypatch):
    with server_that_does_not_answer(kind) as port:
        url = f"postgresql://hub:secret@127.0.0.1:{port}/hub?connect_timeout=2"
        code, lines = run(command, url, monkeypatch)
    assert (code, lines) == (
        1,
        [
            f"error: cannot use the database postgresql://hub:***@127.0.0.1:{port}/hub?connect_timeout=2: "
            f"the server at 127.0.0.1:{port} did not answer in 2 s (connect_timeout)"
        ],
    )


def test_without_a_connect_timeout_the_hub_sets_one(monkeypatch):
    """Neither the URL nor PGCONNECT_TIMEOUT sets one: the hub's default bounds the wait (psycopg's
    own would be minutes). The default is lowered here so the test waits 2 s, not 10."""
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    with server_that_does_not_answer("drops") as port:
        code, lines = run(["db", "upgrade"], f"postgresql://hub@127.0.0.1:{port}/hub", monkeypatch)
    assert (code, lines) == (
        1,
        [
            f"error: cannot use the database postgresql://hub@127.0.0.1:{port}/hub: "
            f"the server at 127.0.0.1:{port} did not answer in 2 s (connect_timeout)"
        ],
    )


@pytest.mark.parametrize(
    ("query", "environment", "said"),
    [
        ("?connect_timeout=1", None, "2 s (connect_timeout=1, libpq's minimum is 2)"),
        ("", "2", "2 s (connect_timeout)"),
    ],
    ids=["url-below-libpq-minimum", "PGCONNECT_TIMEOUT"],
)
def test_the_operators_connect_timeout_wins_over_the_hubs(query, environment, said, monkeypatch):
    if environment is None:
        monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("PGCONNECT_TIMEOUT", environment)
    with server_that_does_not_answer("drops") as port:
        code, lines = run(["db", "upgrade"], f"postgresql://hub@127.0.0.1:{port}/hub{query}", monkeypatch)
    assert code == 1
    assert lines == [
        f"error: cannot use the database postgresql://hub@127.0.0.1:{port}/hub{query}: "
        f"the server at 127.0.0.1:{port} did not answer in {said}"
    ]


def test_a_connect_timeout_that_is_not_a_number_is_one_line(monkeypatch):
    code, lines = run(["db", "upgrade"], "postgresql://hub@127.0.0.1:1/hub?connect_timeout=soon", monkeypatch)
    assert (code, lines) == (
        1,
        [
            "error: cannot use the database postgresql://hub@127.0.0.1:1/hub?connect_timeout=soon: "
            "bad value for connect_timeout: 'soon'"
        ],
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", f"error: HUB_DATABASE_URL is not a database URL; expected {EXPECTED}"),
        (
            "postgresql//hub:secret@db/hub",
            f"error: HUB_DATABASE_URL is not a database URL; expected {EXPECTED}",
        ),
        (
            "mysql://hub:secret@db/hub",
            "error: database URL scheme 'mysql' is not supported: the hub runs on PostgreSQL or SQLite; "
            f"expected {EXPECTED}",
        ),
        (
            "sqlite:////nonexistent/folder/hub.db",
            "error: cannot use the database sqlite:////nonexistent/folder/hub.db: "
            "unable to open database file",
        ),
    ],
    ids=["not-a-url", "missing-colon", "other-database", "sqlite-folder-missing"],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["audit", "verify"], ["serve"]], ids=lambda c: c[0])
def test_a_url_the_hub_cannot_use_is_one_line_and_exit_1(url, message, command, monkeypatch):
    code, lines = run(command, url, monkeypatch)
    assert (code, lines) == (1, [message])
    assert "secret" not in message


def postgres_url() -> str:
    """The suite's PostgreSQL server; on the SQLite run these tests are skipped like the suite's
    other PostgreSQL-only ones (the PostgreSQL run, which CI makes too, covers them)."""
    url = os.environ.get("HUB_TEST_DATABASE_URL", "")
    if not url.startswith("postgresql://"):
        pytest.skip("PostgreSQL-only: the run with HUB_TEST_DATABASE_URL=postgresql://... covers it")
    return url


def test_a_missing_postgresql_database_is_one_line(monkeypatch):
    server = postgres_url().rsplit("/", 1)[0]
    code, lines = run(["db", "upgrade"], f"{server}/no_such_database_here", monkeypatch)
    assert code == 1
    [line] = lines
    assert line.startswith(
        f"error: cannot use the database {server}/no_such_database_here: connection failed"
    )
    assert line.endswith('database "no_such_database_here" does not exist')


def test_postgres_scheme_is_postgresql(monkeypatch):
    """What libpq, Heroku and most hosting platforms give: accepted as PostgreSQL (psycopg 3)."""
    url = "postgres://" + postgres_url().removeprefix("postgresql://")
    code, lines = run(["db", "upgrade"], url, monkeypatch)
    assert code == 0, lines
    assert lines[-1].startswith("database at head: postgresql+psycopg://")


@pytest.mark.parametrize(
    ("given", "engine"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d?sslmode=require", "postgresql+psycopg://u@h/d?sslmode=require"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///var/hub.db", "sqlite:///var/hub.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_engine_url(given, engine):
    assert engine_url(given) == engine


def test_engine_url_never_shows_a_password():
    with pytest.raises(DatabaseUnusable) as caught:
        engine_url("oracle://scott:tiger@db/hub")
    assert "tiger" not in str(caught.value)
