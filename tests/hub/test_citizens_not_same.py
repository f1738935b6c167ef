"""The review queue does not ask again what a steward answered "not the same person" (issue 5)."""

from __future__ import annotations

from sqlalchemy import update

from hub.citizens import Citizens
from hub.db.master_models import TASKS
from tests.master_data.conftest import person

ELSEWHERE = {"birth_date": "1985-03-15", "birth_place": "13055"}


def test_the_queue_hides_a_task_whose_golden_records_were_decided_not_same(hub):
    citizens = Citizens(hub)
    a = citizens.resolve(person("etat_civil", "N-1"), actor="test")
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test")
    assert b.outcome == "review" and b.task_id is not None
    citizens.decide(b.task_id, "not_same", actor="steward")
    # Later, a record born elsewhere again makes a task against A; its golden record is then merged
    # into B: the task now asks whether A and B are one person, which was answered.
    d = citizens.resolve(person("portal", "cit_4", birth_place="33063"), actor="test")
    assert d.outcome == "review" and d.task_id is not None
    assert d.task_id in [task["id"] for task in citizens.tasks().tasks]
    citizens.merge(b.golden_id, d.golden_id, actor="steward")
    assert d.task_id not in [task["id"] for task in citizens.tasks().tasks]
    assert a.golden_id != b.golden_id
    # The report's pending count is the queue's, not every open row.
    assert citizens.tasks().tasks == [] and citizens.thresholds_report().pending == 0


def test_a_page_of_tasks_is_filled_past_the_hidden_ones(hub):
    """A hidden task does not shorten the page: the next open task takes its place, and the cursor
    says whether there may be more."""
    citizens = Citizens(hub)
    citizens.resolve(person("etat_civil", "N-1"), actor="test")
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test")
    citizens.decide(b.task_id, "not_same", actor="steward")
    d = citizens.resolve(person("portal", "cit_4", birth_place="33063"), actor="test")
    citizens.merge(b.golden_id, d.golden_id, actor="steward")  # d's task is now hidden
    citizens.resolve(person("etat_civil", "N-7", birth_name="Garnier"), actor="test")
    e = citizens.resolve(person("finances", "T-8", birth_name="Garnier", **ELSEWHERE), actor="test")
    assert e.outcome == "review" and e.task_id is not None

    first = citizens.tasks(limit=1)
    assert [task["id"] for task in first.tasks] == [e.task_id]
    assert first.next_after == e.task_id
    last = citizens.tasks(limit=1, after=first.next_after)
    assert last.tasks == [] and last.next_after is None


def test_a_task_closed_by_another_decision_is_not_counted_as_a_decision(hub):
    """Stewards answered once: the thresholds report counts one decision, not one per task the
    answer closed."""
    citizens = Citizens(hub)
    citizens.resolve(person("etat_civil", "N-1"), actor="test")
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test")
    c = citizens.resolve(person("ged", "G-1", birth_place="69123"), actor="test")
    assert b.outcome == c.outcome == "review"
    citizens.merge(b.golden_id, c.golden_id, actor="steward")  # both tasks now ask about A and B
    citizens.decide(b.task_id, "not_same", actor="steward")
    assert [task["id"] for task in citizens.tasks("not_same").tasks] == [b.task_id, c.task_id]
    report = citizens.thresholds_report()
    assert (report.decided, report.pending) == (1, 0)


def test_the_queue_never_lists_a_task_inside_one_golden_record(hub):
    """A merge answers the task between the two golden records: neither the queue nor the report's
    pending count still asks it, and a task an older version left open there is hidden too."""
    citizens = Citizens(hub)
    a = citizens.resolve(person("etat_civil", "N-1"), actor="test")
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test")
    assert b.task_id in [task["id"] for task in citizens.tasks().tasks]
    merged = citizens.merge(a.golden_id, b.golden_id, actor="steward")
    assert citizens.tasks().tasks == []
    [closed] = citizens.tasks("linked").tasks
    assert closed["id"] == b.task_id and closed["reason"] == f"as merged by event {merged['event_id']}"
    assert citizens.thresholds_report().pending == 0
    with hub.db.connection() as connection:
        connection.execute(update(TASKS).where(TASKS.c.id == b.task_id).values(status="open"))
    assert citizens.tasks().tasks == []


def test_a_link_undone_by_an_unmerge_counts_as_not_same_under_its_rule(hub):
    """The steward's final word counts: a link split back is "not the same person". The task came
    from a conflict (born elsewhere), so it is counted under its rule, not in the score's bands."""
    citizens = Citizens(hub)
    a = citizens.resolve(person("etat_civil", "N-1"), actor="test")
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test")
    assert b.explanation is not None and b.explanation.rule == "conflict:birth_place"
    citizens.decide(b.task_id, "link", actor="steward")
    linked = citizens.thresholds_report().as_json()
    assert linked["by_rule"] == [{"rule": "conflict:birth_place", "decided": 1, "linked": 1, "not_same": 0}]
    assert linked["scored"] == 0 and sum(band["decided"] for band in linked["bands"]) == 0
    citizens.unmerge(a.golden_id, b.golden_id, actor="steward")
    undone = citizens.thresholds_report().as_json()
    assert undone["by_rule"] == [{"rule": "conflict:birth_place", "decided": 1, "linked": 0, "not_same": 1}]
    assert undone["decided"] == 1
