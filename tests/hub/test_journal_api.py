"""The auditor's API: ``GET /v1/journal`` answers "who sent this citizen's data to whom, when, for
which purpose", page by page, and ``GET /v1/journal/verify`` checks the chain; scope ``audit``."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from hub import journal
from hub.db.models import JOURNAL, REQUESTS
from tests.conftest import sample
from tests.hub.test_birth_certificate_flow import wait_for


def file_and_wait(client, name: str) -> str:
    answer = client.post("/v1/requests", json=sample(name), headers={"Idempotency-Key": uuid.uuid4().hex})
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["id"]
    state = wait_for(client, request_id)
    assert state["status"] == "completed", state
    return request_id


@pytest.fixture
def filed(live_hub):
    """Two citizens' birth certificates, completed; (live hub, auditor key, request ids, golden ids)."""
    with live_hub.client() as portal:
        first = file_and_wait(portal, "01-lefevre-copie-integrale")
        second = file_and_wait(portal, "03-ndiaye-extrait-sans-filiation")
    journal.seal(live_hub.hub.db, live_hub.hub.journal_key)
    auditor = live_hub.hub.clients.add("cnil-audit", ["audit"])
    with live_hub.hub.db.reading() as connection:
        golden = dict(
            connection.execute(
                select(REQUESTS.c.id, REQUESTS.c.golden_id).where(REQUESTS.c.id.in_([first, second]))
            ).all()
        )
    return live_hub, auditor, (first, second), (golden[first], golden[second])


def test_a_citizens_rows_say_who_sent_what_to_whom_and_for_which_purpose(filed) -> None:
    live, auditor, (first, _), (golden, other) = filed
    with live.client(auditor) as client:
        answer = client.get("/v1/journal", params={"citizen": golden})
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entries"]
    assert answer.json()["next_after"] is None
    # the request as filed (inbound, pseudonymous reference) and every call made for it
    assert {e["request_id"] for e in entries} == {first}
    inbound = [e for e in entries if e["direction"] == "inbound"]
    assert [(e["operation"], e["outcome"]) for e in inbound] == [
        ("POST /v1/requests (birth-certificate)", "accepted")
    ]
    assert inbound[0]["client"].startswith("portal-")  # the client that filed it
    outbound = [e for e in entries if e["direction"] == "outbound"]
    assert {e["operation"] for e in outbound} >= {"RequestActCopy", "GetActRequestStatus"}
    assert all(e["system"] == "etat_civil" for e in outbound)
    assert all(e["purpose"] == "etat_civil_delivrance_actes" for e in entries)
    assert all(e["legal_basis"] == "legal_obligation" for e in outbound)
    assert all(e["citizen_ref"] == golden for e in outbound)
    assert all(e["payload_digest"] and e["sealed"] and e["hash"] for e in entries)
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert golden != other


def test_pages_follow_the_cursor_and_filters_narrow(filed) -> None:
    live, auditor, (first, _), (golden, _) = filed
    with live.client(auditor) as client:
        everything = client.get("/v1/journal", params={"citizen": golden}).json()["entries"]
        paged, after = [], 0
        while True:
            page = client.get("/v1/journal", params={"citizen": golden, "limit": 2, "after": after}).json()
            assert len(page["entries"]) <= 2
            paged += page["entries"]
            if page["next_after"] is None:
                break
            after = page["next_after"]
        # the same rows, then the auditor's own reads of this citizen, journaled meanwhile
        assert [e["id"] for e in paged[: len(everything)]] == [e["id"] for e in everything]
        assert {(e["client"], e["operation"]) for e in paged[len(everything) :]} == {
            ("cnil-audit", "GET /v1/journal")
        }

        calls = client.get(
            "/v1/journal", params={"request_id": first, "system": "etat_civil", "operation": "RequestActCopy"}
        ).json()["entries"]
        assert calls and all(e["operation"] == "RequestActCopy" and e["request_id"] == first for e in calls)
        later = client.get("/v1/journal", params={"since": "2999-01-01T00:00:00"}).json()["entries"]
        assert later == []
        window = client.get(
            "/v1/journal",
            params={"citizen": golden, "since": everything[0]["at"], "until": everything[-1]["at"]},
        ).json()["entries"]
        assert [e["id"] for e in window] == [
            e["id"] for e in everything[:-1] if e["at"] < everything[-1]["at"]
        ]


