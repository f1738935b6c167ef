"""``hub systems list|status|check`` against the sandbox's four back-ends on real sockets."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

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


def test_status_shows_the_breaker_opened_by_repeated_failures(cli, knobs_reset) -> None:
    knobs_reset.knobs["ged"].down_for(30)
    for _ in range(5):
        assert cli("check", "ged").exit_code == 1
    result = cli("status", "--no-probe")
    line = next(line for line in result.output.splitlines() if "ged" in line)
    assert "open" in line and "HTTP_5XX" in line


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
