"""``hub systems list|status|check`` against the sandbox's four back-ends on real sockets."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from connectors.errors import TransientError
from connectors.exchange import CallContext
from hub import systems_cli
from hub.cli import app
from tests.conftest import CONFIG


@pytest.fixture
def cli(knobs_reset, database_url, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setattr(systems_cli.console, "width", 400)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, ["systems", *args, "--config", str(CONFIG)])

    return run


def test_list_shows_every_system_and_its_operations(cli) -> None:
    result = cli("list")
    assert result.exit_code == 0, result.output
    for name in ("etat_civil", "ecole", "finances", "ged"):
        assert name in result.output


@pytest.mark.parametrize("system", ["etat_civil", "ecole", "finances", "ged"])
def test_check_makes_a_harmless_journaled_call(cli, system: str) -> None:
    result = cli("check", system)
    assert result.exit_code == 0, result.output
    assert f"{system}: OK" in result.output
    status = cli("status")
    assert status.exit_code == 0 and "1 calls" in status.output.split(system, 1)[1].split("\n", 1)[0]


def test_check_of_a_failing_system_exits_1_with_its_error(cli, knobs_reset) -> None:
    knobs_reset.knobs["ecole"].down_for(30)
    result = cli("check", "ecole")
    assert result.exit_code == 1
    assert "ecole: FAILED (transient) HTTP_5XX" in result.output


def test_status_shows_the_breaker_a_running_hub_opened(cli, hub, knobs_reset) -> None:
    """The breaker lives in the worker's process; the operator's shell sees its real state."""
    knobs_reset.knobs["ged"].down_for(30)
    context = CallContext(correlation_id="corr-status")
    for _ in range(hub.config.systems["ged"].breaker.failures):
        with pytest.raises(TransientError):
            hub.adapter("ged").call("Health", {}, context)
    result = cli("status", "--no-probe")
    ged = row_of(result.output, "ged")
    assert ged["breaker"].startswith("open in 1 of 1 process(es)") and "probe at" in ged["breaker"]
    assert ged["last error"].startswith("HTTP_5XX")
    assert row_of(result.output, "ecole")["breaker"] == "closed"


def test_failures_spread_over_processes_open_no_breaker_and_status_says_so(cli, knobs_reset) -> None:
    """Five one-call processes (five ``hub systems check``) each saw one failure: no breaker
    opened anywhere, and status no longer guesses one from the journal; the failures show."""
    knobs_reset.knobs["ged"].down_for(30)
    for _ in range(5):
        assert cli("check", "ged").exit_code == 1
    ged = row_of(cli("status", "--no-probe").output, "ged")
    assert ged["breaker"] == "closed" and ged["last error"].startswith("HTTP_5XX")
    assert ged["recent"] == "5 calls, 5 transient failures"


def row_of(table: str, system: str) -> dict[str, str]:
    """One system's row of the status table, by column name."""
    rows = [
        [cell.strip() for cell in line.split("│" if "│" in line else "┃")[1:-1]]
        for line in table.splitlines()
    ]
    header = next(r for r in rows if r and r[0] == "system")
    return dict(zip(header, next(r for r in rows if r and r[0] == system), strict=True))


def test_check_names_the_valid_systems(cli) -> None:
    result = cli("check", "nope")
    assert result.exit_code == 2 and "valid: etat_civil, ecole, finances, ged" in result.output


def test_every_shipped_operation_declares_its_data_categories() -> None:
    from connectors.etat_civil import EtatCivilConnector
    from hub.runtime import load_definitions

    definitions = load_definitions(CONFIG)
    for system, operations in definitions.operations.items():
        undeclared = [op for op, categories in operations.items() if categories is None]
        assert undeclared == [], f"{system}: {undeclared}"
    declared = {op: tuple(c) for op, c in definitions.config.systems["etat_civil"].data_categories.items()}
    assert declared == EtatCivilConnector.DATA_CATEGORIES
    purposes = definitions.config.purposes
    known = {c for purpose in purposes.values() for c in purpose.data_categories}
    for operations in definitions.operations.values():
        for categories in operations.values():
            assert set(categories or ()) <= known  # named as in the register of processing
