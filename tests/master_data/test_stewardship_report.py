"""Stewards' decisions suggest thresholds only when they are enough and agree."""

from __future__ import annotations

from master_data.stewardship import Decided, thresholds_report, why_asked


def test_decisions_are_counted_by_band():
    report = thresholds_report([Decided(0.62, False), Decided(0.91, True), Decided(0.93, False)], 0.95, 0.5)
    bands = {(b.low, b.high): (b.decided, b.linked) for b in report.bands}
    assert bands[(0.6, 0.7)] == (1, 0) and bands[(0.9, 0.95)] == (2, 1)
    assert report.decided == 3 and report.suggested_upper is None and report.suggested_lower is None


def test_agreeing_decisions_suggest_where_the_thresholds_could_move():
    linked = [Decided(0.85 + i * 0.005, True) for i in range(25)]  # stewards link everything >= 0.85
    rejected = [Decided(0.5 + i * 0.005, False) for i in range(25)]  # and reject everything < 0.625
    middle = [Decided(0.7, True), Decided(0.72, False)]
    report = thresholds_report(linked + rejected + middle, 0.95, 0.5, pending=4)
    assert report.suggested_upper == 0.85
    assert report.suggested_lower == 0.7  # everything below 0.7 was rejected
    assert report.pending == 4
    assert report.as_json()["suggested"] == {"upper": 0.85, "lower": 0.7}


def test_disagreement_suggests_nothing():
    mixed = [Decided(0.9, i % 2 == 0) for i in range(40)]
    report = thresholds_report(mixed, 0.95, 0.5)
    assert report.suggested_upper is None and report.suggested_lower is None


def test_rule_driven_decisions_are_counted_apart_from_the_thresholds():
    """Stewards rejecting twins at 0.99 say the conflict rule was right, not that the upper
    threshold is too low: the suggestion stands on the score's band alone."""
    scored = [Decided(0.80 + i * 0.005, True) for i in range(25)]
    twins = [Decided(0.99, False, "conflict:sex") for _ in range(25)]
    homonyms = [Decided(0.9, False, "known_homonyms"), Decided(0.92, True, "known_homonyms")]
    rivals = [Decided(0.97, True, "ambiguous_golden"), Decided(0.98, False, "ambiguous_golden")]
    legacy = [Decided(0.97, True)]  # no rule, yet above upper: made before tasks stored their rule
    report = thresholds_report(scored + twins + homonyms + rivals + legacy, 0.95, 0.5)
    assert report.suggested_upper == 0.80
    assert report.decided == 55 and report.scored == 25
    assert sum(b.decided for b in report.bands) == 25
    assert report.as_json()["by_rule"] == [
        {"rule": "above_upper", "decided": 1, "linked": 1, "not_same": 0},
        {"rule": "ambiguous_golden", "decided": 2, "linked": 1, "not_same": 1},
        {"rule": "conflict:sex", "decided": 25, "linked": 0, "not_same": 25},
        {"rule": "known_homonyms", "decided": 2, "linked": 1, "not_same": 1},
    ]


def test_why_a_steward_is_asked_reads_the_rule_or_the_probability():
    assert "between the two thresholds" in why_asked(None, 0.8, 0.95)
    assert "before tasks stored their rule" in why_asked(None, 0.97, 0.95)
    assert "two golden records" in why_asked("ambiguous_golden", 0.97, 0.95)
    assert "newly states an identifier" in why_asked("identifier_conflict", 0.2, 0.95)
    assert "disagree on birth_date, sex" in why_asked("conflict:birth_date,sex", 0.99, 0.95)
    assert "tie the record to two golden records" in why_asked("conflict:identifiers", 0.4, 0.95)
