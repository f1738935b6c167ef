"""Every JSON body is read one way (:mod:`hub.api.body`): authentication first, then 413, 415,
RFC 8259 JSON only (``NaN`` and ``Infinity`` are a 400 like malformed JSON), then the model's 422."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from connectors.exchange import digest
from hub.api.app import create_app
from hub.db.models import JournalEntry

# Every endpoint that takes a JSON body, with a body its model refuses (a 422 after the JSON passed).
ENDPOINTS = {
    "POST /v1/requests": {"flow": 5},
    "POST /v1/stewardship/tasks/1": {"decision": "maybe"},
    "POST /v1/citizens/g-1/merge": {"other": ""},
    "POST /v1/citizens/g-1/unmerge": {"restore": "x", "extra": 1},
    "POST /v1/journal/verify": {"checkpoints": "not a list"},
}
SCOPES = ["portal", "stewardship:write", "audit"]


def test_every_route_with_a_body_reads_it_through_the_shared_path(hub):
    """FastAPI parses no body itself (it would read it before authentication and accept NaN): each
    body is a hub.api.body dependency, documented in the OpenAPI document."""
    app = create_app(hub)
    with_body = []
    for route in api_routes(app.routes):
        assert route.body_field is None, f"{route.path} lets FastAPI parse its body"
        if (route.openapi_extra or {}).get("requestBody"):
            with_body.extend(f"{method} {route.path}" for method in route.methods)
    documented = {name.replace("/1", "/{task_id}").replace("/g-1/", "/{golden_id}/") for name in ENDPOINTS}
    assert set(with_body) == documented
    schemas = app.openapi()["components"]["schemas"]
    assert {"RequestBody", "DecisionBody", "MergeBody", "UnmergeBody", "VerifyBody"} <= set(schemas)


def api_routes(routes: list) -> Iterator[APIRoute]:
    """The app's endpoints, in the routers it includes too (FastAPI >= 0.16x keeps them there)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


@pytest.fixture
def client(live_api):
    key = live_api.hub.clients.add("json-bodies", SCOPES)
    with live_api.client(key) as client:
        yield client


def post(client, endpoint: str, content: bytes, content_type: str = "application/json"):
    _method, path = endpoint.split(" ", 1)
    return client.post(path, content=content, headers={"Content-Type": content_type})


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_malformed_json_everywhere(client, endpoint, constant):
    response = post(client, endpoint, f'{{"reason": {constant}, "decision": "link"}}'.encode())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "malformed_json" and constant.lstrip("-") in error["message"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_malformed_json_is_400_everywhere(client, endpoint):
    response = post(client, endpoint, b'{"decision": ')
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_media_type_is_415_everywhere(client, endpoint):
    response = post(client, endpoint, b"decision=link", "application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_oversized_body_is_413_everywhere(client, endpoint):
    response = post(client, endpoint, b'{"reason": "' + b"x" * (1024 * 1024 + 1) + b'"}')
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_body_the_model_refuses_is_422_with_its_fields(client, endpoint):
    response = post(client, endpoint, json.dumps(ENDPOINTS[endpoint]).encode())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed" and error["details"]
    assert all(detail["field"] != "(body)" for detail in error["details"]), error


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_authentication_comes_before_the_body(live_api, endpoint):
    with live_api.client(key="hub_not-a-real-key") as client:
        response = post(client, endpoint, b'{"decision": NaN')
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


# The refusals of the body reader, each with the body that provokes it and its media type.
REFUSED_BODIES = {
    "malformed_json": (b'{"decision": ', "application/json"),
    "unsupported_media_type": (b"decision=link", "application/x-www-form-urlencoded"),
    "payload_too_large": (b'{"reason": "' + b"x" * (1024 * 1024 + 1) + b'"}', "application/json"),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_refused_body_is_journaled_once_for_the_authenticated_caller(live_api, client, endpoint):
    """The route never runs when its body is refused: the refusal is journaled all the same (once,
    with the digest of what was sent), as the authenticated client's; an anonymous caller's is not."""
    sent = dict(REFUSED_BODIES)
    sent["validation_failed"] = (json.dumps(ENDPOINTS[endpoint]).encode(), "application/json")
    for code, (content, media) in sent.items():
        assert post(client, endpoint, content, media).json()["error"]["code"] == code
    with live_api.client(key="hub_not-a-real-key") as anonymous:
        assert post(anonymous, endpoint, b'{"decision": ').status_code == 401
    with live_api.hub.db.sessions() as session:
        rows = session.scalars(
            select(JournalEntry).where(JournalEntry.outcome == "rejected").order_by(JournalEntry.id)
        ).all()
    operation = endpoint.replace("/1", "/{task_id}").replace("/g-1/", "/{golden_id}/")
    assert [(r.client, r.operation, r.error_code) for r in rows] == [
        ("json-bodies", operation, code) for code in sent
    ]
    by_code = {row.error_code: row.payload_digest for row in rows}
    key = live_api.hub.digest_key
    assert by_code["malformed_json"] == digest(sent["malformed_json"][0], key)
    assert by_code["payload_too_large"] == digest(b"", key)  # refused unread
