"""The merge history read as periods: who was held together with a person, when, at any depth."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from master_data.merge_history import Merge, Period, current_person, shared_periods

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hour: float) -> datetime:
    return T0 + timedelta(hours=hour)


def test_a_chain_of_undone_merges_holds_the_first_inside_the_last():
    """A into B at 1, B into C at 2, B split from C at 3, A from B at 4."""
    merges = [Merge("B", "A", at(1), at(4)), Merge("C", "B", at(2), at(3))]
    assert current_person("A", merges) == {"A"}
    assert shared_periods({"A"}, merges) == [Period("B", at(1), at(4)), Period("C", at(2), at(3))]
    assert shared_periods({"C"}, merges) == [Period("A", at(2), at(3)), Period("B", at(2), at(3))]


def test_overlapping_merges_into_one_record_join_its_guests():
    """A and C both inside B from 2 to 3."""
    merges = [Merge("B", "A", at(1), at(3)), Merge("B", "C", at(2), at(4))]
    assert shared_periods({"A"}, merges) == [Period("B", at(1), at(3)), Period("C", at(2), at(3))]


def test_a_record_merged_again_after_a_split_has_two_periods():
    merges = [Merge("B", "A", at(1), at(2)), Merge("B", "A", at(5), at(6))]
    assert shared_periods({"A"}, merges) == [Period("B", at(1), at(2)), Period("B", at(5), at(6))]


def test_periods_that_touch_are_one():
    """A inside B from 1 to 4 while C comes and goes in B: one period for B, not three."""
    merges = [Merge("B", "A", at(1), at(4)), Merge("B", "C", at(2), at(3))]
    assert shared_periods({"A"}, merges) == [Period("B", at(1), at(4)), Period("C", at(2), at(3))]


def test_the_person_is_every_record_merged_together_now_and_what_they_held_before():
    """A merged into B (in force): A's person is B's; D, split from B before A came, was B's then."""
    merges = [Merge("B", "D", at(1), at(2)), Merge("B", "A", at(3)), Merge("A", "E", at(0))]
    assert current_person("A", merges) == current_person("B", merges) == {"A", "B", "E"}
    assert shared_periods({"A", "B", "E"}, merges) == [Period("D", at(1), at(2))]


IDS = "ABCDE"
events = st.lists(
    st.tuples(
        st.sampled_from(IDS),
        st.sampled_from(IDS),
        st.integers(0, 8),
        st.one_of(st.none(), st.integers(1, 6)),
    ),
    max_size=7,
)


@given(events, st.sampled_from(IDS))
def test_property_the_periods_select_what_the_merges_in_force_at_each_moment_say(history, citizen):
    """Brute force: a row written under G at time t concerns the person when G is one of its golden
    records now, or is joined to one of them by the merges in force at t (checked between event
    times, where the merges in force do not change)."""
    merges = [
        Merge(s, a, at(start), None if length is None else at(start + length))
        for s, a, start, length in history
        if s != a
    ]
    person = current_person(citizen, merges)
    periods = shared_periods(person, merges)
    for golden_id in IDS:
        for half_hours in range(1, 30, 2):
            moment = at(half_hours / 2)
            in_force = [m for m in merges if m.at <= moment and (m.until is None or moment <= m.until)]
            expected = golden_id in person or golden_id in _joined(person, in_force)
            selected = golden_id in person or any(
                p.golden_id == golden_id and p.since <= moment <= p.until for p in periods
            )
            assert selected == expected, (golden_id, moment)
    # One period per golden record where they touch; none for the person's own records.
    for p in periods:
        assert p.golden_id not in person and p.since < p.until
    ordered = sorted(periods, key=lambda p: (p.golden_id, p.since))
    for first, second in itertools.pairwise(ordered):
        assert first.golden_id != second.golden_id or first.until < second.since


def _joined(person: frozenset[str], merges: list[Merge]) -> set[str]:
    found = set(person)
    changed = True
    while changed:
        changed = False
        for m in merges:
            if (m.survivor in found) != (m.absorbed in found):
                found |= {m.survivor, m.absorbed}
                changed = True
    return found
