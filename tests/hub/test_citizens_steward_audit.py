"""Stewards' actions on merged golden records: explained as they are now, and journaled for every
person involved (RGPD art. 15)."""

from __future__ import annotations

from hub.citizens import Citizens
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
