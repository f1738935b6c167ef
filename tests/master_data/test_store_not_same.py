"""A steward's "not the same person" is remembered: the same question is not asked again, and the
two golden records are not linked (issue 5)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from hub.db.master_models import NOT_SAME, TASKS
from hub.db.models import utcnow
from hub.master_store import DecidedNotSame, SameGoldenRecord, TaskDecided
from tests.master_data.conftest import person

ELSEWHERE = {"birth_date": "1985-03-15", "birth_place": "13055"}


def decide(golden, task_id: int, decision: str):
    with golden.db.connection() as connection:
        return golden.store.decide(connection, task_id, decision, now=utcnow(), actor="steward")


def task_status(golden, task_id: int) -> tuple[str, str | None]:
    with golden.db.connection() as connection:
        row = connection.execute(select(TASKS.c.status, TASKS.c.reason).where(TASKS.c.id == task_id)).one()
    return row.status, row.reason


def merge(golden, survivor: str, absorbed: str) -> None:
    with golden.db.connection() as connection:
        golden.store.merge(connection, survivor, absorbed, now=utcnow(), actor="steward")


@pytest.fixture
def asked_twice(golden):
    """Two open tasks asking whether golden records A and B are one person: the second came with a
    record born elsewhere again (golden C, a task against A), then C was merged into B."""
    a = golden.resolve(person("etat_civil", "N-1"))
    b = golden.resolve(person("finances", "T-3", **ELSEWHERE))
    assert b.outcome == "review" and b.task_id is not None
    c = golden.resolve(person("ged", "G-1", birth_place="69123"))
    assert c.outcome == "review" and c.task_id is not None and c.golden_id not in (a.golden_id, b.golden_id)
    merge(golden, b.golden_id, c.golden_id)
    return a, b, c


def test_not_same_is_remembered_and_closes_the_other_task_asking_the_same(golden, asked_twice):
    a, b, c = asked_twice
    assert decide(golden, b.task_id, "not_same") is None
    with golden.db.connection() as connection:
        rows = connection.execute(select(NOT_SAME)).all()
        assert {(r.a_system, r.a_local_id, r.b_system, r.b_local_id) for r in rows} == {
            ("finances", "T-3", "etat_civil", "N-1")
        }
        assert golden.store.not_same_between(connection, [(a.golden_id, b.golden_id)]) == {
            frozenset((a.golden_id, b.golden_id))
        }
    # The other task asked the same question (B, which now holds G-1, against A): closed with it.
    assert task_status(golden, c.task_id) == ("not_same", f"as decided on task {b.task_id}")


def test_a_link_between_golden_records_decided_not_same_is_refused(golden, asked_twice):
    a, b, _c = asked_twice
    decide(golden, b.task_id, "not_same")
    # A third record born elsewhere again: a new task against A, its golden record merged into B.
    d = golden.resolve(person("portal", "cit_4", birth_place="33063"))
    assert d.outcome == "review" and d.task_id is not None
    merge(golden, b.golden_id, d.golden_id)
    with golden.db.connection() as connection:
        goldens = golden.store.task_goldens(connection, task_ids=[d.task_id])[d.task_id]
        assert set(goldens) == {a.golden_id, b.golden_id}
    with pytest.raises(DecidedNotSame) as refused:
        decide(golden, d.task_id, "link")
    assert refused.value.code == "decided_not_same" and refused.value.status == 409
    assert task_status(golden, d.task_id)[0] == "open"


def test_real_time_never_links_again_a_record_decided_not_same(golden):
    a = golden.resolve(person("etat_civil", "N-1"))
    b = golden.resolve(person("finances", "T-3", **ELSEWHERE))
    decide(golden, b.task_id, "not_same")
    # The same record sent again, now without its birth place (which alone set it apart): it stays
    # where the steward left it, and no task asks the question again.
    again = golden.resolve(person("finances", "T-3", **{**ELSEWHERE, "birth_place": None}))
    assert again.outcome == "updated" and again.golden_id == b.golden_id and again.task_id is None
    # Its key is the constraint: a candidate golden record holding N-1 is set aside for it.
    with golden.db.connection() as connection:
        assert golden.store.not_same_as_record(connection, ("finances", "T-3"), {a.golden_id, "other"}) == {
            a.golden_id
        }
        assert golden.store.not_same_as_record(connection, ("finances", "T-9"), {a.golden_id}) == set()


def reopen(golden, task_id: int) -> None:
    """A task left open by an older version across a merge of its two golden records."""
    with golden.db.connection() as connection:
        connection.execute(
            update(TASKS)
            .where(TASKS.c.id == task_id)
            .values(status="open", decided_at=None, decided_by=None, reason=None)
        )


def test_a_merge_closes_the_open_tasks_it_answers(golden):
    """A steward merging two golden records explicitly answers the task between them: it leaves
    the queue, closed as linked and naming the merge."""
    a = golden.resolve(person("etat_civil", "N-1"))
    b = golden.resolve(person("finances", "T-3", **ELSEWHERE))
    assert b.outcome == "review" and b.task_id is not None
    with golden.db.connection() as connection:
        merged = golden.store.merge(connection, a.golden_id, b.golden_id, now=utcnow(), actor="steward")
    assert task_status(golden, b.task_id) == ("linked", f"as merged by event {merged.event_id}")
    with pytest.raises(TaskDecided):
        decide(golden, b.task_id, "not_same")


def test_not_same_between_records_of_one_golden_record_is_refused(golden):
    """Nothing would split the two records: "not the same person" is refused (unmerge first),
    without remembering a constraint or closing other tasks; "link" just closes the task."""
    a = golden.resolve(person("etat_civil", "N-1"))
    b = golden.resolve(person("finances", "T-3", **ELSEWHERE))
    merge(golden, a.golden_id, b.golden_id)
    reopen(golden, b.task_id)
    with pytest.raises(SameGoldenRecord) as refused:
        decide(golden, b.task_id, "not_same")
    assert refused.value.code == "same_golden_record" and refused.value.status == 409
    assert "unmerge first" in refused.value.message
    assert task_status(golden, b.task_id) == ("open", None)
    with golden.db.connection() as connection:
        assert connection.execute(select(NOT_SAME)).all() == []
    assert decide(golden, b.task_id, "link") is None
    assert task_status(golden, b.task_id)[0] == "linked"
