"""Each JSON answer the hub sends is the one its OpenAPI document declares: every success answer
is a named, closed schema, and the real answers of a citizen's whole story (imports, a démarche,
a review task, a merge and its unmerge, a steward's decision, the journal and its checkpoints)
validate against it. The schemas describe the services' dicts without being run over them
(hub.api.answers), so this is what keeps the document and the wire together."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select

from hub.api import body
from hub.api.app import create_app
from hub.db.master_models import XREFS
from tests.conftest import ROOT, sample
from tests.hub import test_citizens_api as citizens_api
from tests.hub.test_citizens_api import REVIEW_JSON, invoke, wait_for
from tests.hub.test_openapi import operations

# The initial load of test_citizens_api: état civil and école exports, Élodie Lefèvre's golden id.
exports = citizens_api.exports
loaded = citizens_api.loaded

# The finance system's payer record states the school's family id (a stated identifier, linked by it).
PAYER_CSV = "local_id,birth_name,given_names,birth_date,id_ecole\nT-3,Martin,Elodi,1985-03-14,FAM-77\n"
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER  # date-time: RFC 3339, offset included


@pytest.fixture
def document(hub) -> dict:
    return create_app(hub).openapi()


def json_answers(document: dict) -> dict[str, dict]:
    """The success answers of every operation that answers JSON, by operation."""
    return {
        name: response
        for name, operation in operations(document).items()
        for status, response in operation["responses"].items()
        if status.startswith("2") and "application/json" in response.get("content", {})
    }


def test_every_json_answer_is_a_named_closed_schema(document):
    answers = json_answers(document)
    assert "GET /v1/citizens/{golden_id}" in answers and "GET /v1/journal" in answers
    schemas = document["components"]["schemas"]
    for name, response in answers.items():
        schema = response["content"]["application/json"]["schema"]
        if name == "GET /health":  # its own small inline schema, the 503 included
            continue
        assert set(schema) == {"$ref"}, name
        assert response["description"] != "Successful Response", name  # says what the answer is
        for component in reachable(schemas, schema["$ref"]):
            if schemas[component].get("type") == "object" and "properties" in schemas[component]:
                assert schemas[component].get("additionalProperties") is False, component


def reachable(schemas: dict, ref: str) -> set[str]:
    """The component names a reference leads to, itself included."""
    seen: set[str] = set()
    pending = [ref]
    while pending:
        name = pending.pop().removeprefix("#/components/schemas/")
        if name in seen:
            continue
        seen.add(name)
        pending += [r for r in refs_in(schemas[name]) if r.startswith("#/components/schemas/")]
    return seen


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in refs_in(v)]
    if isinstance(node, list):
        return [r for item in node for r in refs_in(item)]
    return []


class Checked:
    """Validates each answer against the schema the document declares for its operation."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.answers = json_answers(document)
        self.seen: dict[str, int] = {}

    def __call__(self, name: str, response, status: int = 200) -> Any:
        assert response.status_code == status, (name, response.text)
        declared = self.answers[name]["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator(
            {**declared, "components": self.document["components"]}, format_checker=FORMATS
        )
        body = response.json()
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not problems, (name, problems, json.dumps(body, ensure_ascii=False)[:2000])
        self.seen[name] = self.seen.get(name, 0) + 1
        return body


def golden_of(hub, system: str, local_id: str) -> str:
    with hub.db.sessions() as session:
        return session.scalar(
            select(XREFS.c.golden_id).where(XREFS.c.system == system, XREFS.c.local_id == local_id)
        )


