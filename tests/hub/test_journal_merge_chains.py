"""A citizen's journal selection across chained, nested and overlapping merges (RGPD art. 15):
while golden records were held together — by one merge or a chain of them — rows written under any
of them concerned each person inside, and only for that time. Histories are built through the real
merge and unmerge API; the auditor reads ``GET /v1/journal?citizen=``."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import event

from hub.citizens import Citizens
from hub.journal_search import JournalFilter, search
from tests.master_data.conftest import person

VIEW = "GET /v1/citizens/{id}"


class History:
    """Three or four people, a steward who merges, splits and looks, an auditor who reads."""

    def __init__(self, live) -> None:
        self.live = live
        citizens = Citizens(live.hub)
        self.ids = {
            name: citizens.resolve(
                person("etat_civil", f"N-{k}", birth_name=name, birth_date=f"19{60 + k}-0{k + 1}-1{k}"),
                actor="test",
            ).golden_id
            for k, name in enumerate(("Arnaud", "Bernard", "Carpentier", "Dumas"))
        }
        self.name = {golden_id: name for name, golden_id in self.ids.items()}
        self.steward = live.hub.clients.add("steward", ["stewardship:write", "citizens:read"])
        self.auditor = live.hub.clients.add("dpo", ["audit"])

    def merge(self, survivor: str, absorbed: str) -> None:
        self._post(survivor, "merge", {"other": self.ids[absorbed]})

    def unmerge(self, survivor: str, restored: str) -> None:
        self._post(survivor, "unmerge", {"restore": self.ids[restored]})

    def view(self, name: str) -> None:
        with self.live.client(self.steward) as client:
            assert client.get(f"/v1/citizens/{self.ids[name]}").status_code == 200

    def _post(self, survivor: str, action: str, body: dict) -> None:
        with self.live.client(self.steward) as client:
            answer = client.post(f"/v1/citizens/{self.ids[survivor]}/{action}", json=body)
        assert answer.status_code == 200, answer.text

    def journal(self, name: str) -> list[str]:
        """The selection, as 'operation @ whose row' with names for golden ids (reads left out)."""
        with self.live.client(self.auditor) as client:
            answer = client.get("/v1/journal", params={"citizen": self.ids[name], "limit": 500})
        assert answer.status_code == 200, answer.text
        out = []
        for entry in answer.json()["entries"]:
            if entry["operation"] == "GET /v1/journal":
                continue
            operation = entry["operation"]
            for golden_id, who in self.name.items():
                operation = operation.replace(golden_id, who)
            out.append(f"{operation} @ {self.name[entry['citizen_ref']]}")
        return out


@pytest.fixture
def history(live_api) -> History:
    return History(live_api)


def test_a_chain_of_undone_merges_reaches_the_last_record_for_the_time_it_held_the_first(history):
    """A into B, B into C, split back B from C, then A from B: rows written under C while A was
    inside it (through B) are A's, and A's rows of that time are C's."""
    h = history
    h.view("Carpentier")  # before: C's alone
    h.merge("Bernard", "Arnaud")
    h.merge("Carpentier", "Bernard")
    h.view("Carpentier")  # A inside C
    h.view("Arnaud")  # seen while inside C
    h.unmerge("Carpentier", "Bernard")
    h.view("Carpentier")  # after: C's alone again
    h.view("Bernard")  # A still inside B
    h.unmerge("Bernard", "Arnaud")
    h.view("Bernard")  # after: B's alone
    assert h.journal("Arnaud") == [
        "merge Arnaud into Bernard @ Bernard",
        "merge Arnaud into Bernard @ Arnaud",
        "merge Bernard into Carpentier @ Carpentier",
        "merge Bernard into Carpentier @ Bernard",
        f"{VIEW} @ Carpentier",
        f"{VIEW} @ Arnaud",
        "unmerge Bernard from Carpentier @ Bernard",
        f"{VIEW} @ Bernard",
        "unmerge Arnaud from Bernard @ Arnaud",
    ]
    assert h.journal("Carpentier") == [
        f"{VIEW} @ Carpentier",
        "merge Bernard into Carpentier @ Carpentier",
        "merge Bernard into Carpentier @ Bernard",
        f"{VIEW} @ Carpentier",
        f"{VIEW} @ Arnaud",
        "unmerge Bernard from Carpentier @ Carpentier",
        f"{VIEW} @ Carpentier",
    ]


