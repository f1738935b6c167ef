"""What stewards' decisions say about the thresholds.

Every review task carries the match probability of its pair; once a steward has said "same person"
or "not the same person", the decisions show where the automatic thresholds stand: if stewards link
nearly everything above some probability, the upper threshold can come down to it (fewer tasks);
if they reject nearly everything below some probability, the lower one can go up to it. The report
only suggests; an engineer changes ``master_data.thresholds`` in hub.yaml.

Only tasks the score sent to review (its probability between the thresholds, no rule) say where the
thresholds stand. A task a rule made carries a probability that is often above ``upper``: stewards
rejecting twins at 0.99 say the rule was right, not that the upper threshold is too low. Those
decisions are counted apart, by the rule the task stores (:data:`WHY`): a conflict such as twins,
known homonyms, identifiers naming two golden records, a record above ``upper`` against two golden
records (``ambiguous_golden``) or against one holding a record in conflict with it
(``conflict_in_golden``), a known record newly stating another golden record's identifier
(``identifier_conflict``). A task without a rule at or above ``upper`` can only be one made before
tasks stored their rule (migration 0009 could not tell which); it is counted under
:data:`ABOVE_UPPER`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from master_data.matcher import (
    AMBIGUOUS_RULE,
    GOLDEN_CONFLICT_RULE,
    HOMONYM_RULE,
    IDENTIFIER_CONFLICT_RULE,
    IDENTIFIER_RULE,
    IDENTIFIERS_CONFLICT,
)

BANDS: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# The rule a task without one is counted under when its probability is at or above ``upper``.
ABOVE_UPPER = "above_upper"
# Why a steward is asked, per rule a review task stores (what the queue shows beside the rule).
WHY: dict[str | None, str] = {
    None: "the match probability is between the two thresholds: the score alone cannot decide",
    AMBIGUOUS_RULE: "the record scores above the link threshold against two golden records: which "
    "person is it?",
    GOLDEN_CONFLICT_RULE: "the record scores above the link threshold, but this golden record also "
    "holds a record in conflict with it (a twin, a namesake born elsewhere?)",
    IDENTIFIER_CONFLICT_RULE: "a record already known newly states an identifier that this other "
    "golden record holds or states: are the two golden records one person?",
    IDENTIFIERS_CONFLICT: "system identifiers tie the record to two golden records (identifiers it "
    "states, or records of both stating its own): which person is it?",
    IDENTIFIER_RULE: "the record states an identifier of this golden record",
    HOMONYM_RULE: "several people share this birth name, first given name and birth date, and no "
    "other trait tells these two apart",
    ABOVE_UPPER: "the record scores above the link threshold, yet was sent to review (a task made "
    "before tasks stored their rule: two golden records matched, or one held a conflicting record)",
}
_CONFLICT = "conflict:"


def why_asked(rule: str | None, probability: float, upper: float) -> str:
    """Why a review task asks a steward, in words: from its rule, else from its probability (at
    or above ``upper`` without a rule: a task made before tasks stored their rule)."""
    if rule is None and probability >= upper:
        rule = ABOVE_UPPER
    if rule is not None and rule.startswith(_CONFLICT) and rule not in WHY:
        traits = rule.removeprefix(_CONFLICT).replace(",", ", ")
        return f"the records disagree on {traits}, which usually means two people (twins, parent and child?)"
    return WHY.get(rule, f"rule {rule}")


@dataclass(frozen=True)
class Decided:
    """One steward's decision; ``rule`` is the rule that made the task (None: the score's band)."""

    probability: float
    linked: bool
    rule: str | None = None


@dataclass(frozen=True)
class RuleDecisions:
    """Decisions on tasks one rule made: counted apart from the thresholds."""

    rule: str
    decided: int
    linked: int


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    decided: int
    linked: int

    @property
    def linked_share(self) -> float | None:
        return self.linked / self.decided if self.decided else None


@dataclass(frozen=True)
class ThresholdsReport:
    upper: float
    lower: float
    decided: int
    pending: int
    bands: tuple[Band, ...]
    suggested_upper: float | None
    suggested_lower: float | None
    by_rule: tuple[RuleDecisions, ...] = ()

    @property
    def scored(self) -> int:
        """Decisions on the score's review band (those the bands and suggestions use)."""
        return sum(b.decided for b in self.bands)

    def as_json(self) -> dict[str, object]:
        return {
            "thresholds": {"upper": self.upper, "lower": self.lower},
            "decided": self.decided,
            "scored": self.scored,
            "pending": self.pending,
            "bands": [
                {
                    "from": b.low,
                    "to": b.high,
                    "decided": b.decided,
                    "linked": b.linked,
                    "not_same": b.decided - b.linked,
                    "linked_share": b.linked_share,
                }
                for b in self.bands
            ],
            "suggested": {"upper": self.suggested_upper, "lower": self.suggested_lower},
            "by_rule": [
                {"rule": r.rule, "decided": r.decided, "linked": r.linked, "not_same": r.decided - r.linked}
                for r in self.by_rule
            ],
        }


def thresholds_report(
    decisions: Sequence[Decided],
    upper: float,
    lower: float,
    *,
    pending: int = 0,
    agreement: float = 0.99,
    min_support: int = 20,
) -> ThresholdsReport:
    """Decisions by probability band, and the thresholds they support.

    ``suggested_upper``: the lowest probability at and above which stewards linked at least
    ``agreement`` of at least ``min_support`` decisions; ``suggested_lower``: the highest one below
    which they rejected at least ``agreement`` of at least ``min_support``. None when the
    decisions are too few to say. Both use only the decisions without a rule; the others are
    counted by rule in ``by_rule``.
    """
    ruled: dict[str, list[Decided]] = {}
    scored = []
    for d in decisions:
        rule = d.rule or (ABOVE_UPPER if d.probability >= upper else None)
        if rule is None:
            scored.append(d)
        else:
            ruled.setdefault(rule, []).append(d)
    by_rule = tuple(
        RuleDecisions(rule, len(inside), sum(d.linked for d in inside))
        for rule, inside in sorted(ruled.items())
    )
    total = len(decisions)
    decisions = scored
    bands = []
    for low, high in itertools.pairwise(BANDS):
        inside = [
            d for d in decisions if low <= d.probability < high or (high == 1.0 and d.probability == 1.0)
        ]
        bands.append(Band(low, high, len(inside), sum(d.linked for d in inside)))
    ordered = sorted(decisions, key=lambda d: d.probability)
    suggested_upper = None
    linked = 0
    for count, decision in enumerate(reversed(ordered), start=1):
        linked += decision.linked
        if count >= min_support and linked / count >= agreement:
            suggested_upper = decision.probability
    suggested_lower = None
    rejected = 0
    for count, decision in enumerate(ordered, start=1):
        rejected += not decision.linked
        following = ordered[count].probability if count < len(ordered) else None
        if count >= min_support and rejected / count >= agreement and following != decision.probability:
            suggested_lower = following if following is not None else decision.probability
    return ThresholdsReport(
        upper, lower, total, pending, tuple(bands), suggested_upper, suggested_lower, by_rule
    )