def test_the_answers_of_a_citizens_whole_story_are_the_ones_declared(live_hub, loaded, exports, document):
    hub = live_hub.hub
    (exports / "payer.csv").write_text(PAYER_CSV, encoding="utf-8")
    review = [{**REVIEW_JSON[0], "local_id": "T-4"}]
    (exports / "review.json").write_text(json.dumps(review), encoding="utf-8")
    for name in ("payer.csv", "review.json"):
        result = invoke("import", "--system", "finances", str(exports / name))
        assert result.exit_code == 0, result.output
    other = golden_of(hub, "etat_civil", "N-2A004-1990-0007")
    check = Checked(document)
    admin = hub.clients.add("answers-admin", ["admin"])

    with live_hub.client(admin) as client:
        check("GET /health", client.get("/health"))
        # A démarche whose citizen says when the portal last changed her identity.
        filed = sample("01-lefevre-copie-integrale")
        filed["citizen"]["updated_at"] = "2026-01-02T03:04:05+01:00"
        accepted = check("POST /v1/requests", client.post("/v1/requests", json=filed), 202)
        wait_for(client, accepted["id"])
        check("GET /v1/requests/{request_id}", client.get(accepted["status_url"]))

        view = check("GET /v1/citizens/{golden_id}", client.get(f"/v1/citizens/{loaded}"))
        assert view["stated_identifiers"] and view["values"]["given_names"]["value"]
        assert view["values"]["phone"]["lineage"]["updated_at"] is not None  # the portal said when
        assert view["values"]["birth_name"]["lineage"]["updated_at"] is None  # the registry did not
        requests = check(
            "GET /v1/citizens/{golden_id}/requests", client.get(f"/v1/citizens/{loaded}/requests")
        )
        assert [r["id"] for r in requests["requests"]] == [accepted["id"]]

        [task] = check("GET /v1/stewardship/tasks", client.get("/v1/stewardship/tasks"))["tasks"]
        assert task["record"]["local_id"] == "T-4" and task["decided_at"] is None

        merged = check(
            "POST /v1/citizens/{golden_id}/merge",
            client.post(f"/v1/citizens/{loaded}/merge", json={"other": other, "reason": "test"}),
        )
        assert merged["moved"] and merged["kind"] == "merge"
        absorbed = check("GET /v1/citizens/{golden_id}", client.get(f"/v1/citizens/{other}"))
        assert absorbed["status"] == "merged" and absorbed["values"] == {}
        survivor = check("GET /v1/citizens/{golden_id}", client.get(f"/v1/citizens/{loaded}"))
        assert survivor["merged_from"] == [other]
        explained = check(
            "GET /v1/stewardship/explain",
            client.get("/v1/stewardship/explain", params={"a": other, "b": "ecole:FAM-77"}),
        )
        assert explained["merged_into"] == {"a": loaded}
        check(
            "GET /v1/stewardship/explain",
            client.get("/v1/stewardship/explain", params={"a": "finances:T-3", "b": "ecole:FAM-77"}),
        )
        split = check(
            "POST /v1/citizens/{golden_id}/unmerge",
            client.post(f"/v1/citizens/{loaded}/unmerge", json={"restore": other}),
        )
        assert split["kind"] == "unmerge"
        history = check("GET /v1/citizens/{golden_id}/history", client.get(f"/v1/citizens/{loaded}/history"))
        assert [e["kind"] for e in history["events"]] == ["merge", "unmerge"]
        assert any(
            "updated_at" in v["lineage"]
            for version in history["versions"]
            for v in version["values"].values()
        )

        decided = check(
            "POST /v1/stewardship/tasks/{task_id}",
            client.post(
                f"/v1/stewardship/tasks/{task['id']}", json={"decision": "link", "reason": "même acte"}
            ),
        )
        assert decided["merge"] is not None and "record" not in decided
        [linked] = check(
            "GET /v1/stewardship/tasks", client.get("/v1/stewardship/tasks", params={"status": "linked"})
        )["tasks"]
        assert linked["decided_at"] is not None
        report = check("GET /v1/stewardship/thresholds", client.get("/v1/stewardship/thresholds"))
        assert report["by_rule"] and len(report["bands"]) == 8

        page = check("GET /v1/journal", client.get("/v1/journal", params={"citizen": loaded}))
        assert page["entries"]
        check("GET /v1/journal", client.get("/v1/journal", params={"limit": 2}))
        check("GET /v1/journal/verify", client.get("/v1/journal/verify"))
        note = client.get("/v1/journal/checkpoint").text
        verified = check(
            "POST /v1/journal/verify", client.post("/v1/journal/verify", json={"checkpoints": [note]})
        )
        assert verified["ok"] and verified["checkpoints"] == 1

    assert set(check.seen) == set(json_answers(document))  # every JSON answer was held to its schema


DOC_ANSWER_ROW = re.compile(r"^\| `(?:GET|POST)[^|]*\| `([A-Za-z]+)`", re.MULTILINE)


def test_docs_api_md_names_the_schemas_the_document_types_the_answers_with(document):
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    named = set(DOC_ANSWER_ROW.findall(text))
    typed = {
        response["content"]["application/json"]["schema"]["$ref"].removeprefix("#/components/schemas/")
        for name, response in json_answers(document).items()
        if name != "GET /health"
    }
    assert named == typed


def test_an_answer_and_a_body_of_one_name_are_refused(hub, monkeypatch):
    """One component name for two models would let one replace the other in the document."""
    monkeypatch.setitem(body.SCHEMAS, "CitizenView", {"type": "object"})
    with pytest.raises(RuntimeError, match="two OpenAPI schemas named 'CitizenView'"):
        create_app(hub).openapi()