def test_two_records_merged_into_one_for_overlapping_times_share_the_overlap(history):
    """A into B, then D into B; A split back, then D: D's rows while both were inside B are A's,
    and not those before or after."""
    h = history
    h.merge("Bernard", "Arnaud")
    h.view("Dumas")  # D not yet inside B
    h.merge("Bernard", "Dumas")
    h.view("Dumas")  # A and D both inside B
    h.unmerge("Bernard", "Arnaud")
    h.view("Dumas")  # D inside B, A gone
    h.unmerge("Bernard", "Dumas")
    assert h.journal("Arnaud") == [
        "merge Arnaud into Bernard @ Bernard",
        "merge Arnaud into Bernard @ Arnaud",
        "merge Dumas into Bernard @ Bernard",
        "merge Dumas into Bernard @ Dumas",
        f"{VIEW} @ Dumas",
        "unmerge Arnaud from Bernard @ Arnaud",
    ]
    assert h.journal("Dumas") == [
        f"{VIEW} @ Dumas",
        "merge Dumas into Bernard @ Bernard",
        "merge Dumas into Bernard @ Dumas",
        f"{VIEW} @ Dumas",
        "unmerge Arnaud from Bernard @ Bernard",
        f"{VIEW} @ Dumas",
        "unmerge Dumas from Bernard @ Dumas",
    ]


def test_a_merge_in_force_makes_one_person_whichever_golden_id_is_asked(history):
    """A merged into B and not split: A and B are one person, so asking with A's (merged) id or B's
    gives the same rows, from before the merge too; C, held by B for a while before A came, is
    part of it for that while."""
    h = history
    h.view("Bernard")  # B before anything
    h.merge("Bernard", "Carpentier")
    h.view("Carpentier")
    h.unmerge("Bernard", "Carpentier")
    h.view("Carpentier")  # C alone again: not B's
    h.merge("Bernard", "Arnaud")
    h.view("Bernard")
    expected = [
        f"{VIEW} @ Bernard",
        "merge Carpentier into Bernard @ Bernard",
        "merge Carpentier into Bernard @ Carpentier",
        f"{VIEW} @ Carpentier",
        "unmerge Carpentier from Bernard @ Bernard",
        "merge Arnaud into Bernard @ Bernard",
        "merge Arnaud into Bernard @ Arnaud",
        f"{VIEW} @ Bernard",
    ]
    assert h.journal("Arnaud") == expected
    assert h.journal("Bernard") == expected


def test_a_page_costs_three_queries_however_deep_the_chain(hub):
    """The merge history in one recursive query, the person's requests and imports in one, then the
    page: no look-up per merge or per row."""
    citizens = Citizens(hub)
    ids = [
        citizens.resolve(
            person(
                "etat_civil", f"N-{k}", birth_name=f"Nom{k}", birth_date=f"19{50 + k}-0{k % 9 + 1}-1{k % 9}"
            ),
            actor="test",
        ).golden_id
        for k in range(8)
    ]
    for inner, outer in itertools.pairwise(ids):  # 0 into 1, 1 into 2, ... 6 into 7
        citizens.merge(outer, inner, actor="steward")
    for inner, outer in reversed(list(itertools.pairwise(ids))):  # 6 out of 7, ... 0 out of 1
        citizens.unmerge(outer, inner, actor="steward")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's own transaction start
            statements.append(statement)

    with hub.db.reading() as connection:
        event.listen(connection, "before_cursor_execute", count)
        page = search(connection, JournalFilter(citizen=ids[0]), limit=500)
        event.remove(connection, "before_cursor_execute", count)
    assert len(statements) == 3
    # Every golden record of the chain held the first for a while: their merge rows are its.
    assert {e["citizen_ref"] for e in page.entries} == set(ids)
