"""The OpenAPI document tells the truth: each operation lists exactly the statuses and error codes
it can answer (and docs/api.md explains the same codes), every error has the ``Error`` schema,
the request body is published per flow from the flows loaded, and ``/docs`` works offline."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser

import jsonschema
import pytest
from openapi_spec_validator import validate

from hub.api.app import create_app
from tests.conftest import ROOT, sample

OPEN = "(the GED's own code)"  # a status whose codes another system chooses
AUTH = {(401, "unauthorized"), (403, "forbidden"), (503, "unavailable")}
DEFECT = {(500, "internal_error")}
NUL = {(400, "invalid_characters")}
# What a JSON body read by hub.api.body can answer (POST /v1/requests lists its own).
BODY = {
    (400, "malformed_json"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (422, "validation_failed"),
}

# What each operation can answer besides its success: read from the routes' code, not from the
# document (a change to either shows here).
EXPECTED: dict[str, set[tuple[int, str]]] = {
    "POST /v1/requests": AUTH
    | DEFECT
    | {
        (400, "malformed_json"),
        (403, "flow_not_requestable"),
        (404, "unknown_flow"),
        (413, "payload_too_large"),
        (415, "unsupported_media_type"),
        (422, "validation_failed"),
        (422, "idempotency_key_reused"),
    },
    "GET /v1/requests/{request_id}": AUTH | DEFECT | NUL | {(404, "not_found")},
    "GET /v1/requests/{request_id}/documents/{document_id}": AUTH
    | DEFECT
    | NUL
    | {
        (404, "not_found"),
        (409, "system_unknown"),
        (502, "document_changed"),
        (502, OPEN),
        (503, "system_unavailable"),
    },
    "GET /health": DEFECT,  # its 503 is the health answer itself, not an Error
    "GET /metrics": DEFECT | {(503, "unavailable")},
    "GET /v1/citizens/{golden_id}": AUTH | DEFECT | NUL | {(404, "not_found")},
    "GET /v1/citizens/{golden_id}/history": AUTH | DEFECT | NUL | {(404, "not_found")},
    "GET /v1/citizens/{golden_id}/requests": AUTH | DEFECT | NUL | {(404, "not_found")},
    "POST /v1/citizens/{golden_id}/merge": AUTH
    | DEFECT
    | NUL
    | BODY
    | {(404, "not_found"), (409, "golden_record_not_active")},
    "POST /v1/citizens/{golden_id}/unmerge": AUTH
    | DEFECT
    | NUL
    | BODY
    | {(409, "golden_record_not_active"), (409, "nothing_to_unmerge")},
    "GET /v1/stewardship/tasks": AUTH | DEFECT | {(422, "validation_failed")},
    "POST /v1/stewardship/tasks/{task_id}": AUTH
    | DEFECT
    | NUL
    | BODY
    | {
        (404, "not_found"),
        (409, "task_already_decided"),
        (409, "decided_not_same"),
        (409, "same_golden_record"),
    },
    "GET /v1/stewardship/explain": AUTH | DEFECT | NUL | {(404, "not_found"), (422, "validation_failed")},
    "GET /v1/stewardship/thresholds": AUTH | DEFECT,
    "GET /v1/journal": AUTH | DEFECT | NUL | {(404, "not_found"), (422, "validation_failed")},
    "GET /v1/journal/verify": AUTH | DEFECT,
    "POST /v1/journal/verify": AUTH | DEFECT | BODY | {(422, "invalid_checkpoint")},
    "GET /v1/journal/checkpoint": AUTH | DEFECT | {(409, "journal_head_not_authentic")},
}
# Answers of no operation: an unknown path, a method the path does not take.
ROUTELESS = {(404, "not_found"), (405, "method_not_allowed")}


@pytest.fixture
def document(hub) -> dict:
    return create_app(hub).openapi()


def declared(operation: dict) -> set[tuple[int, str]]:
    """The (status, code) pairs of an operation's error answers, as its Error schemas enumerate."""
    found = set()
    for status, response in operation["responses"].items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if {"$ref": "#/components/schemas/Error"} not in schema.get("allOf", []):
            continue
        code = schema["properties"]["error"]["properties"]["code"]
        for branch in code.get("anyOf", [code]):
            found |= {(int(status), c) for c in branch["enum"]} if "enum" in branch else {(int(status), OPEN)}
    return found


