"""The API contract the portal relies on: every documented status and error code."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError

from hub.db.models import OUTBOX, JournalEntry, OutboxMessage, Request, utcnow
from tests.conftest import sample

VALID = "01-lefevre-copie-integrale"


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def count(hub, model) -> int:
    with hub.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_accepted_request_is_written_with_outbox_and_journal_in_one_go(live_api):
    with live_api.client() as client:
        response = client.post("/v1/requests", json=sample(VALID), headers={"Idempotency-Key": "a-1"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "received"
    assert body["status_url"] == f"/v1/requests/{body['id']}"
    assert response.headers["location"] == body["status_url"]
    with live_api.hub.db.sessions() as session:
        request = session.get(Request, body["id"])
        assert request is not None and request.status == "received"
        assert session.scalar(select(func.count()).where(OutboxMessage.request_id == body["id"])) == 1
        entry = session.scalar(select(JournalEntry).where(JournalEntry.request_id == body["id"]))
        assert entry.direction == "inbound" and entry.outcome == "accepted"
        assert entry.purpose == "etat_civil_delivrance_actes" and entry.legal_basis == "legal_obligation"
        assert entry.citizen_ref.startswith("cit_")
        # the journal keeps a digest, never the citizen's data
        assert entry.payload_digest.startswith("hmac-sha256:")  # keyed: a guess cannot be confirmed
        row = json.dumps(
            [str(getattr(entry, c.key)) for c in JournalEntry.__table__.columns], ensure_ascii=False
        )
        assert "Lefèvre" not in row and "Élodie" not in row and "1985-03-14" not in row


def test_missing_key_is_401_and_checked_before_the_body(live_api):
    with live_api.client() as client:
        response = client.post("/v1/requests", content=b"{not json", headers={"Authorization": ""})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_invalid_key_is_401(live_api):
    with live_api.client(key="hub_not-a-real-key") as client:
        response = client.post("/v1/requests", json=sample(VALID))
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_missing_scope_is_403(live_api):
    auditor = live_api.hub.clients.add("auditor", ["audit"])
    with live_api.client(key=auditor) as client:
        response = client.post("/v1/requests", json=sample(VALID))
    assert response.status_code == 403 and error_code(response) == "forbidden"
    assert response.json()["error"]["details"]["required_any_of"] == ["portal"]


def test_unknown_flow_is_404_unknown_flow(live_api):
    body = sample(VALID) | {"flow": "permis-de-construire"}
    with live_api.client() as client:
        response = client.post("/v1/requests", json=body)
    assert response.status_code == 404 and error_code(response) == "unknown_flow"
    assert "birth-certificate" in response.json()["error"]["details"]["known_flows"]


def test_identity_violations_are_422_with_each_failing_field(live_api):
    with live_api.client() as client:
        response = client.post("/v1/requests", json=sample("90-invalid-missing-birth-date"))
    assert response.status_code == 422 and error_code(response) == "validation_failed"
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {"citizen.birth_date", "citizen.sex", "citizen.birth_place.insee_code"} <= fields


def test_flow_input_schema_violations_are_422_naming_the_data_field(live_api):
    body = sample(VALID)
    body["data"] = {"copy_type": "photocopie", "copies": 9}
    with live_api.client() as client:
        response = client.post("/v1/requests", json=body)
    assert response.status_code == 422 and error_code(response) == "validation_failed"
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"data.copy_type", "data.copies"}
    assert count(live_api.hub, Request) == 0


def test_refused_requests_are_journaled_without_creating_a_request(live_api):
    with live_api.client() as client:
        client.post("/v1/requests", json=sample("90-invalid-missing-birth-date"))
    with live_api.hub.db.sessions() as session:
        entry = session.scalar(select(JournalEntry))
    assert entry.outcome == "rejected" and entry.error_code == "validation_failed"
    assert count(live_api.hub, Request) == 0


def test_malformed_json_is_400(live_api):
    with live_api.client() as client:
        response = client.post(
            "/v1/requests",
            content=b'{"flow": "birth-certificate",',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400 and error_code(response) == "malformed_json"


def test_wrong_media_type_is_415(live_api):
    with live_api.client() as client:
        response = client.post("/v1/requests", content=b"flow=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_one_mebibyte_is_413(live_api, chunked):
    body = sample(VALID)
    body["data"]["reason"] = "x" * (1024 * 1024)
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    with live_api.client() as client:
        if chunked:  # no Content-Length: the limit is enforced while reading
            response = client.post(
                "/v1/requests",
                content=iter([raw[i : i + 65536] for i in range(0, len(raw), 65536)]),
                headers=headers,
            )
        else:
            response = client.post("/v1/requests", content=raw, headers=headers)
    assert response.status_code == 413 and error_code(response) == "payload_too_large"


def test_same_idempotency_key_and_body_gives_the_same_answer_once(live_api):
    with live_api.client() as client:
        first = client.post("/v1/requests", json=sample(VALID), headers={"Idempotency-Key": "k-42"})
        second = client.post("/v1/requests", json=sample(VALID), headers={"Idempotency-Key": "k-42"})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert count(live_api.hub, Request) == 1
    assert count(live_api.hub, OutboxMessage) == 1


def test_same_idempotency_key_with_another_body_is_422(live_api):
    other = sample(VALID)
    other["data"]["copy_type"] = "extrait_sans_filiation"
    with live_api.client() as client:
        client.post("/v1/requests", json=sample(VALID), headers={"Idempotency-Key": "k-43"})
        response = client.post("/v1/requests", json=other, headers={"Idempotency-Key": "k-43"})
    assert response.status_code == 422 and error_code(response) == "idempotency_key_reused"
    assert count(live_api.hub, Request) == 1


def test_without_idempotency_key_each_post_is_a_new_request(live_api):
    with live_api.client() as client:
        ids = {client.post("/v1/requests", json=sample(VALID)).json()["id"] for _ in range(3)}
    assert len(ids) == 3


def test_an_empty_idempotency_key_is_no_key(live_api):
    """Different requests sent with an empty header are different requests, not one key reused.
    (Whitespace around a header value is not part of it in HTTP: a blank one arrives empty.)"""
    key = ""
    other = sample(VALID)
    other["data"]["copy_type"] = "extrait_sans_filiation"
    with live_api.client() as client:
        answers = [
            client.post("/v1/requests", json=body, headers={"Idempotency-Key": key})
            for body in (sample(VALID), other, sample(VALID))
        ]
    assert [a.status_code for a in answers] == [202, 202, 202], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 3
    assert not any("idempotent-replayed" in a.headers for a in answers)
    with live_api.hub.db.sessions() as session:
        assert session.scalars(select(Request.idempotency_key)).all() == [None, None, None]


def test_status_is_visible_to_its_client_and_to_read_all_only(live_api):
    with live_api.client() as client:
        request_id = client.post("/v1/requests", json=sample(VALID)).json()["id"]
        own = client.get(f"/v1/requests/{request_id}")
    assert own.status_code == 200
    assert own.json()["status"] == "received"
    assert [event["step"] for event in own.json()["timeline"]] == ["received"]
    other_portal = live_api.hub.clients.add("other-portal", ["portal"])
    with live_api.client(key=other_portal) as client:
        hidden = client.get(f"/v1/requests/{request_id}")
    assert hidden.status_code == 404 and error_code(hidden) == "not_found"
    reader = live_api.hub.clients.add("back-office", ["requests:read_all"])
    with live_api.client(key=reader) as client:
        assert client.get(f"/v1/requests/{request_id}").status_code == 200
        missing = client.get("/v1/requests/does-not-exist")
    assert missing.status_code == 404 and error_code(missing) == "not_found"


def test_unknown_route_and_method_answer_the_error_shape(live_api):
    with live_api.client() as client:
        assert error_code(client.get("/v1/nothing-here")) == "not_found"
        response = client.delete("/v1/requests")
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"


def test_health_reports_the_database(live_api):
    with live_api.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_health_answers_while_a_long_write_holds_the_database(live_api):
    """Liveness must not queue behind a writer (an import holds SQLite's single writer): a probe
    that waits gets a healthy hub restarted."""
    with live_api.hub.db.connection() as connection:  # a write transaction, held open
        connection.execute(select(1))
        with live_api.client() as client:
            response = client.get("/health", timeout=10)
    assert response.status_code == 200 and response.json()["database"] == "ok"


def test_metrics_expose_requests_exchanges_and_queue(live_api):
    with live_api.client() as client:
        client.post("/v1/requests", json=sample(VALID))
        text = client.get("/metrics").text
    assert 'hub_requests{flow="birth-certificate",status="received"} 1.0' in text
    assert 'hub_exchanges_total{direction="inbound",outcome="accepted",system="hub"} 1.0' in text
    assert "hub_queue_depth 1.0" in text
    assert "hub_queue_oldest_pending_seconds" in text
    assert "hub_queue_waiting 0.0" in text and "hub_queue_in_flight 0.0" in text


def test_a_request_waiting_for_its_back_end_is_not_counted_as_backlog(live_api):
    """A démarche polling the registry for days is healthy: it is `waiting`, not queue depth, and
    does not age the oldest-pending alert."""
    with live_api.client() as client:
        client.post("/v1/requests", json=sample(VALID))
        with live_api.hub.db.connection() as connection:
            connection.execute(
                update(OUTBOX).values(
                    available_at=utcnow() + timedelta(minutes=5), created_at=utcnow() - timedelta(days=2)
                )
            )
        text = client.get("/metrics").text
    assert "hub_queue_depth 0.0" in text and "hub_queue_waiting 1.0" in text
    assert "hub_queue_oldest_pending_seconds 0.0" in text


def test_openapi_documents_the_request_body_and_bearer_auth(live_api):
    from openapi_spec_validator import validate

    with live_api.client() as client:
        spec = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    validate(spec)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert {"CitizenIdentity", "BirthPlace", "Address"} <= refs <= set(spec["components"]["schemas"])
    operation = spec["paths"]["/v1/requests"]["post"]
    assert "citizen" in json.dumps(operation["requestBody"]) or "RequestBody" in json.dumps(
        operation["requestBody"]
    )
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"flow": ' + b"9" * 5000 + b"}",
        b"[" * 200_000 + b"]" * 200_000,
        b'{"flow": "\xff\xfe"}',
        b"[]",
        b'"x"',
        b'{"flow": NaN}',
        b'{"flow": "birth-certificate", "data": {"n": Infinity}}',
        b"-Infinity",
    ],
    ids=["huge-number", "deep-nesting", "bad-utf8", "array", "string", "nan", "infinity", "minus-infinity"],
)
def test_hostile_bodies_get_a_typed_4xx_never_a_500(live_api, raw):
    with live_api.client() as client:
        response = client.post("/v1/requests", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 413, 422), response.text
    assert error_code(response) in ("malformed_json", "payload_too_large", "validation_failed")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_malformed_json_and_nothing_is_recorded(live_api, constant):
    """Python's json reads them but JSON has no such values: NaN passes a schema's bounds and the
    PostgreSQL json column refuses it, so they are a 400 before anything is written."""
    body = json.dumps(sample(VALID))
    raw = body.replace('"data": {', f'"data": {{"x_score": {constant}, ', 1).encode()
    assert constant.encode() in raw
    with live_api.client() as client:
        response = client.post(
            "/v1/requests",
            content=raw,
            headers={"Content-Type": "application/json", "Idempotency-Key": f"nan-{constant}"},
        )
        again = client.post(
            "/v1/requests",
            content=body.encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": f"nan-{constant}"},
        )
    assert response.status_code == 400, response.text
    assert error_code(response) == "malformed_json"
    assert constant.lstrip("-") in response.json()["error"]["message"]
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers


@pytest.mark.parametrize(
    "path",
    ["/v1/requests/abc%00def", "/v1/citizens/abc%00def", "/v1/citizens/abc%00def/history"],
)
def test_a_nul_in_a_path_gets_a_typed_4xx_never_a_500(live_api, path):
    """PostgreSQL's text cannot hold a NUL (the driver refuses it: 400 ``invalid_characters``);
    SQLite simply finds nothing (404). Authentication still comes first."""
    key = live_api.hub.clients.add("nul-reader", ["portal", "requests:read_all", "citizens:read"])
    with live_api.client(key) as client:
        response = client.get(path)
    with live_api.client("not-a-key") as client:
        anonymous = client.get(path)
    assert (response.status_code, error_code(response)) in ((400, "invalid_characters"), (404, "not_found"))
    assert anonymous.status_code == 401


@pytest.mark.parametrize("updated_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_an_updated_at_outside_the_calendar_in_utc_is_a_422_not_a_dead_letter(live_api, updated_at):
    """Valid ISO 8601, but the master data keeps times in UTC where it would overflow: refused at
    the door, naming the field, rather than accepted (202) and dead-lettered by the worker."""
    body = sample(VALID)
    body["citizen"]["updated_at"] = updated_at
    with live_api.client() as client:
        response = client.post("/v1/requests", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert [d["field"] for d in error["details"]] == ["citizen.updated_at"]
    with live_api.hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 0


def test_control_characters_in_the_identity_are_refused_by_field(live_api):
    body = sample(VALID)
    body["citizen"]["birth_name"] = "Lef\x00vre"
    body["citizen"]["given_names"] = ["Élodie\x07"]
    with live_api.client() as client:
        response = client.post("/v1/requests", json=body)
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"citizen.birth_name", "citizen.given_names"}


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        # The database is down: nothing changed, the same call works once it is back.
        (
            OperationalError("SELECT 1", {}, ConnectionError("server closed the connection")),
            503,
            "unavailable",
            "5",
        ),
        # A statement the hub got wrong is its defect, not a reason to retry.
        (
            ProgrammingError("SELECT 1", {}, Exception('column "nope" does not exist')),
            500,
            "internal_error",
            None,
        ),
    ],
    ids=["unavailable-503", "defect-500"],
)
def test_a_database_failure_on_a_read_answers_by_its_cause(
    live_api, monkeypatch, error, status, code, retry_after
):
    with live_api.client() as client:
        request_id = client.post("/v1/requests", json=sample(VALID)).json()["id"]

    def failing(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(live_api.hub.db, "sessions", failing)
    with live_api.client() as client:
        answer = client.get(f"/v1/requests/{request_id}")
    assert answer.status_code == status and error_code(answer) == code
    assert answer.headers.get("retry-after") == retry_after
    assert (
        "server closed" not in answer.text and "nope" not in answer.text
    )  # the driver's words stay in the log


def test_refused_calls_of_a_known_client_are_journaled_and_anonymous_ones_are_not(live_api):
    """The auditor sees what a known client attempted and was refused (malformed, wrong type, too
    large, beyond its scopes); a call without a valid key is only logged, or anyone could fill the
    journal."""
    with live_api.client() as client:
        assert (
            client.post(
                "/v1/requests", content=b"{oops", headers={"Content-Type": "application/json"}
            ).status_code
            == 400
        )
        assert (
            client.post("/v1/requests", content=b"<a/>", headers={"Content-Type": "text/xml"}).status_code
            == 415
        )
        big = b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        assert (
            client.post("/v1/requests", content=big, headers={"Content-Type": "application/json"}).status_code
            == 413
        )
        assert client.get("/v1/citizens/some-golden-id").status_code == 403  # portal lacks citizens:read
    with live_api.client("not-a-key") as anonymous:
        assert anonymous.post("/v1/requests", json=sample(VALID)).status_code == 401
    with live_api.hub.db.sessions() as session:
        rows = session.execute(
            select(JournalEntry.operation, JournalEntry.error_code, JournalEntry.client).where(
                JournalEntry.outcome == "rejected"
            )
        ).all()
    assert sorted((r.operation, r.error_code) for r in rows) == [
        ("GET /v1/citizens/{golden_id}", "forbidden"),
        ("POST /v1/requests", "malformed_json"),
        ("POST /v1/requests", "payload_too_large"),
        ("POST /v1/requests", "unsupported_media_type"),
    ]
    [client_name] = {r.client for r in rows}
    assert client_name.startswith("portal-")  # the test's portal client, by name


def test_bad_input_is_answered_as_such_while_the_database_is_down(live_api, monkeypatch):
    """Journaling the refusal fails with the database: the client still learns what was wrong
    with its call (400), not a misleading 503 telling it to send the same thing again."""
    with live_api.client() as client:

        def failing(*_args, **_kwargs):
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))

        monkeypatch.setattr(live_api.hub.db, "connection", failing)
        response = client.post("/v1/requests", content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and error_code(response) == "malformed_json"


def journal_of_refusals(hub) -> list:
    with hub.db.sessions() as session:
        return session.scalars(
            select(JournalEntry).where(JournalEntry.outcome == "rejected").order_by(JournalEntry.id)
        ).all()


def test_unknown_flow_comes_before_the_rest_of_the_body(live_api):
    """A client naming no loaded flow learns that first, whatever else is wrong in its body."""
    incomplete = {"flow": "permis-de-construire", "citizen": {"birth_name": "X"}, "extra": 1}
    internal = {"flow": live_api.hub.config.master_data.merge_event_flow, "citizen": {}}
    with live_api.client() as client:
        unknown = client.post("/v1/requests", json=incomplete)
        not_requestable = client.post("/v1/requests", json=internal)
        nameless = client.post("/v1/requests", json={"citizen": {}})
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_flow"
    assert "birth-certificate" in unknown.json()["error"]["details"]["known_flows"]
    assert not_requestable.status_code == 403 and error_code(not_requestable) == "flow_not_requestable"
    assert nameless.status_code == 422 and error_code(nameless) == "validation_failed"


def _reused(body: dict) -> dict:
    other = json.loads(json.dumps(body))
    other["data"]["copy_type"] = "extrait_sans_filiation"
    return other


@pytest.mark.parametrize(
    ("case", "code", "knows_purpose", "knows_citizen"),
    [
        ("data-invalid", "validation_failed", True, True),
        ("identity-invalid", "validation_failed", True, False),
        ("identifiers-unknown", "validation_failed", True, True),
        ("unknown-flow", "unknown_flow", False, True),
        ("unknown-flow-bad-identity", "unknown_flow", False, False),
        ("malformed", "malformed_json", False, False),
    ],
)
def test_a_refused_request_is_journaled_with_what_it_is_known_to_concern(
    live_api, case, code, knows_purpose, knows_citizen
):
    """The DPO finds a refusal by the citizen and purpose it concerned, as far as they were known
    when it was refused: the flow's purpose once the flow is known, the citizen's reference once
    the identity validated."""
    body = sample(VALID)
    if case == "data-invalid":
        body["data"] = {"copy_type": "photocopie"}
    elif case == "identity-invalid":
        del body["citizen"]["birth_date"]
    elif case == "identifiers-unknown":
        body["citizen"]["identifiers"] = {"impots": "X-1"}
    elif case.startswith("unknown-flow"):
        body["flow"] = "permis-de-construire"
        if case.endswith("bad-identity"):
            body["citizen"]["sex"] = "X"
    with live_api.client() as client:
        if case == "malformed":
            answer = client.post("/v1/requests", content=b"{", headers={"Content-Type": "application/json"})
        else:
            answer = client.post("/v1/requests", json=body)
        accepted = client.post("/v1/requests", json=sample(VALID)).json()["id"]
    assert error_code(answer) == code
    [row] = journal_of_refusals(live_api.hub)
    with live_api.hub.db.sessions() as session:
        filed = session.get(Request, accepted)
    assert (row.operation, row.error_code, row.request_id) == ("POST /v1/requests", code, None)
    assert row.purpose == ("etat_civil_delivrance_actes" if knows_purpose else None)
    assert row.legal_basis == ("legal_obligation" if knows_purpose else None)
    assert row.citizen_ref == (filed.citizen_ref if knows_citizen else None)


def test_a_reused_idempotency_key_is_journaled_with_the_request_it_points_to(live_api):
    with live_api.client() as client:
        first = client.post("/v1/requests", json=sample(VALID), headers={"Idempotency-Key": "k-7"}).json()
        answer = client.post("/v1/requests", json=_reused(sample(VALID)), headers={"Idempotency-Key": "k-7"})
    assert error_code(answer) == "idempotency_key_reused"
    [row] = journal_of_refusals(live_api.hub)
    with live_api.hub.db.sessions() as session:
        filed = session.get(Request, first["id"])
    assert (row.operation, row.error_code) == ("POST /v1/requests", "idempotency_key_reused")
    assert row.request_id == first["id"]
    assert (row.purpose, row.legal_basis) == ("etat_civil_delivrance_actes", "legal_obligation")
    assert row.citizen_ref == filed.citizen_ref  # the refused body's citizen (here the same one)
    assert row.correlation_id != filed.correlation_id  # a call of its own, about that request


def test_an_idempotency_key_over_200_characters_is_refused_and_journaled(live_api):
    """FastAPI checks the header before the route runs: the refusal is journaled all the same (4xx
    after authentication), and an anonymous caller's is not."""
    with live_api.client() as client:
        answer = client.post("/v1/requests", json=sample(VALID), headers={"Idempotency-Key": "k" * 201})
    with live_api.client("not-a-key") as anonymous:
        assert (
            anonymous.post("/v1/requests", json={}, headers={"Idempotency-Key": "k" * 201}).status_code == 401
        )
    assert answer.status_code == 422 and error_code(answer) == "validation_failed"
    assert answer.json()["error"]["details"][0]["field"] == "header.idempotency-key"
    [row] = journal_of_refusals(live_api.hub)
    assert (row.operation, row.error_code) == ("POST /v1/requests", "validation_failed")
    assert row.client.startswith("portal-")
    assert count(live_api.hub, Request) == 0


def test_invalid_parameters_of_any_route_are_journaled_for_a_known_client(live_api):
    auditor = live_api.hub.clients.add("auditor-422", ["audit", "stewardship:read"])
    with live_api.client(auditor) as client:
        assert client.get("/v1/journal", params={"limit": 0}).status_code == 422
        assert client.get("/v1/stewardship/tasks", params={"status": "maybe"}).status_code == 422
    rows = journal_of_refusals(live_api.hub)
    assert [(r.client, r.operation, r.error_code) for r in rows] == [
        ("auditor-422", "GET /v1/journal", "validation_failed"),
        ("auditor-422", "GET /v1/stewardship/tasks", "validation_failed"),
    ]
