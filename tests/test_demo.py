"""``hub demo --once``: the newcomer's first command must succeed and show what happened."""

from __future__ import annotations

import io
import os

from rich.console import Console

from hub.demo import ENDPOINT_VARIABLES, run_demo


def test_demo_once_completes_every_valid_sample_and_verifies_the_journal(monkeypatch):
    for variable in ENDPOINT_VARIABLES.values():  # the demo points them at its own sandbox
        monkeypatch.setenv(variable, os.environ.get(variable, ""))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    output = io.StringIO()
    code = run_demo(port=0, once=True, console=Console(file=output, width=200))
    text = output.getvalue()
    assert code == 0, text
    assert text.count("completed") == 6
    assert "422 refused" in text
    assert "journal OK" in text and "demo succeeded" in text