def operations(document: dict) -> dict[str, dict]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_each_operation_lists_exactly_the_errors_it_can_answer(document):
    validate(document)
    listed = {name: declared(operation) for name, operation in operations(document).items()}
    assert set(listed) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        assert listed[name] == expected, name
        # every other answer is a success (2xx), or the health answer's own 503
        statuses = {int(s) for s in operations(document)[name]["responses"]}
        assert statuses - {s for s, _ in expected} <= {200, 202, 503}, name


def test_errors_have_the_error_schema_and_fastapis_guess_is_gone(document):
    assert "HTTPValidationError" not in json.dumps(document)
    assert "ValidationError" not in document["components"]["schemas"]
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]
    responses = [
        (name, int(status), response)
        for name, operation in operations(document).items()
        for status, response in operation["responses"].items()
    ]
    responses += [("(no route)", 0, r) for r in document["components"]["responses"].values()]
    for name, status, response in responses:
        if status >= 400 and name != "GET /health":
            assert declared({"responses": {"400": response}}), (name, status)
        media = response.get("content", {}).get("application/json", {})
        for example in media.get("examples", {}).values():  # each code has one, valid
            jsonschema.validate(example["value"], schema_in(document, response))
        if status == 401:
            assert "WWW-Authenticate" in response["headers"]
        if status == 503 and name != "GET /health":
            assert "Retry-After" in response["headers"]
    routeless = document["components"]["responses"]
    assert (
        declared({"responses": {"404": routeless["NotFound"], "405": routeless["MethodNotAllowed"]}})
        == ROUTELESS
    )


def schema_in(document: dict, response: dict) -> dict:
    """A response's JSON schema, resolvable against the document's components."""
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


DOC_TABLE_ROW = re.compile(r"^\| (\d{3}) \| ([^|]+) \|", re.MULTILINE)


def test_the_codes_of_the_document_are_the_codes_docs_api_md_explains(document):
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    explained = set()
    for status, cell in DOC_TABLE_ROW.findall(text):
        codes = re.findall(r"`([a-z_]+)`", cell) if cell.startswith("`") else [OPEN]
        explained |= {(int(status), code) for code in codes}
    listed = set().union(*(declared(operation) for operation in operations(document).values())) | ROUTELESS
    assert listed == explained


def test_answers_have_their_schemas(live_api, document):
    """The 202 and the status answer are typed, and the hub's real answers match them."""
    accepted = document["paths"]["/v1/requests"]["post"]["responses"]["202"]
    assert accepted["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RequestAccepted"
    }
    assert set(accepted["headers"]) == {"Location", "Idempotent-Replayed"}
    status = document["paths"]["/v1/requests/{request_id}"]["get"]["responses"]["200"]
    assert status["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RequestStatus"}
    typed = document["components"]["schemas"]["RequestStatus"]
    assert typed["properties"]["status"]["enum"] == [
        "received",
        "processing",
        "submitted",
        "completed",
        "rejected",
        "failed",
    ]
    assert {"id", "status", "timeline", "error"} <= set(typed["required"])
    with live_api.client() as client:
        answer = client.post("/v1/requests", json=sample("01-lefevre-copie-integrale"))
        state = client.get(answer.json()["status_url"])
    jsonschema.validate(answer.json(), schema_in(document, accepted))
    jsonschema.validate(state.json(), schema_in(document, status))
    assert set(state.json()) == set(typed["properties"])


def test_the_checkpoint_is_documented_as_the_text_it_answers(live_api, admin, document):
    answer = document["paths"]["/v1/journal/checkpoint"]["get"]["responses"]["200"]
    assert set(answer["content"]) == {"text/plain"}
    with live_api.client(admin) as client:
        response = client.get("/v1/journal/checkpoint")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")


