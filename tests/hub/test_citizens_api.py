"""The golden citizen record as its users meet it: an initial load with `hub citizens import`,
the 360° view and the stewards' queue over HTTP, a démarche whose citizen is known in several
systems under different spellings, merges told to the systems through an event flow."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hub import journal, journal_search
from hub.cli import app
from hub.db.master_models import GOLDEN, SOURCES, VALUES, XREFS
from hub.db.models import JournalEntry, Request
from tests.conftest import CONFIG, ROOT, _live, sample

ETAT_CIVIL_CSV = """local_id,birth_name,given_names,birth_date,sex,birth_place
N-75056-1985-0412,LEFÈVRE,"Élodie, Marie",1985-03-14,F,75056
N-2A004-1990-0007,Santoni,Paul-Antoine,1990-07-02,M,2A004
"""
ECOLE_JSON = [
    {
        "local_id": "FAM-77",
        "birth_name": "Lefevre",
        "used_name": "Martin",
        "given_names": ["Elodie"],
        "birth_date": "1985-03-14",
        "sex": "F",
        "address": "12 rue des Lilas",
        "postal_code": "33000",
        "city": "Bordeaux",
        "email": "elodie.martin@example.org",
    }
]


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["citizens", *args, "-c", str(CONFIG)], input=input)


@pytest.fixture
def exports(tmp_path: Path, monkeypatch, database_url: str) -> Path:
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    (tmp_path / "etat_civil.csv").write_text(ETAT_CIVIL_CSV, encoding="utf-8")
    (tmp_path / "ecole.json").write_text(json.dumps(ECOLE_JSON, ensure_ascii=False), encoding="utf-8")
    return tmp_path


@pytest.fixture
def loaded(exports: Path, hub) -> str:
    """Both exports imported; the golden id of Élodie Lefèvre."""
    for system, name in (("etat_civil", "etat_civil.csv"), ("ecole", "ecole.json")):
        result = invoke("import", "--system", system, str(exports / name))
        assert result.exit_code == 0, result.output
    with hub.db.sessions() as session:
        return session.scalar(select(XREFS.c.golden_id).where(XREFS.c.local_id == "N-75056-1985-0412"))


def key_with(live, *scopes: str) -> str:
    return live.hub.clients.add(f"c-{'-'.join(s.replace(':', '') for s in scopes)}", list(scopes))


def wait_for(client, request_id: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get(f"/v1/requests/{request_id}").json()
        if state["status"] in ("completed", "failed", "rejected"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} still {state['status']}")


def test_import_links_spellings_across_systems_and_reimporting_changes_nothing(exports, hub):
    first = invoke("import", "--system", "etat_civil", str(exports / "etat_civil.csv"))
    assert first.exit_code == 0, first.output
    assert "new golden record" in first.output and "2 records" in first.output
    second = invoke("import", "--system", "ecole", str(exports / "ecole.json"))
    assert second.exit_code == 0, second.output
    with hub.db.sessions() as session:
        golden_ids = dict(session.execute(select(XREFS.c.local_id, XREFS.c.golden_id)).all())
        assert golden_ids["FAM-77"] == golden_ids["N-75056-1985-0412"] != golden_ids["N-2A004-1990-0007"]
        counts = (
            session.scalar(select(func.count()).select_from(SOURCES)),
            session.scalar(select(func.count()).select_from(GOLDEN)),
        )
    again = invoke("import", "--system", "etat_civil", str(exports / "etat_civil.csv"))
    assert again.exit_code == 0 and "unchanged" in again.output
    with hub.db.sessions() as session:
        assert dict(session.execute(select(XREFS.c.local_id, XREFS.c.golden_id)).all()) == golden_ids
        assert (
            session.scalar(select(func.count()).select_from(SOURCES)),
            session.scalar(select(func.count()).select_from(GOLDEN)),
        ) == counts


def test_a_bad_export_names_file_and_line_and_imports_nothing(exports, hub):
    bad = exports / "bad.csv"
    bad.write_text(ETAT_CIVIL_CSV + "N-3,Dupont,Jean,14/03/1985,X,75056\n", encoding="utf-8")
    result = invoke("import", "--system", "etat_civil", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:4: birth_date '14/03/1985' must be yyyy-mm-dd" in result.output
    assert "sex must be M or F" in result.output and "nothing was imported" in result.output
    unknown = invoke("import", "--system", "mairie-annexe", str(exports / "etat_civil.csv"))
    assert unknown.exit_code == 1 and "unknown system 'mairie-annexe'" in unknown.output
    with hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SOURCES)) == 0


def test_360_view_shows_golden_values_with_lineage_and_every_access_is_journaled(live_api, loaded):
    agent = key_with(live_api, "citizens:read")
    with live_api.client(agent) as client:
        view = client.get(f"/v1/citizens/{loaded}").json()
        history = client.get(f"/v1/citizens/{loaded}/history").json()
        missing = client.get("/v1/citizens/no-such-id")
    assert view["values"]["birth_name"]["value"] == "LEFÈVRE"  # état civil wins the birth identity
    assert view["values"]["birth_name"]["lineage"]["system"] == "etat_civil"
    assert view["values"]["birth_name"]["lineage"]["rule"] == "trusted_source"
    assert view["values"]["address"]["value"]["city"] == "Bordeaux"
    assert view["values"]["address"]["lineage"]["system"] == "ecole"
    assert view["values"]["birth_name"]["lineage"]["exchange_id"] is not None  # the import, journaled
    assert [(x["system"], x["local_id"]) for x in view["cross_references"]] == [
        ("ecole", "FAM-77"),
        ("etat_civil", "N-75056-1985-0412"),
    ]
    assert [v["cause"] for v in history["versions"]] == ["created", "source_linked"]
    assert history["versions"][0]["xrefs"] == [["etat_civil", "N-75056-1985-0412"]]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    with live_api.hub.db.sessions() as session:
        rows = session.scalars(
            select(JournalEntry).where(JournalEntry.operation.like("GET /v1/citizens%"))
        ).all()
    assert [(r.operation, r.citizen_ref, r.outcome, r.purpose) for r in rows] == [
        ("GET /v1/citizens/{id}", loaded, "ok", "referentiel_usagers"),
        ("GET /v1/citizens/{id}/history", loaded, "ok", "referentiel_usagers"),
        ("GET /v1/citizens/{id}", "no-such-id", "not_found", "referentiel_usagers"),
    ]


def test_citizen_data_needs_its_scope(live_api, loaded):
    with live_api.client() as portal:  # the portal files requests; it cannot browse citizens
        response = portal.get(f"/v1/citizens/{loaded}")
        tasks = portal.get("/v1/stewardship/tasks")
    assert response.status_code == 403 and response.json()["error"]["details"]["required_any_of"] == [
        "citizens:read"
    ]
    assert tasks.status_code == 403
    reader = key_with(live_api, "stewardship:read")
    with live_api.client(reader) as client:
        decision = client.post("/v1/stewardship/tasks/1", json={"decision": "link"})
    assert decision.status_code == 403


def test_a_stewardship_cursor_beyond_a_bigint_is_a_422(live_api):
    reader = key_with(live_api, "stewardship:read")
    with live_api.client(reader) as client:
        beyond = client.get("/v1/stewardship/tasks", params={"after": "99999999999999999999"})
        last = client.get("/v1/stewardship/tasks", params={"after": str(2**63 - 1)})
    assert beyond.status_code == 422, beyond.text
    error = beyond.json()["error"]
    assert error["code"] == "validation_failed" and "after" in str(error["details"])
    assert last.status_code == 200 and last.json()["tasks"] == []


def test_a_demarche_resolves_a_citizen_known_under_other_spellings(live_hub, loaded):
    """The portal writes "Lefèvre", the registry "LEFÈVRE", the school "Lefevre" (used name Martin):
    the request is routed for one golden record, and the journal follows that one person."""
    with live_hub.client() as client:
        request_id = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale")).json()["id"]
        assert wait_for(client, request_id)["status"] == "completed"
    with live_hub.hub.db.sessions() as session:
        assert session.get(Request, request_id).golden_id == loaded
    journal.seal(live_hub.hub.db, live_hub.hub.journal_key)
    with live_hub.hub.db.sessions() as session:
        outbound = session.scalars(
            select(JournalEntry).where(
                JournalEntry.request_id == request_id, JournalEntry.direction == "outbound"
            )
        ).all()
    assert outbound and {row.citizen_ref for row in outbound} == {loaded}
    agent = key_with(live_hub, "citizens:read")
    with live_hub.client(agent) as client:
        view = client.get(f"/v1/citizens/{loaded}").json()
        requests = client.get(f"/v1/citizens/{loaded}/requests").json()["requests"]
    assert {x["system"] for x in view["cross_references"]} == {"etat_civil", "ecole", "portal"}
    assert view["values"]["phone"]["lineage"]["system"] == "portal"  # only the portal gave a phone
    assert [(r["id"], r["flow"], r["status"], r["target_system"]) for r in requests] == [
        (request_id, "birth-certificate", "completed", "etat_civil")
    ]
    # The same citizen again: the portal's record is known, nothing new is created.
    with live_hub.client() as client:
        again = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale")).json()["id"]
        wait_for(client, again)
    with live_hub.hub.db.sessions() as session:
        assert session.get(Request, again).golden_id == loaded  # read, written by the checkpoint
        assert session.scalar(select(func.count()).select_from(GOLDEN)) == 2
        assert session.scalar(select(func.count()).where(SOURCES.c.system == "portal")) == 1


REVIEW_JSON = [
    {
        "local_id": "T-3",
        "birth_name": "Lefèvre",
        "given_names": ["Élodie"],
        "birth_date": "1985-03-15",
        "sex": "F",
        "birth_place": "13055",
    }
]


def test_steward_links_a_review_task_and_the_decision_feeds_the_thresholds_report(live_api, loaded, exports):
    path = exports / "finances.json"
    path.write_text(json.dumps(REVIEW_JSON), encoding="utf-8")
    result = invoke("import", "--system", "finances", str(path))
    assert result.exit_code == 0, result.output
    steward = key_with(live_api, "stewardship:write")
    with live_api.client(steward) as client:
        [task] = client.get("/v1/stewardship/tasks").json()["tasks"]
        assert task["candidate_golden_id"] == loaded and task["record"]["local_id"] == "T-3"
        assert task["explanation"]["rule"] == "conflict:birth_place"
        assert task["rule"] == "conflict:birth_place" and "disagree on birth_place" in task["why"]
        levels = {c["field"]: c["level"] for c in task["explanation"]["comparisons"]}
        assert levels["birth_place"] == "else" and levels["birth_name"] == "exact"
        decided = client.post(
            f"/v1/stewardship/tasks/{task['id']}", json={"decision": "link", "reason": "même acte"}
        )
        twice = client.post(f"/v1/stewardship/tasks/{task['id']}", json={"decision": "not_same"})
        invalid = client.post(f"/v1/stewardship/tasks/{task['id']}", json={"decision": "maybe"})
        # A task id no database column holds is a 422 naming the field, not a 500.
        huge = [
            client.post(f"/v1/stewardship/tasks/{task_id}", json={"decision": "link"})
            for task_id in (2**63, 10**20, -1)
        ]
        report = client.get("/v1/stewardship/thresholds").json()
        absorbed = client.get(f"/v1/citizens/{task['golden_id']}")
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["status"] == "linked" and body["merge"]["golden_id"] == loaded
    assert body["merge"]["moved"] == [{"system": "finances", "local_id": "T-3"}]
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "task_already_decided"
    assert invalid.status_code == 422
    for answer in huge:
        assert answer.status_code == 422 and answer.json()["error"]["details"][0]["field"] == "path.task_id"
    assert report["decided"] == 1 and report["pending"] == 0
    # The task came from a conflict (born elsewhere): counted under its rule, not in the score's bands.
    assert sum(b["decided"] for b in report["bands"]) == 0 and report["scored"] == 0
    assert report["by_rule"] == [{"rule": "conflict:birth_place", "decided": 1, "linked": 1, "not_same": 0}]
    assert absorbed.status_code == 403  # stewardship:write does not grant the 360° view
    with live_api.hub.db.sessions() as session:
        shown = session.scalars(
            select(JournalEntry.citizen_ref).where(JournalEntry.operation == "GET /v1/stewardship/tasks")
        ).all()
    assert sorted(shown) == sorted([task["golden_id"], loaded])  # each citizen shown is journaled


def test_cli_show_of_a_merged_record_names_where_the_person_lives_now(exports, loaded, hub):
    with hub.db.sessions() as session:
        other = session.scalar(select(XREFS.c.golden_id).where(XREFS.c.local_id == "N-2A004-1990-0007"))
    assert invoke("merge", loaded, other).exit_code == 0
    absorbed = invoke("show", other)
    assert absorbed.exit_code == 0, absorbed.output
    assert f"merged into {loaded}" in absorbed.output and "attribute" not in absorbed.output
    survivor = invoke("show", loaded)
    assert f"merged from: {other}" in survivor.output and "N-2A004-1990-0007" in survivor.output


def test_merge_and_unmerge_over_http(live_api, loaded):
    steward = key_with(live_api, "stewardship:write", "citizens:read")
    with live_api.hub.db.sessions() as session:
        other = session.scalar(select(XREFS.c.golden_id).where(XREFS.c.local_id == "N-2A004-1990-0007"))
    with live_api.client(steward) as client:
        before = client.get(f"/v1/citizens/{loaded}").json()
        merged = client.post(f"/v1/citizens/{loaded}/merge", json={"other": other, "reason": "test"})
        gone = client.get(f"/v1/citizens/{other}").json()
        again = client.post(f"/v1/citizens/{loaded}/merge", json={"other": other})
        split = client.post(f"/v1/citizens/{loaded}/unmerge", json={"restore": other})
        after = client.get(f"/v1/citizens/{loaded}").json()
        history = client.get(f"/v1/citizens/{loaded}/history").json()
        nothing = client.post(f"/v1/citizens/{loaded}/unmerge", json={"restore": other})
    assert merged.status_code == 200 and merged.json()["systems"] == ["ecole", "etat_civil"]
    assert gone["status"] == "merged" and gone["merged_into"] == loaded
    assert again.status_code == 409 and again.json()["error"]["code"] == "golden_record_not_active"
    assert split.status_code == 200
    assert after["values"] == before["values"] and after["cross_references"] == before["cross_references"]
    assert [e["kind"] for e in history["events"]] == ["merge", "unmerge"]
    assert history["events"][0]["undone_by"] == history["events"][1]["id"]
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_unmerge"


def test_explain_over_http_gives_the_matchers_own_verdict(live_api, loaded, exports):
    """A twin scores high on names, date and place, yet the matcher never links a conflict: the
    explanation's verdict is the matcher's, not a reading of the probability alone."""
    twin = [{**ECOLE_JSON[0], "local_id": "T-TWIN", "given_names": ["Julien"], "sex": "M", "used_name": None}]
    path = exports / "twin.json"
    path.write_text(json.dumps(twin), encoding="utf-8")
    assert invoke("import", "--system", "finances", str(path)).exit_code == 0
    steward = key_with(live_api, "stewardship:read")
    with live_api.client(steward) as client:
        same = client.get(
            "/v1/stewardship/explain", params={"a": "etat_civil:N-75056-1985-0412", "b": "ecole:FAM-77"}
        )
        twins = client.get(
            "/v1/stewardship/explain", params={"a": "etat_civil:N-75056-1985-0412", "b": "finances:T-TWIN"}
        )
        unknown = client.get("/v1/stewardship/explain", params={"a": "ecole:FAM-77", "b": "ecole:NOPE"})
    assert same.status_code == 200 and same.json()["outcome"] == "link"
    assert {c["field"] for c in same.json()["comparisons"]} >= {"birth_name", "given_names", "birth_date"}
    body = twins.json()
    assert twins.status_code == 200 and body["rule"].startswith("conflict") and body["outcome"] != "link"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    # Each person compared is in the journal under their golden record (their RGPD art. 15 report).
    assert len(same.json()["golden_ids"]) == 1 and len(body["golden_ids"]) == 2
    with live_api.hub.db.sessions() as session:
        traced = session.scalars(
            select(JournalEntry.citizen_ref).where(JournalEntry.operation == "GET /v1/stewardship/explain")
        ).all()
    assert sorted(filter(None, traced)) == sorted(same.json()["golden_ids"] + body["golden_ids"])
    assert traced.count(None) == 1  # the failed attempt, traced without a person


def test_cli_explain_show_review_and_thresholds(exports, loaded):
    path = exports / "finances.json"
    path.write_text(json.dumps(REVIEW_JSON), encoding="utf-8")
    assert invoke("import", "--system", "finances", str(path)).exit_code == 0
    explained = invoke("explain", "etat_civil:N-75056-1985-0412", "ecole:FAM-77")
    assert explained.exit_code == 0, explained.output
    assert (
        "birth_name" in explained.output and "probability" in explained.output and "link" in explained.output
    )
    unknown = invoke("explain", "etat_civil:N-75056-1985-0412", "ecole:NOPE")
    assert unknown.exit_code == 1 and "no source record 'ecole:NOPE'" in unknown.output
    shown = invoke("show", loaded)
    assert shown.exit_code == 0 and "LEFÈVRE" in shown.output and "FAM-77" in shown.output
    review = invoke("review", "--actor", "agent-1", input="n\n")
    assert review.exit_code == 0, review.output
    assert (
        "T-3" in review.output and "not_same" in review.output and "1 decision(s) recorded" in review.output
    )
    # Why the steward is asked, in words and by rule.
    said = " ".join(review.output.split())
    assert (
        "why you are asked: the records disagree on birth_place" in said and "(conflict:birth_place)" in said
    )
    # A task has no matcher's outcome to point at (explain has: "→ link" above).
    assert "rule conflict:birth_place\n" in review.output and "→" not in review.output
    assert "no open review task" in invoke("review").output
    report = invoke("thresholds")
    assert report.exit_code == 0 and "1 decided (0 on the score's band), 0 open" in report.output
    assert "conflict:birth_place" in report.output  # its decision counted under its rule
    reindexed = invoke("reindex")
    assert reindexed.exit_code == 0 and "4 records indexed again" in reindexed.output


@pytest.fixture
def event_project(tmp_path: Path) -> Path:
    """The shipped configuration with a bare event flow in place of the shipped one (which calls
    the école: tests/hub/test_merge_event_flow.py), to look at the event request itself."""
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "flows" / "citizen-merged.yaml").write_text(
        "flow: citizen-merged\ntitle: Dossiers usagers fusionnés\npurpose: referentiel_usagers\n"
        "input: {type: object}\nsteps:\n  - id: told\n    set_status: completed\n",
        encoding="utf-8",
    )
    config = tmp_path / "config" / "hub.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("merge_event_flow: citizen-merge-event", "merge_event_flow: citizen-merged"),
        encoding="utf-8",
    )
    return config


def test_a_merge_files_an_event_request_that_the_worker_routes(
    event_project, sandbox, knobs_reset, database_url, exports
):
    from hub.runtime import build_hub

    hub = build_hub(event_project, url=database_url, migrate=False)
    live = _live(hub, with_worker=True)
    server = next(live)
    try:
        for system, name in (("etat_civil", "etat_civil.csv"), ("ecole", "ecole.json")):
            assert (
                CliRunner()
                .invoke(
                    app,
                    ["citizens", "import", "--system", system, str(exports / name), "-c", str(event_project)],
                )
                .exit_code
                == 0
            )
        with hub.db.sessions() as session:
            ids = dict(session.execute(select(XREFS.c.local_id, XREFS.c.golden_id)).all())
        steward = hub.clients.add("steward", ["stewardship:write"])
        with server.client(steward) as client:
            merged = client.post(
                f"/v1/citizens/{ids['FAM-77']}/merge", json={"other": ids["N-2A004-1990-0007"]}
            ).json()
        notice = merged["notice_request_id"]
        assert notice is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with hub.db.sessions() as session:
                request = session.get(Request, notice)
                if request.status == "completed":
                    break
            time.sleep(0.05)
        assert request.status == "completed" and request.flow == "citizen-merged"
        assert request.golden_id == ids["FAM-77"]
        data = request.body["data"]
        assert data["event"] == "citizen.merged" and data["other_golden_id"] == ids["N-2A004-1990-0007"]
        assert data["moved"] == [{"system": "etat_civil", "local_id": "N-2A004-1990-0007"}]
        assert data["systems"] == ["ecole", "etat_civil"]
        with hub.db.sessions() as session:
            golden_name = session.scalar(
                select(VALUES.c.value).where(
                    VALUES.c.golden_id == ids["FAM-77"], VALUES.c.attribute == "birth_name"
                )
            )
        assert request.body["citizen"]["birth_name"] == golden_name  # the merged golden identity
    finally:
        live.close()
        hub.close()


def config_errors(path: Path, old: str, new: str) -> tuple[list[str], list[str]]:
    from hub.runtime import load_definitions
    from hub.yamlfile import ConfigError

    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_definitions(path)
    return [str(issue) for issue in caught.value.issues], path.read_text(encoding="utf-8").splitlines()


def test_config_names_an_untrusted_system_at_its_line(event_project):
    messages, lines = config_errors(
        event_project, "trusted_sources: [etat_civil,", "trusted_sources: [etat_cvil,"
    )
    line = next(i for i, text in enumerate(lines, 1) if "trusted_sources" in text)
    assert len(messages) == 1 and f"hub.yaml:{line}:" in messages[0], messages
    assert "unknown system 'etat_cvil'; valid: ecole, etat_civil, finances, ged, portal" in messages[0]


def test_config_names_an_unknown_event_flow_at_its_line(event_project):
    messages, lines = config_errors(
        event_project, "merge_event_flow: citizen-merged", "merge_event_flow: fused"
    )
    line = next(i for i, text in enumerate(lines, 1) if "merge_event_flow" in text)
    assert len(messages) == 1 and f"hub.yaml:{line}:" in messages[0], messages
    assert (
        "no flow 'fused'; valid: aid-payment, birth-certificate, citizen-merge-event, citizen-merged"
        in messages[0]
    )


def test_the_documented_master_data_section_is_valid(tmp_path):
    """docs/master-data.md's configuration example loads as the shipped file's master_data section."""
    import re

    from hub.config import load_config

    text = (ROOT / "docs" / "master-data.md").read_text(encoding="utf-8")
    [example] = re.findall(r"```yaml master_data\n(.*?)```", text, re.S)
    shipped = CONFIG.read_text(encoding="utf-8")
    config = tmp_path / "config" / "hub.yaml"
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config.write_text(shipped[: shipped.index("\nmaster_data:")] + "\n" + example, encoding="utf-8")
    loaded, _ = load_config(config)
    rules = loaded.master_data.policy().rules
    assert rules["email"].rule == "most_frequent" and rules["email"].order == ("portal", "ecole")
    assert rules["birth_name"].order == ("etat_civil", "portal", "ecole", "finances")
    assert loaded.master_data.thresholds.upper == 0.95


def test_config_names_a_misspelled_rule_and_crossed_thresholds_at_their_lines(event_project):
    text = event_project.read_text(encoding="utf-8")
    event_project.write_text(
        text.replace("address: {rule: most_recent}", "address: {rule: most_recnt}").replace(
            "thresholds: {upper: 0.95, lower: 0.7}", "thresholds: {upper: 0.5, lower: 0.95}"
        ),
        encoding="utf-8",
    )
    messages, lines = config_errors(event_project, "birth_nam", "birth_nam")  # no further change
    rule = next(i for i, t in enumerate(lines, 1) if "most_recnt" in t)
    thresholds = next(i for i, t in enumerate(lines, 1) if "thresholds:" in t and "upper" in t)
    assert any(f"hub.yaml:{rule}:" in m and "most_recent" in m for m in messages), messages
    assert any(
        f"hub.yaml:{thresholds}:" in m and "lower (0.95) must not exceed upper (0.5)" in m for m in messages
    )


@pytest.fixture
def routing_project(tmp_path: Path) -> Path:
    """The shipped configuration plus a flow whose mapping routes with each system's own
    identifier of the citizen (a `map` step, its result kept with the request)."""
    for folder in ("config", "flows", "mappings"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "mappings" / "routing").mkdir()
    (tmp_path / "mappings" / "routing" / "identifiers.yaml").write_text(
        "mapping: routing/identifiers\nsource: {name: a request}\ntarget: {name: identifiers}\n"
        "fields:\n"
        "  family: {path: $.golden.identifiers.ecole, required: true}\n"
        "  act: {path: $.golden.identifiers.etat_civil}\n"
        "  golden: {path: $.golden.id, required: true}\n",
        encoding="utf-8",
    )
    (tmp_path / "flows" / "school-routing.yaml").write_text(
        "flow: school-routing\ntitle: Dossier scolaire\npurpose: referentiel_usagers\n"
        "input: {type: object}\nsteps:\n"
        "  - id: identify\n    map: {mapping: routing/identifiers}\n    save_as: ids\n"
        "  - id: done\n    set_status: completed\n",
        encoding="utf-8",
    )
    return tmp_path / "config" / "hub.yaml"


def test_a_flow_routes_with_each_systems_own_identifier_of_the_citizen(
    routing_project, sandbox, knobs_reset, database_url, exports
):
    """The portal knows Élodie by her identity only; the flow reaches the école with FAM-77 and the
    registry with its act number, found through her golden record."""
    from hub.runtime import build_hub

    hub = build_hub(routing_project, url=database_url, migrate=False)
    assert hub.flows["school-routing"].reads_identifiers
    assert not hub.flows["birth-certificate"].reads_identifiers  # no extra read for the others
    live = _live(hub, with_worker=True)
    server = next(live)
    try:
        for system, name in (("etat_civil", "etat_civil.csv"), ("ecole", "ecole.json")):
            imported = CliRunner().invoke(
                app,
                ["citizens", "import", "--system", system, str(exports / name), "-c", str(routing_project)],
            )
            assert imported.exit_code == 0, imported.output
        body = sample("01-lefevre-copie-integrale")
        body.update(flow="school-routing", data={})
        with server.client() as client:
            request_id = client.post("/v1/requests", json=body).json()["id"]
            state = wait_for(client, request_id)
    finally:
        live.close()
    with hub.db.sessions() as session:
        golden_id = session.scalar(select(XREFS.c.golden_id).where(XREFS.c.local_id == "FAM-77"))
    hub.close()
    assert state["status"] == "completed", state
    assert state["result"]["ids"] == {"family": "FAM-77", "act": "N-75056-1985-0412", "golden": golden_id}


@pytest.mark.parametrize("listed", [True, False], ids=["as values", "through subqueries"])
def test_a_citizens_journal_lists_the_imports_that_brought_their_records(
    live_api, loaded, monkeypatch, listed
):
    """An import journals one row per file, naming no one person: a citizen's selection still lists
    the imports their records came in by (RGPD art. 15: where the data came from), and only those;
    the same whether the page gets them as values or, past MAX_LISTED, through subqueries."""
    if not listed:
        monkeypatch.setattr(journal_search, "MAX_LISTED", 0)
    auditor = key_with(live_api, "audit")
    with live_api.hub.db.sessions() as session:
        other = session.scalar(select(XREFS.c.golden_id).where(XREFS.c.local_id == "N-2A004-1990-0007"))

    def imports_of(golden_id: str) -> list[str]:
        with live_api.client(auditor) as client:
            answer = client.get("/v1/journal", params={"citizen": golden_id})
        assert answer.status_code == 200, answer.text
        return [
            e["operation"] for e in answer.json()["entries"] if e["operation"].startswith("citizens import")
        ]

    assert [name.split(":")[0] for name in imports_of(loaded)] == [
        "citizens import (etat_civil",
        "citizens import (ecole",
    ]
    assert [name.split(":")[0] for name in imports_of(other)] == ["citizens import (etat_civil"]
