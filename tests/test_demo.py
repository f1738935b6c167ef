"""``hub demo --once``: the newcomer's first command must succeed and show what happened."""

from __future__ import annotations

import io
import os

from rich.console import Console

from hub.demo import run_demo
from sandbox.runner import HUB_VARIABLES


def test_demo_once_completes_every_valid_sample_and_verifies_the_journal(monkeypatch):
    for variable in HUB_VARIABLES:  # the demo points them at its own sandbox
        monkeypatch.setenv(variable, os.environ.get(variable, ""))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    output = io.StringIO()
    code = run_demo(port=0, once=True, console=Console(file=output, width=200))
    text = output.getvalue()
    assert code == 0, text
    assert text.count("completed") == 6
    assert "422 refused" in text
    assert "journal OK" in text and "demo succeeded" in text


def test_a_serving_demo_prints_a_command_that_files_a_request(monkeypatch):
    """Without --once the demo keeps serving and prints the portal key in a ready curl command:
    the newcomer can replay a sample by hand against the running hub."""
    import re
    import shlex

    import httpx

    import hub.demo

    for variable in HUB_VARIABLES:
        monkeypatch.setenv(variable, os.environ.get(variable, ""))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    output = io.StringIO()
    answers = []

    def replay_the_printed_command() -> None:  # instead of serving until Ctrl-C
        [command] = [line for line in output.getvalue().splitlines() if line.startswith("try: curl")]
        words = shlex.split(command.removeprefix("try: "))
        headers = dict(h.split(": ", 1) for h in (words[i + 1] for i, w in enumerate(words) if w == "-H"))
        body = (
            hub.demo.SAMPLES.parent.parent / re.sub(r"^@", "", words[words.index("--data") + 1])
        ).read_bytes()
        answers.append(httpx.post(words[-1], content=body, headers=headers, timeout=30))

    monkeypatch.setattr(hub.demo, "_wait_forever", replay_the_printed_command)
    assert run_demo(port=0, once=False, console=Console(file=output, width=80)) == 0, output.getvalue()
    [answer] = answers
    assert answer.status_code == 202 and answer.json()["status"] == "received"


def test_a_demo_with_a_config_error_prints_it_at_its_line_without_a_traceback(tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from hub.cli import app
    from tests.conftest import ROOT

    for variable in HUB_VARIABLES:
        monkeypatch.setenv(variable, os.environ.get(variable, ""))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    hub_yaml = tmp_path / "config" / "hub.yaml"
    text = hub_yaml.read_text(encoding="utf-8")
    hub_yaml.write_text(text.replace("    timeout_s: 10\n", "    timeuot_s: 10\n", 1), encoding="utf-8")
    line = hub_yaml.read_text(encoding="utf-8").splitlines().index("    timeuot_s: 10") + 1
    result = CliRunner().invoke(app, ["demo", "--once", "--port", "0", "-c", str(hub_yaml)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # typer's exit, not an uncaught error
    assert f"hub.yaml:{line}:" in result.output and "unknown key 'timeuot_s'" in result.output
    assert "configuration error(s)" in result.output and "Traceback" not in result.output