def test_the_request_body_is_published_per_flow_from_the_flows_loaded(hub, document):
    schemas = document["components"]["schemas"]
    body = schemas["RequestBody"]
    requestable = sorted(name for name in hub.flows if name != hub.config.master_data.merge_event_flow)
    assert requestable == ["aid-payment", "birth-certificate"]
    assert body["oneOf"] == [{"$ref": f"#/components/schemas/RequestBody.{name}"} for name in requestable]
    for name in requestable:
        variant = schemas[f"RequestBody.{name}"]
        assert variant["properties"]["flow"] == {
            "type": "string",
            "enum": [name],
            "description": hub.flows[name].spec.title,
        }
        assert schemas[f"RequestData.{name}"] == hub.flows[name].spec.input  # no $ref to rebase here
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/RequestBody", **document})
    for path in sorted((ROOT / "sandbox" / "samples").glob("*.json")):
        body_json = json.loads(path.read_text(encoding="utf-8"))
        valid = not path.name.startswith("9")  # 90-…: the demo's request the hub refuses (422)
        assert validator.is_valid(body_json) == valid, path.name
    wrong = sample("01-lefevre-copie-integrale")
    wrong["data"] = {"aid": "x"}  # another flow's data
    assert not validator.is_valid(wrong)
    assert not validator.is_valid({**wrong, "flow": "citizen-merge-event", "data": {}})


def test_a_flow_input_with_its_own_references_is_rebased_into_the_components(hub):
    from hub.api.openapi import flow_request_schemas

    flow = hub.flows["birth-certificate"]
    own = {
        "$id": "https://example.org/own-base",
        "type": "object",
        "properties": {"copy": {"$ref": "#/$defs/copy"}, "again": {"$ref": "#"}},
        "$defs": {"copy": {"enum": ["a", "b"]}},
    }
    hub.flows["birth-certificate"] = replace(
        flow, spec=flow.spec.model_copy(update={"input": own}), validator=jsonschema.Draft202012Validator(own)
    )
    schemas = flow_request_schemas(hub, None)
    data = schemas["RequestData.birth-certificate"]
    assert "$id" not in data
    assert data["properties"]["copy"] == {
        "$ref": "#/components/schemas/RequestData.birth-certificate/$defs/copy"
    }
    assert data["properties"]["again"] == {"$ref": "#/components/schemas/RequestData.birth-certificate"}
    document = {"components": {"schemas": schemas}}
    checker = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/RequestData.birth-certificate", **document}
    )
    assert checker.is_valid({"copy": "a"}) and not checker.is_valid({"copy": "c"})
    assert "data" not in schemas["RequestBody.birth-certificate"]["required"]  # {} is valid data


# ---------------------------------------------------------------- the answers, provoked


@pytest.fixture
def admin(live_api) -> str:
    return live_api.hub.clients.add("openapi-admin", ["admin"])


def path_of(template: str) -> str:
    return re.sub(r"\{[a-z_]+\}", lambda m: "1" if m.group(0) == "{task_id}" else "x-1", template)


def call(client, name: str, **kwargs):
    method, template = name.split(" ", 1)
    return client.request(method, path_of(template), **kwargs)


