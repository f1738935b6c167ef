"""Group commit: a batch is written in one transaction; one bad request cannot fail the others."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from hub.auth import Principal
from hub.db.models import Request
from hub.group_commit import GroupCommitter, _Pending
from hub.intake import Accepted, IdempotencyKeyReused, RequestBody, prepare
from tests.conftest import sample

PORTAL = Principal("portal", frozenset({"portal"}))
NAMES = ["01-lefevre-copie-integrale", "02-de-la-fontaine-extrait-filiation", "04-santoni-corse"]


def prepared(hub, name: str, key: str | None):
    return prepare(hub, PORTAL, RequestBody.model_validate(sample(name)), key, time.perf_counter())


def write(committer: GroupCommitter, items) -> list:
    loop = asyncio.new_event_loop()
    try:
        batch = [_Pending(item, loop.create_future(), loop) for item in items]
        committer._write(batch)
        loop.run_until_complete(asyncio.sleep(0))  # run the settling callback
        return [p.future.exception() or p.future.result() for p in batch]
    finally:
        loop.close()


def requests_count(hub) -> int:
    with hub.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Request))


def test_a_batch_is_written_together_and_duplicates_inside_it_replay(hub):
    committer = GroupCommitter(hub)
    try:
        items = [prepared(hub, name, f"k-{i}") for i, name in enumerate(NAMES)]
        duplicate = prepared(hub, NAMES[0], "k-0")
        reused = prepared(hub, NAMES[1], "k-0")
        outcomes = write(committer, [*items, duplicate, reused])
    finally:
        committer.stop()
    created = [o for o in outcomes[:3] if isinstance(o, Accepted) and o.created]
    assert len(created) == 3
    assert isinstance(outcomes[3], Accepted) and not outcomes[3].created
    assert outcomes[3].request_id == outcomes[0].request_id
    assert isinstance(outcomes[4], IdempotencyKeyReused)
    assert requests_count(hub) == 3
    assert committer.batches == 1


def test_one_bad_request_fails_alone(hub):
    committer = GroupCommitter(hub)
    try:
        good = [prepared(hub, name, None) for name in NAMES]
        bad = prepared(hub, NAMES[0], None)
        bad.journal_row["payload_digest"] = None  # the database refuses this row
        outcomes = write(committer, [good[0], bad, good[1], good[2]])
    finally:
        committer.stop()
    assert [type(o).__name__ for o in outcomes] == ["Accepted", "Unavailable", "Accepted", "Accepted"]
    assert requests_count(hub) == 3


@pytest.mark.parametrize("count", [40])
def test_concurrent_posts_are_all_recorded(live_api, count):
    from concurrent.futures import ThreadPoolExecutor

    def post(i: int):
        with live_api.client() as client:
            return client.post(
                "/v1/requests", json=sample(NAMES[i % 3]), headers={"Idempotency-Key": f"c{i}"}
            )

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(count)))
    assert [a.status_code for a in answers] == [202] * count
    assert len({a.json()["id"] for a in answers}) == count
    assert requests_count(live_api.hub) == count


def test_a_database_outage_answers_503_and_nothing_hangs(live_api, monkeypatch):
    import hub.group_commit as group_commit

    def broken(*_args, **_kwargs):
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(group_commit, "record_many", broken)
    with live_api.client() as client:
        response = client.post("/v1/requests", json=sample(NAMES[0]), headers={"Idempotency-Key": "o-1"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable" and response.headers["retry-after"] == "5"
    monkeypatch.undo()
    with live_api.client() as client:  # the writer survived: the retry with the same key goes through
        again = client.post("/v1/requests", json=sample(NAMES[0]), headers={"Idempotency-Key": "o-1"})
    assert again.status_code == 202
