"""docs/connect-a-system.md, run: a REST and a SOAP system connected with files only, no Python.

Every ``path=...`` block of the page is written into a copy of the shipped configuration; a live
hub (API and worker) built from it then takes portal requests through the new flows, against the
sandbox's back-ends on real sockets.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.db.models import JournalEntry
from hub.runtime import build_hub
from sandbox.runner import TEST_CREDENTIALS
from tests.conftest import ROOT, _live, sample

BLOCK = re.compile(r"```yaml path=([\w./#-]+)\n(.*?)```", re.S)


def apply_page(project: Path) -> list[str]:
    """Write the page's blocks into ``project``; returns the paths written."""
    text = (ROOT / "docs" / "connect-a-system.md").read_text(encoding="utf-8")
    written = []
    for target, body in BLOCK.findall(text):
        path, _, section = target.partition("#")
        destination = project / path
        if section:  # a fragment of hub.yaml, inserted under its section
            indented = "".join(f"  {line}\n" if line else "\n" for line in body.splitlines())
            content = destination.read_text(encoding="utf-8")
            assert f"\n{section}:\n" in content, section
            destination.write_text(content.replace(f"\n{section}:\n", f"\n{section}:\n{indented}", 1))
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(body, encoding="utf-8")
        written.append(target)
    return written


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    # as the page says: the token comes from the environment (here the école sandbox's)
    monkeypatch.setenv("HUB_PERISCOLAIRE_TOKEN", TEST_CREDENTIALS["HUB_ECOLE_TOKEN"])
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    written = apply_page(tmp_path)
    assert not any(p.endswith(".py") for p in written)  # no Python anywhere
    return tmp_path


@pytest.fixture
def live(project, sandbox, knobs_reset, database_url):
    hub = build_hub(project / "config" / "hub.yaml", url=database_url, migrate=False)
    yield from _live(hub, with_worker=True)
    hub.close()


def wait_for(client, request_id: str, statuses: set[str], timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get(f"/v1/requests/{request_id}").json()
        if state["status"] in statuses | {"failed", "rejected"}:
            return state
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} still {state['status']}")


def test_a_rest_system_connected_by_configuration_enrols_a_child(live, sandbox) -> None:
    body = {
        "flow": "inscription-periscolaire",
        "citizen": sample("01-lefevre-copie-integrale")["citizen"],
        "data": {
            "child": {"birth_name": "Martin", "first_names": "Léa", "birth_date": "2019-05-02"},
            "school_year": "2026-2027",
            "school": "Accueil Jean Jaurès",
        },
    }
    with live.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        state = wait_for(client, request_id, {"submitted"})
    assert state["status"] == "submitted", state
    enrolment_id = state["result"]["enrolment"]["id"]
    enrolment = sandbox.states["ecole"].enrolment(enrolment_id)
    assert enrolment["kind"] == "periscolaire" and enrolment["school"] == "Accueil Jean Jaurès"
    with live.hub.db.sessions() as session:
        rows = session.execute(
            select(JournalEntry.system, JournalEntry.operation, JournalEntry.outcome, JournalEntry.purpose)
            .where(JournalEntry.request_id == request_id, JournalEntry.direction == "outbound")
            .order_by(JournalEntry.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("periscolaire", op, "ok", "inscriptions_periscolaires")
        for op in ("FindOrCreateFamily", "FindOrCreateChild", "CreateEnrolment")
    ]


def test_a_soap_system_connected_by_configuration_answers_a_flow(live) -> None:
    body = {
        "flow": "verification-naissance",
        "citizen": sample("01-lefevre-copie-integrale")["citizen"],
        "data": {},
    }
    with live.client() as client:
        request_id = client.post("/v1/requests", json=body).json()["id"]
        state = wait_for(client, request_id, {"completed"})
    assert state["status"] == "completed", state
    assert state["result"]["search"] == {"found": True, "act_number": "N-75056-1985-0412"}


def test_config_check_names_a_call_outside_the_purpose(project) -> None:
    from hub.runtime import load_definitions
    from hub.yamlfile import ConfigError

    hub_yaml = project / "config" / "hub.yaml"
    text = hub_yaml.read_text(encoding="utf-8")
    hub_yaml.write_text(
        text.replace("data_categories: [identite, adresse, scolarite]", "data_categories: [scolarite]")
    )
    with pytest.raises(ConfigError) as raised:
        load_definitions(hub_yaml)
    messages = [str(issue) for issue in raised.value.issues]
    assert any(
        "inscription-periscolaire.yaml:" in m
        and "periscolaire.FindOrCreateFamily sends adresse, identite, outside the data categories" in m
        for m in messages
    ), messages


@pytest.fixture
def live_quick_breaker(project, sandbox, knobs_reset, database_url):
    hub_yaml = project / "config" / "hub.yaml"
    text = hub_yaml.read_text(encoding="utf-8")
    text = text.replace(
        "backoff_initial_s: 0.5, backoff_max_s: 60", "backoff_initial_s: 0.1, backoff_max_s: 0.5"
    )
    hub_yaml.write_text(
        text.replace("breaker: {failures: 5, reset_s: 30,", "breaker: {failures: 5, reset_s: 0.5,")
    )
    hub = build_hub(hub_yaml, url=database_url, migrate=False)
    yield from _live(hub, with_worker=True)
    hub.close()


def test_back_end_down_then_back_every_request_enrolled_once(live_quick_breaker, sandbox) -> None:
    """Five requests while the back-end is down for 1.5 s: retried through the outbox with their
    idempotency keys, the breaker opening and probing; each child enrolled exactly once."""
    ecole = sandbox.states["ecole"]
    before = ecole.enrolments_created
    sandbox.knobs["ecole"].down_for(1.5)
    ids = []
    with live_quick_breaker.client() as client:
        for number in range(5):
            body = {
                "flow": "inscription-periscolaire",
                "citizen": sample("02-de-la-fontaine-extrait-filiation")["citizen"],
                "data": {
                    "child": {
                        "birth_name": "Fontaine",
                        "first_names": f"Enfant {number}",
                        "birth_date": "2018-01-02",
                    },
                    "school_year": "2026-2027",
                    "school": "Accueil du Parc",
                },
            }
            ids.append(client.post("/v1/requests", json=body).json()["id"])
        states = [wait_for(client, request_id, {"submitted"}, timeout_s=60) for request_id in ids]
    assert [s["status"] for s in states] == ["submitted"] * 5, [
        (s.get("error"), s["timeline"][-2:]) for s in states
    ]
    assert ecole.enrolments_created - before == 5
    assert len({s["result"]["enrolment"]["id"] for s in states}) == 5
    with live_quick_breaker.hub.db.sessions() as session:
        outcomes = set(
            session.scalars(
                select(JournalEntry.outcome).where(
                    JournalEntry.system == "periscolaire", JournalEntry.request_id.in_(ids)
                )
            )
        )
    assert {"ok", "transient_error"} <= outcomes
