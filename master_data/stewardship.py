"""What stewards' decisions say about the thresholds.

Every review task carries the match probability of its pair; once a steward has said "same person"
or "not the same person", the decisions show where the automatic thresholds stand: if stewards link
nearly everything above some probability, the upper threshold can come down to it (fewer tasks);
if they reject nearly everything below some probability, the lower one can go up to it. The report
only suggests; an engineer changes ``master_data.thresholds`` in hub.yaml.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

BANDS: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class Decided:
    probability: float
    linked: bool


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

    def as_json(self) -> dict[str, object]:
        return {
            "thresholds": {"upper": self.upper, "lower": self.lower},
            "decided": self.decided,
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
    decisions are too few to say.
    """
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
        upper, lower, len(decisions), pending, tuple(bands), suggested_upper, suggested_lower
    )
