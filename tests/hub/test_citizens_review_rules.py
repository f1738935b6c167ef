"""The review queue says why a steward is asked, and the thresholds report counts decisions on
tasks the score's band did not make under their rule (issue 5): a record above the upper
threshold against two golden records, a known record newly stating another's identifier."""

from __future__ import annotations

from hub.citizens import Citizens
from tests.master_data.conftest import person

THIN = {"birth_name": "Martin", "given_names": ("Elodi",), "sex": None, "birth_place": None}


def test_the_queue_says_why_and_the_report_counts_each_reason_apart(live_api):
    citizens = Citizens(live_api.hub)
    paris = citizens.resolve(person("etat_civil", "N-1"), actor="test")
    marseille = citizens.resolve(person("etat_civil", "N-2", birth_place="13055"), actor="test")
    assert marseille.outcome == "review"  # born elsewhere: a conflict, its own rule
    unsure = citizens.resolve(person("ecole", "FAM-77", birth_place=None), actor="test")
    assert unsure.outcome == "review"
    school = citizens.resolve(person("ecole", "FAM-80", **THIN, birth_date="1985-04-14"), actor="test")
    stating = citizens.resolve(
        person("ecole", "FAM-80", **THIN, birth_date="1985-04-14", identifiers=(("etat_civil", "N-1"),)),
        actor="test",
    )
    assert stating.outcome == "updated" and stating.task_id is not None
    steward = live_api.hub.clients.add("steward", ["stewardship:write"])
    with live_api.client(steward) as client:
        listed = client.get("/v1/stewardship/tasks")
        assert listed.status_code == 200, listed.text
        tasks = {task["id"]: task for task in listed.json()["tasks"]}
        assert tasks[marseille.task_id]["rule"] == "conflict:birth_place"
        ambiguous = tasks[unsure.task_id]
        assert ambiguous["rule"] == "ambiguous_golden" and ambiguous["probability"] >= 0.95
        assert "above the link threshold against two golden records" in ambiguous["why"]
        identifier = tasks[stating.task_id]
        assert identifier["rule"] == "identifier_conflict"
        assert identifier["explanation"]["rule"] == "same_identifier"  # the pair's own explanation
        assert "newly states an identifier" in identifier["why"]
        assert (identifier["golden_id"], identifier["candidate_golden_id"]) == (
            school.golden_id,
            paris.golden_id,
        )
        for task_id, decision in ((unsure.task_id, "link"), (stating.task_id, "not_same")):
            answer = client.post(f"/v1/stewardship/tasks/{task_id}", json={"decision": decision})
            assert answer.status_code == 200, answer.text
            assert answer.json()["rule"] == tasks[task_id]["rule"]
        report = client.get("/v1/stewardship/thresholds").json()
    # Neither decision says where the thresholds stand: counted by rule, none under above_upper.
    assert report["scored"] == 0 and report["decided"] == 2
    assert report["by_rule"] == [
        {"rule": "ambiguous_golden", "decided": 1, "linked": 1, "not_same": 0},
        {"rule": "identifier_conflict", "decided": 1, "linked": 0, "not_same": 1},
    ]
