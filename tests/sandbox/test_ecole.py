"""École/enfance REST API over a real socket: auth, find-or-create, idempotency, cancel, knobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.ecole import EcoleState, create_app
from sandbox.knobs import Knobs

TOKEN = "test-token"


@pytest.fixture
def ecole(serve_app) -> Iterator[tuple[httpx.Client, EcoleState, Knobs]]:
    knobs = Knobs()
    app, state = create_app(knobs, token=TOKEN)
    base = serve_app(app)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client, state, knobs


def family_body(**overrides: Any) -> dict[str, Any]:
    responsible = {"birth_name": "Martin", "first_names": "Élise", "birth_date": "1988-04-12"}
    return {"responsible": {**responsible, **overrides}}


def new_child(client: httpx.Client) -> str:
    family = client.post("/api/v1/families", json=family_body()).json()
    child = client.post(
        f"/api/v1/families/{family['id']}/children",
        json={"birth_name": "Martin", "first_names": "Noé", "birth_date": "2020-09-01"},
    )
    assert child.status_code in (200, 201)
    return child.json()["id"]


def enrolment_body(child_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "child_id": child_id,
        "school_year": "2026-2027",
        "kind": "school",
        "school": "École élémentaire Jean Jaurès",
        "level": "CP",
    }
    return {**body, **overrides}


def test_calls_without_the_right_bearer_token_are_refused(ecole) -> None:
    client, state, _ = ecole
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        response = client.post("/api/v1/families", json=family_body(), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert state.counters["families_created"] == 0


def test_family_is_found_again_by_the_responsible_adults_identity(ecole) -> None:
    client, state, _ = ecole
    first = client.post("/api/v1/families", json=family_body())
    again = client.post("/api/v1/families", json=family_body(birth_name="MARTIN", first_names="Elise"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert state.counters["families_created"] == 1
    found = client.get("/api/v1/families", params={"birth_name": "martin", "birth_date": "1988-04-12"}).json()
    assert [f["id"] for f in found["items"]] == [first.json()["id"]]
    assert (
        client.get(f"/api/v1/families/{first.json()['id']}").json()["responsible"]["first_names"] == "Élise"
    )
    missing = client.get("/api/v1/families/FAM-999999")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "family_not_found")


def test_enrolment_is_requested_then_cancelled(ecole) -> None:
    client, state, _ = ecole
    child_id = new_child(client)
    created = client.post("/api/v1/enrolments", json=enrolment_body(child_id))
    assert created.status_code == 201
    enrolment = created.json()
    assert enrolment["status"] == "requested"
    assert client.get(f"/api/v1/enrolments/{enrolment['id']}").json()["status"] == "requested"
    cancelled = client.delete(f"/api/v1/enrolments/{enrolment['id']}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = client.post(f"/api/v1/enrolments/{enrolment['id']}/cancel", json={"reason": "moved"})
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    assert state.counters["enrolments_cancelled"] == 1


def test_idempotent_post_has_one_effect_and_replays_the_same_answer(ecole) -> None:
    client, state, _ = ecole
    child_id = new_child(client)
    headers = {"Idempotency-Key": "portal-req-42"}
    answers = [
        client.post("/api/v1/enrolments", json=enrolment_body(child_id), headers=headers) for _ in range(3)
    ]
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert answers[1].headers["idempotent-replayed"] == "true"
    assert state.enrolments_created == 1


def test_idempotency_key_reused_with_another_body_is_422(ecole) -> None:
    client, state, _ = ecole
    child_id = new_child(client)
    headers = {"Idempotency-Key": "k-1"}
    assert client.post("/api/v1/enrolments", json=enrolment_body(child_id), headers=headers)
    other = client.post(
        "/api/v1/enrolments", json=enrolment_body(child_id, kind="periscolaire"), headers=headers
    )
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert state.enrolments_created == 1


def test_bad_input_answers_typed_errors_never_500(ecole) -> None:
    client, _, _ = ecole
    child_id = new_child(client)
    cases = [
        (enrolment_body(child_id, kind="cantine"), 422, "invalid_request"),
        (enrolment_body(child_id, school_year="2026-2028"), 422, "invalid_school_year"),
        (enrolment_body(child_id, level="6e"), 422, "invalid_level"),
        (enrolment_body("CHD-404"), 422, "unknown_child"),
        ({**enrolment_body(child_id), "extra": 1}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        response = client.post("/api/v1/enrolments", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    broken = client.post(
        "/api/v1/enrolments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert client.post("/api/v1/enrolments", json=enrolment_body(child_id)).status_code == 201
    duplicate = client.post("/api/v1/enrolments", json=enrolment_body(child_id))
    assert (duplicate.status_code, duplicate.json()["error"]["code"]) == (
        409,
        "duplicate_enrolment",
    )


def test_downtime_knob_answers_503_then_recovers(ecole) -> None:
    client, _, knobs = ecole
    knobs.down_for(0.3)
    assert client.get("/api/v1/families", params={"birth_name": "x"}).status_code == 503
    time.sleep(0.35)
    assert client.get("/api/v1/families", params={"birth_name": "x"}).status_code == 200


def test_latency_knob_is_applied(ecole) -> None:
    client, _, knobs = ecole
    knobs.update({"latency_ms": 200})
    started = time.perf_counter()
    client.get("/api/v1/families", params={"birth_name": "x"})
    assert time.perf_counter() - started >= 0.2


def test_a_merge_notice_links_the_records_and_an_unmerge_notice_splits_them_back(ecole) -> None:
    """The citizen repository says two family files are one person, then that they are not."""
    client, state, _ = ecole
    first = client.post("/api/v1/families", json=family_body()).json()["id"]
    second = client.post("/api/v1/families", json=family_body(first_names="Elise Marie")).json()["id"]
    child = new_child(client)
    client.post(
        "/api/v1/citizen-links",
        json={
            "event": "merged",
            "event_id": "1",
            "citizen_id": "G-OLD",
            "replaces": "G-X",
            "records": [child],
        },
    )
    merged = client.post(
        "/api/v1/citizen-links",
        json={
            "event": "merged",
            "event_id": "2",
            "citizen_id": "G-1",
            "replaces": "G-OLD",
            "records": [first, second],
        },
        headers={"Idempotency-Key": "merge-2"},
    )
    assert merged.status_code == 201, merged.text
    # the child carried the retired id G-OLD: it follows the person into G-1
    assert merged.json()["applied_to"] == sorted([first, second, child])
    person = client.get("/api/v1/citizens/G-1").json()
    assert {r["id"] for r in person["records"]} == {first, second, child}
    assert client.get("/api/v1/citizens/G-OLD").json()["records"] == []  # known, by its notices only
    replayed = client.post(
        "/api/v1/citizen-links",
        json={
            "event": "merged",
            "event_id": "2",
            "citizen_id": "G-1",
            "replaces": "G-OLD",
            "records": [first, second],
        },
        headers={"Idempotency-Key": "merge-2"},
    )
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.json() == merged.json()
    assert state.counters["citizen_links_received"] == 2
    split = client.post(
        "/api/v1/citizen-links",
        json={
            "event": "unmerged",
            "event_id": "3",
            "citizen_id": "G-2",
            "split_from": "G-1",
            "records": [second],
        },
        headers={"Idempotency-Key": "unmerge-3"},
    )
    assert split.status_code == 201 and split.json()["applied_to"] == [second]
    assert {r["id"] for r in client.get("/api/v1/citizens/G-1").json()["records"]} == {first, child}
    assert [r["id"] for r in client.get("/api/v1/citizens/G-2").json()["records"]] == [second]
    assert state.families[second]["citizen_id"] == "G-2"


def test_a_link_naming_an_unknown_record_changes_nothing(ecole) -> None:
    client, state, _ = ecole
    known = client.post("/api/v1/families", json=family_body()).json()["id"]
    refused = client.post(
        "/api/v1/citizen-links",
        json={
            "event": "merged",
            "event_id": "9",
            "citizen_id": "G-1",
            "replaces": "G-2",
            "records": [known, "FAM-404"],
        },
    )
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "unknown_record",
        "message": "no family or child with these ids",
        "details": {"records": ["FAM-404"]},
    }
    assert state.families[known]["citizen_id"] is None and state.counters["citizen_links_received"] == 0
    for body, field in (
        ({"event": "merged", "event_id": "9", "citizen_id": "G-1", "records": [known]}, "replaces"),
        ({"event": "linked", "event_id": "9", "citizen_id": "G-1", "records": [known]}, "event"),
        (
            {"event": "unmerged", "event_id": "9", "citizen_id": "G-1", "split_from": "G-2", "records": []},
            "records",
        ),
    ):
        answer = client.post("/api/v1/citizen-links", json=body)
        assert answer.status_code == 422, body
        error = answer.json()["error"]
        assert field in str(error.get("details")), error
    assert client.get("/api/v1/citizens/G-1").status_code == 404