def answer_of(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def test_every_operation_answers_401_and_403_as_it_declares(live_api, document):
    wrong_scope = {
        name: live_api.hub.clients.add(f"scope-{i}", ["audit" if "journal" not in name else "portal"])
        for i, name in enumerate(EXPECTED)
    }
    for name in EXPECTED:
        if name in ("GET /health", "GET /metrics"):
            continue  # no key needed
        with live_api.client("hub_not-a-key") as client:
            assert answer_of(call(client, name, json={})) == (401, "unauthorized"), name
        with live_api.client(wrong_scope[name]) as client:
            assert answer_of(call(client, name, json={})) == (403, "forbidden"), name
        assert {(401, "unauthorized"), (403, "forbidden")} <= declared(operations(document)[name])


PROVOKED = [
    # (operation, request keyword arguments, the answer)
    (
        "POST /v1/requests",
        {"content": b"{", "headers": {"Content-Type": "application/json"}},
        (400, "malformed_json"),
    ),
    (
        "POST /v1/requests",
        {"content": b"<a/>", "headers": {"Content-Type": "text/xml"}},
        (415, "unsupported_media_type"),
    ),
    ("POST /v1/requests", {"json": {"x": "y" * (1024 * 1024)}}, (413, "payload_too_large")),
    ("POST /v1/requests", {"json": {"flow": "permis-de-construire"}}, (404, "unknown_flow")),
    ("POST /v1/requests", {"json": {"flow": "citizen-merge-event"}}, (403, "flow_not_requestable")),
    ("POST /v1/requests", {"json": {"flow": "birth-certificate"}}, (422, "validation_failed")),
    (
        "POST /v1/requests",
        {"json": {}, "headers": {"Idempotency-Key": "k" * 201}},
        (422, "validation_failed"),
    ),
    ("GET /v1/requests/{request_id}", {}, (404, "not_found")),
    ("GET /v1/requests/{request_id}/documents/{document_id}", {}, (404, "not_found")),
    ("GET /v1/citizens/{golden_id}", {}, (404, "not_found")),
    ("GET /v1/citizens/{golden_id}/history", {}, (404, "not_found")),
    ("GET /v1/citizens/{golden_id}/requests", {}, (404, "not_found")),
    ("POST /v1/citizens/{golden_id}/merge", {"json": {"other": "x-1"}}, (409, "golden_record_not_active")),
    ("POST /v1/citizens/{golden_id}/merge", {"json": {"other": "x-2"}}, (404, "not_found")),
    ("POST /v1/citizens/{golden_id}/merge", {"json": {"other": ""}}, (422, "validation_failed")),
    ("POST /v1/citizens/{golden_id}/unmerge", {"json": {"restore": "x-2"}}, (409, "nothing_to_unmerge")),
    ("POST /v1/citizens/{golden_id}/unmerge", {"json": {}}, (422, "validation_failed")),
    ("GET /v1/stewardship/tasks", {"params": {"limit": 0}}, (422, "validation_failed")),
    ("POST /v1/stewardship/tasks/{task_id}", {"json": {"decision": "link"}}, (404, "not_found")),
    ("POST /v1/stewardship/tasks/{task_id}", {"json": {"decision": "maybe"}}, (422, "validation_failed")),
    ("GET /v1/stewardship/explain", {"params": {"a": "ecole:F-1", "b": "x-1"}}, (404, "not_found")),
    ("GET /v1/stewardship/explain", {}, (422, "validation_failed")),
    ("GET /v1/journal", {"params": {"citizen": "x-1"}}, (404, "not_found")),
    ("GET /v1/journal", {"params": {"after": -1}}, (422, "validation_failed")),
    (
        "POST /v1/citizens/{golden_id}/merge",
        {"content": b"{", "headers": {"Content-Type": "application/json"}},
        (400, "malformed_json"),
    ),
    (
        "POST /v1/citizens/{golden_id}/unmerge",
        {"json": {"restore": "y" * (1024 * 1024)}},
        (413, "payload_too_large"),
    ),
    (
        "POST /v1/stewardship/tasks/{task_id}",
        {"content": b"<a/>", "headers": {"Content-Type": "text/xml"}},
        (415, "unsupported_media_type"),
    ),
    ("POST /v1/journal/verify", {"json": {"checkpoints": ["not a note"]}}, (422, "invalid_checkpoint")),
    ("POST /v1/journal/verify", {"json": {"checkpoints": "x"}}, (422, "validation_failed")),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"), PROVOKED, ids=[f"{p[0]}-{p[2][1]}" for p in PROVOKED]
)
def test_provoked_errors_are_the_ones_declared(live_api, admin, document, name, kwargs, expected):
    with live_api.client(admin) as client:
        response = call(client, name, **kwargs)
    assert answer_of(response) == expected, response.text
    assert expected in declared(operations(document)[name])
    method, template = name.split(" ", 1)
    response_doc = document["paths"][template][method.lower()]["responses"][str(expected[0])]
    jsonschema.validate(response.json(), schema_in(document, response_doc))


WITH_NUL = [
    ("GET /v1/requests/{request_id}", "/v1/requests/a%00b", {}),
    ("GET /v1/requests/{request_id}/documents/{document_id}", "/v1/requests/a%00b/documents/d", {}),
    ("GET /v1/citizens/{golden_id}/requests", "/v1/citizens/a%00b/requests", {}),
    ("POST /v1/citizens/{golden_id}/merge", "/v1/citizens/a%00b/merge", {"json": {"other": "x"}}),
    ("POST /v1/citizens/{golden_id}/unmerge", "/v1/citizens/x/unmerge", {"json": {"restore": "a\x00b"}}),
    ("GET /v1/stewardship/explain", "/v1/stewardship/explain", {"params": {"a": "a\x00b", "b": "x"}}),
    ("GET /v1/journal", "/v1/journal", {"params": {"request_id": "a\x00b"}}),
]


@pytest.mark.parametrize(("name", "url", "kwargs"), WITH_NUL, ids=[n for n, _, _ in WITH_NUL])
def test_a_nul_in_a_parameter_is_answered_as_declared(live_api, admin, document, name, url, kwargs):
    """PostgreSQL's text holds no NUL: 400 invalid_characters there; SQLite finds nothing."""
    with live_api.client(admin) as client:
        response = client.request(name.split(" ")[0], url, **kwargs)
    if live_api.hub.db.dialect == "postgresql":
        assert answer_of(response) == (400, "invalid_characters")
    elif response.status_code >= 400:  # not found; or the journal's empty page
        assert answer_of(response) in declared(operations(document)[name]), response.text


def test_idempotency_key_reused_is_declared(live_api, document):
    other = sample("01-lefevre-copie-integrale")
    other["data"]["copy_type"] = "extrait_sans_filiation"
    with live_api.client() as client:
        client.post(
            "/v1/requests", json=sample("01-lefevre-copie-integrale"), headers={"Idempotency-Key": "r"}
        )
        response = client.post("/v1/requests", json=other, headers={"Idempotency-Key": "r"})
    assert answer_of(response) == (422, "idempotency_key_reused")
    assert answer_of(response) in declared(operations(document)["POST /v1/requests"])


def test_no_route_and_wrong_method_answer_as_the_routeless_responses(live_api, admin):
    with live_api.client(admin) as client:
        assert answer_of(client.get("/v1/nothing-here")) == (404, "not_found")
        assert answer_of(client.delete("/v1/requests")) == (405, "method_not_allowed")
        assert answer_of(client.put("/v1/journal")) == (405, "method_not_allowed")


# ---------------------------------------------------------------- trailing slashes


@pytest.mark.parametrize(
    ("method", "path", "bare"),
    [
        ("GET", "/v1/requests/", "/v1/requests"),
        ("POST", "/v1/requests/", "/v1/requests"),
        ("GET", "/v1/journal/", "/v1/journal"),
        ("GET", "/v1/citizens/g-1/", "/v1/citizens/g-1"),
        ("GET", "/docs/", "/docs"),
    ],
)
def test_a_trailing_slash_is_the_hubs_json_404_not_a_bare_redirect(live_api, admin, method, path, bare):
    with live_api.client(admin, follow_redirects=False) as client:
        response = client.request(method, path, json=sample("01-lefevre-copie-integrale"))
    assert answer_of(response) == (404, "not_found"), response.text
    assert "location" not in response.headers
    assert response.json()["error"]["message"].endswith(f"without the trailing slash: {bare}")
    with live_api.hub.db.sessions() as session:
        from sqlalchemy import func, select

        from hub.db.models import Request

        assert session.scalar(select(func.count()).select_from(Request)) == 0


# ---------------------------------------------------------------- /docs offline


class _Assets(HTMLParser):
    """Every URL a page loads: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {"script": "src", "link": "href", "img": "src", "redoc": "spec-url"}
        wanted = dict(attrs).get(names.get(tag, ""))
        if wanted:
            self.urls.append(wanted)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_load_only_the_hubs_own_assets(live_api, page):
    """Offline (a municipal network without Internet), /docs must not be blank: the page names
    no other host, and the hub serves every script and stylesheet it loads."""
    with live_api.client() as client:
        html = client.get(page)
        assert html.status_code == 200
        assert "http://" not in html.text and "https://" not in html.text
        # ... and what their scripts would fetch elsewhere the browser refuses (test_docs_in_browser)
        assert "default-src 'self'" in html.headers["content-security-policy"]
        parser = _Assets()
        parser.feed(html.text)
        urls = parser.urls + re.findall(r"url: '([^']+)'", html.text)
        assert "/openapi.json" in urls and any(url.endswith(".js") for url in urls), urls
        assets = {}
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
            if url.endswith(".js"):
                assert "javascript" in asset.headers["content-type"], url
            if url.endswith(".css"):
                assert asset.headers["content-type"].startswith("text/css"), url
            assets[url] = asset.text if url.endswith(".js") else ""
    if page == "/docs":
        bundle = next(url for url in urls if url.endswith("swagger-ui-bundle.js"))
        assert bundle.startswith("/docs/assets/")
        assert re.search(r'"5\.\d+\.\d+"', assets[bundle])  # Swagger UI 5 reads OpenAPI 3.1
        assert '"validatorUrl": null' in html.text  # else a badge image from swagger.io
