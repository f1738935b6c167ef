"""Stewards' actions on merged golden records: explained as they are now, and journaled for every
person involved (RGPD art. 15)."""

from __future__ import annotations

from sqlalchemy import select

from hub.citizens import Citizens
from hub.db.models import JOURNAL
from tests.master_data.conftest import person

ELSEWHERE = {"birth_date": "1985-03-15", "birth_place": "13055"}


def test_explain_on_a_merged_golden_id_compares_where_it_lives_now(hub):
    """A merged golden record holds no values: it stands for its survivor, and the answer says so."""
    citizens = Citizens(hub)
    a = citizens.resolve(person("etat_civil", "N-1"), actor="test")
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test")
    citizens.merge(a.golden_id, b.golden_id, actor="steward")
    explained = citizens.explain(b.golden_id, "etat_civil:N-1")
    assert explained["merged_into"] == {"a": a.golden_id}
    assert explained["golden_ids"] == [a.golden_id]
    assert explained["outcome"] == "link"  # the survivor's values are N-1's own
    levels = {c["field"]: c["level"] for c in explained["comparisons"]}
    assert levels["birth_name"] == "exact" and levels["birth_date"] == "exact"
    assert citizens.explain(a.golden_id, "etat_civil:N-1")["merged_into"] == {}


def journal_of(live, auditor: str, golden_id: str) -> list[tuple[str, str, str]]:
    with live.client(auditor) as client:
        answer = client.get("/v1/journal", params={"citizen": golden_id, "limit": 500})
    assert answer.status_code == 200, answer.text
    return [(e["operation"], e["citizen_ref"], e["outcome"]) for e in answer.json()["entries"]]


def test_each_person_of_a_merge_and_unmerge_finds_it_in_their_journal_report(live_api):
    """Merge, a refused merge and unmerge are journaled under both people; rows written under the
    survivor while the two were one stay in the restored person's report, and only those."""
    citizens = Citizens(live_api.hub)
    a = citizens.resolve(person("etat_civil", "N-1"), actor="test").golden_id
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test").golden_id
    steward = live_api.hub.clients.add("steward", ["stewardship:write", "citizens:read"])
    auditor = live_api.hub.clients.add("dpo", ["audit"])
    with live_api.client(steward) as client:
        assert client.post(f"/v1/citizens/{a}/merge", json={"other": b}).status_code == 200
        assert client.get(f"/v1/citizens/{a}").status_code == 200  # seen while B's data was in it
        again = client.post(f"/v1/citizens/{a}/merge", json={"other": b})
        assert again.json()["error"]["code"] == "golden_record_not_active"
        assert client.post(f"/v1/citizens/{a}/unmerge", json={"restore": b}).status_code == 200
        assert client.get(f"/v1/citizens/{a}").status_code == 200  # A alone again
    merge, unmerge = f"merge {b} into {a}", f"unmerge {b} from {a}"
    view = "GET /v1/citizens/{id}"
    while_merged = [
        (merge, a, "ok"),
        (merge, b, "ok"),
        (view, a, "ok"),
        (merge, a, "golden_record_not_active"),
        (merge, b, "golden_record_not_active"),
    ]
    # A's report: its own rows, and B's written while the two were one.
    assert journal_of(live_api, auditor, a) == [*while_merged, (unmerge, a, "ok"), (view, a, "ok")]
    # B's report: its own rows, and A's written while the two were one (not A's view after the split).
    assert journal_of(live_api, auditor, b) == [*while_merged, (unmerge, b, "ok")]


def test_a_decision_and_a_refused_one_are_journaled_under_both_people(live_api):
    citizens = Citizens(live_api.hub)
    a = citizens.resolve(person("etat_civil", "N-1"), actor="test").golden_id
    b = citizens.resolve(person("finances", "T-3", **ELSEWHERE), actor="test")
    steward = live_api.hub.clients.add("steward", ["stewardship:write"])
    auditor = live_api.hub.clients.add("dpo", ["audit"])
    with live_api.client(steward) as client:
        first = client.post(f"/v1/stewardship/tasks/{b.task_id}", json={"decision": "not_same"})
        twice = client.post(f"/v1/stewardship/tasks/{b.task_id}", json={"decision": "link"})
        missing = client.post("/v1/stewardship/tasks/999", json={"decision": "link"})
    assert first.status_code == 200 and twice.json()["error"]["code"] == "task_already_decided"
    assert missing.status_code == 404
    for golden_id in (a, b.golden_id):
        assert journal_of(live_api, auditor, golden_id) == [
            (f"stewardship task {b.task_id}: not_same", golden_id, "ok"),
            (f"stewardship task {b.task_id}: link", golden_id, "task_already_decided"),
        ]
    with live_api.hub.db.reading() as connection:
        refs = connection.execute(
            select(JOURNAL.c.citizen_ref, JOURNAL.c.outcome).where(
                JOURNAL.c.operation == "stewardship task 999: link"
            )
        ).all()
    assert [tuple(r) for r in refs] == [(None, "not_found")]


def test_the_estimation_sample_spreads_over_the_whole_population(hub):
    """A sample smaller than the population is not the first rows read (one system's, the oldest
    import's): each system's records are in it, about in proportion."""
    citizens = Citizens(hub)
    for system in ("etat_civil", "finances"):
        for i in range(60):
            citizens.resolve(
                person(
                    system,
                    f"{system}-{i}",
                    birth_name=f"Nom{system}{i}",
                    birth_date=f"19{10 + i}-05-0{1 + i % 9}",
                ),
                actor="test",
            )
    sampled = citizens.estimation_sample(40)
    systems = [record.system for record in sampled]
    assert len(sampled) == 40
    assert 10 <= systems.count("etat_civil") <= 30 and 10 <= systems.count("finances") <= 30
    assert [r.key for r in citizens.estimation_sample(40)] == [r.key for r in sampled]  # reproducible
    assert len(citizens.estimation_sample(500)) == 120
