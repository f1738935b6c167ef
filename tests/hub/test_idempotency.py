"""An idempotent consumer: 100 concurrent duplicates make one request and one back-end effect."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from hub import journal
from hub.db.models import JournalEntry, OutboxMessage, Request
from tests.conftest import sample
from tests.hub.test_birth_certificate_flow import acts_for, wait_for


def test_hundred_concurrent_duplicates_make_one_request_and_one_effect(live_hub, sandbox):
    body = sample("02-de-la-fontaine-extrait-filiation")

    def post(_: int):
        with live_hub.client() as client:
            return client.post("/v1/requests", json=body, headers={"Idempotency-Key": "portal-req-777"})

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, range(100)))
    assert {a.status_code for a in answers} == {202}
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    [request_id] = ids
    with live_hub.client() as client:
        assert wait_for(client, request_id)["status"] == "completed"
    with live_hub.hub.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 1
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        inbound = session.execute(
            select(JournalEntry.outcome, JournalEntry.request_id, JournalEntry.payload_digest).where(
                JournalEntry.direction == "inbound"
            )
        ).all()
    # every duplicate carried the citizen's identity in: one row each, answered with the one request
    assert sorted(row.outcome for row in inbound) == ["accepted"] + ["replayed"] * 99
    assert {(row.request_id, row.payload_digest) for row in inbound} == {
        (request_id, inbound[0].payload_digest)
    }
    assert journal.verify(live_hub.hub.db, live_hub.hub.journal_key).ok
    assert len(acts_for(sandbox, request_id)) == 1


def test_the_same_key_from_two_clients_is_two_requests(live_hub):
    other = live_hub.hub.clients.add("second-portal", ["portal"])
    body = sample("03-ndiaye-extrait-sans-filiation")
    with live_hub.client() as first, live_hub.client(key=other) as second:
        a = first.post("/v1/requests", json=body, headers={"Idempotency-Key": "shared"}).json()["id"]
        b = second.post("/v1/requests", json=body, headers={"Idempotency-Key": "shared"}).json()["id"]
    assert a != b
