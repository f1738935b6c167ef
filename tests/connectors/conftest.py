"""Fixtures: the état-civil sandbox on a real loopback port, and connectors wired to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.etat_civil import EtatCivilConnector
from connectors.gateway import Gateway, SystemPolicy
from connectors.soap import SoapAdapter
from sandbox.etat_civil.registry import EtatCivilState
from sandbox.etat_civil.service import create_app
from sandbox.knobs import Knobs
from tests.connectors.live_server import serve
from tests.connectors.recording import ListRecorder

WSDL = Path(__file__).resolve().parents[2] / "config" / "wsdl" / "etat-civil.wsdl"
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0}


@dataclass
class EtatCivilSandbox:
    base_url: str
    state: EtatCivilState
    knobs: Knobs

    @property
    def endpoint(self) -> str:
        return self.base_url + "/etat-civil"


@dataclass
class Wired:
    connector: EtatCivilConnector
    adapter: SoapAdapter
    gateway: Gateway
    recorder: ListRecorder


@pytest.fixture
def etat_civil_sandbox() -> Iterator[EtatCivilSandbox]:
    knobs = Knobs()
    app, state = create_app(knobs=knobs, issue_delay_s=0.3)
    with serve(app) as base_url:
        yield EtatCivilSandbox(base_url, state, knobs)


@pytest.fixture
def wire(etat_civil_sandbox: EtatCivilSandbox) -> Callable[..., Wired]:
    """Build a connector on the sandbox; keyword arguments override the system policy."""

    def build(
        endpoint: str | None = None, username: str | None = None, password: str | None = None, **policy
    ) -> Wired:
        recorder = ListRecorder()
        gateway = Gateway("etat_civil", SystemPolicy(**{**FAST, **policy}), recorder)
        adapter = SoapAdapter(
            "etat_civil",
            WSDL,
            endpoint or etat_civil_sandbox.endpoint,
            gateway,
            gateway.policy.timeout_s,
            username=username,
            password=password,
        )
        return Wired(EtatCivilConnector(adapter), adapter, gateway, recorder)

    return build