def test_reading_the_journal_is_itself_journaled_and_an_unknown_citizen_is_404(filed) -> None:
    live, auditor, _, (golden, _) = filed
    with live.client(auditor) as client:
        missing = client.get("/v1/journal", params={"citizen": "no-such-golden"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        client.get("/v1/journal", params={"citizen": golden})
        reads = client.get(
            "/v1/journal", params={"client": "cnil-audit", "operation": "GET /v1/journal"}
        ).json()
    assert [(e["citizen_ref"], e["outcome"]) for e in reads["entries"]] == [
        ("no-such-golden", "not_found"),
        (golden, "ok"),
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 501},
        {"limit": 0},
        {"direction": "sideways"},
        {"since": "yesterday"},
        {"after": -1},
        # beyond a BIGINT: an OverflowError in SQLite's driver, a DataError on PostgreSQL (a 500)
        {"after": "99999999999999999999"},
        {"after": str(2**63)},
        # valid ISO 8601, but outside the calendar once converted to UTC (the column's time)
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:30:00-01:00"},
    ],
)
def test_bad_filters_are_422_with_the_field(filed, params) -> None:
    live, auditor, _, _ = filed
    with live.client(auditor) as client:
        answer = client.get("/v1/journal", params=params)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_failed"
    assert any(next(iter(params)) in str(detail) for detail in error["details"])


def test_the_largest_cursor_and_the_calendar_edges_are_answered(filed) -> None:
    """The bounds are the types' own: the last BIGINT id and the first instant in UTC are valid."""
    live, auditor, _, _ = filed
    with live.client(auditor) as client:
        last = client.get("/v1/journal", params={"after": str(2**63 - 1)})
        first = client.get("/v1/journal", params={"since": "0001-01-01T00:00:00+00:00", "limit": 1})
    assert last.status_code == 200 and last.json()["entries"] == []
    assert first.status_code == 200 and len(first.json()["entries"]) == 1


def test_only_the_audit_scope_reads_the_journal(filed) -> None:
    live, _, _, _ = filed
    with live.client() as portal:  # the portal's own key
        assert portal.get("/v1/journal").json()["error"]["code"] == "forbidden"
        assert portal.get("/v1/journal/verify").status_code == 403
    with live.client("not-a-key") as stranger:
        assert stranger.get("/v1/journal").status_code == 401


def test_verify_over_http_names_the_altered_row(filed) -> None:
    live, auditor, (first, _), _ = filed
    with live.client(auditor) as client:
        good = client.get("/v1/journal/verify").json()
        assert good["ok"] is True and good["checked"] > 0 and good["first_bad_id"] is None
        with live.hub.db.connection() as connection:
            row_id = connection.scalar(select(JOURNAL.c.id).where(JOURNAL.c.request_id == first).limit(1))
            connection.execute(update(JOURNAL).where(JOURNAL.c.id == row_id).values(outcome="ok"))
        bad = client.get("/v1/journal/verify").json()
    assert bad["ok"] is False and bad["first_bad_id"] == row_id
    assert "altered" in bad["problem"] and "BROKEN" in bad["summary"]


def test_a_citizens_refused_requests_are_found_by_golden_id(filed) -> None:
    """A request refused at the door has no request row: the DPO finds it by the citizen's
    pseudonym, which their golden record holds as the source record of their requests."""
    live, auditor, (first, _), (golden, other) = filed
    reused = sample("01-lefevre-copie-integrale")
    reused["data"]["copy_type"] = "extrait_sans_filiation"
    invalid = sample("01-lefevre-copie-integrale")
    invalid["data"] = {"copy_type": "photocopie"}
    with live.client() as portal:
        with live.hub.db.reading() as connection:
            key = connection.scalar(select(REQUESTS.c.idempotency_key).where(REQUESTS.c.id == first))
        assert portal.post("/v1/requests", json=reused, headers={"Idempotency-Key": key}).status_code == 422
        assert portal.post("/v1/requests", json=invalid).status_code == 422
        stranger = sample("01-lefevre-copie-integrale")
        stranger["citizen"]["birth_date"] = "1990-01-01"  # someone else, refused too
        stranger["data"] = {}
        assert portal.post("/v1/requests", json=stranger).status_code == 422
    with live.client(auditor) as client:
        mine = client.get("/v1/journal", params={"citizen": golden, "outcome": "rejected"}).json()["entries"]
        theirs = client.get("/v1/journal", params={"citizen": other, "outcome": "rejected"}).json()["entries"]
    assert [(e["error_code"], e["request_id"]) for e in mine] == [
        ("idempotency_key_reused", first),
        ("validation_failed", None),
    ]
    assert all(e["purpose"] == "etat_civil_delivrance_actes" and e["legal_basis"] for e in mine)
    assert theirs == []
