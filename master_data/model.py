"""The Fellegi-Sunter model: m and u probabilities per field level, estimated by EM, stored as JSON.

m = P(level | same person), u = P(level | different people), among the candidate pairs that
blocking produces. A level's weight is log2(m/u); a pair's total is the sum over its fields
(missing fields add 0) and its match probability follows from the prior share of matches
``lambda``. EM runs on the distinct comparison patterns with their counts, so a million pairs with
a few thousand distinct patterns cost milliseconds per iteration.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field

import numpy as np

from master_data.arrays import unique_inverse
from master_data.comparison import FIELDS, MISSING, FieldSpec

_FLOOR = 1e-6


class ModelError(ValueError):
    """A stored model that does not fit the fields this version compares."""


@dataclass
class MatchModel:
    """m/u per field level and the prior; ``weights`` are log2(m/u) per field, per level."""

    fields: tuple[FieldSpec, ...]
    m: list[list[float]]
    u: list[list[float]]
    prior: float
    iterations: int = 0
    pairs: int = 0
    notes: dict[str, object] = field(default_factory=dict)
    # First given names the population shows to be unambiguously one sex (folded name -> 'M'/'F'):
    # lets a record without a stated sex still count as identity-grade (see master_data.matcher).
    given_name_sex: dict[str, str] = field(default_factory=dict)
    # Term frequencies (field -> normalised value -> share of records), for the fields whose exact
    # agreement is worth more on a rare value than on a common one (see master_data.matcher).
    term_frequencies: dict[str, dict[str, float]] = field(default_factory=dict)
    # Share assumed for a value absent from the table (seen once in the estimation records).
    term_frequency_floor: dict[str, float] = field(default_factory=dict)
    # Share of same-person pairs among the pairs sharing birth name, first given name and full
    # birth date, estimated from the population (None: not estimated; the key is then weighed as
    # the sum of its fields). See master_data.matcher.Matcher.namesake_cap.
    namesake_key_matches: float | None = None
    # Share of pairs of records from one system among the matches (m) and among random pairs (u):
    # a system seldom holds one person twice (None: not estimated, system not weighed).
    same_system: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.weights = np.full((len(self.fields), max(len(f.levels) for f in self.fields) + 1), 0.0)
        for k, spec in enumerate(self.fields):
            for level in range(len(spec.levels)):
                m = max(self.m[k][level], _FLOOR)
                u = max(self.u[k][level], _FLOOR)
                self.weights[k, level] = math.log2(m / u)
        # Column -1 (MISSING) stays 0: no evidence.
        self.prior_weight = math.log2(self.prior / (1 - self.prior))

    @functools.cached_property
    def term_agreement(self) -> dict[str, float]:
        """Per field with a term-frequency table, the chance that two random records agree on it:
        the sum of the values' shares squared, the values outside the table at the floor share.
        A constant of the model, summed once: the table holds thousands of names and real-time
        matching scores a few pairs at a time (summed at every call, it cost 0.2-0.4 ms of each
        incoming record's scoring)."""
        return {
            name: sum(f * f for f in table.values())
            + self.term_frequency_floor[name] * (1 - sum(table.values()))
            for name, table in self.term_frequencies.items()
            if table
        }

    def system_weights(self) -> tuple[float, float] | None:
        """log2(m/u) of a pair from one system and of a pair from two systems, or None."""
        if self.same_system is None:
            return None
        m, u = (min(max(v, _FLOOR), 1 - _FLOOR) for v in self.same_system)
        return math.log2(m / u), math.log2((1 - m) / (1 - u))

    def weight(self, field_index: int, level: int) -> float:
        return 0.0 if level == MISSING else float(self.weights[field_index, level])

    def totals(self, levels: np.ndarray) -> np.ndarray:
        """Sum of field weights per pair, for an int8 (pairs x fields) level array."""
        total = np.zeros(len(levels))
        for k in range(len(self.fields)):
            column = levels[:, k].astype(np.int64)
            total += np.where(column == MISSING, 0.0, self.weights[k, np.maximum(column, 0)])
        return total

    def probability(self, totals: np.ndarray | float) -> np.ndarray | float:
        """Posterior match probability of pairs with these totals."""
        exponent = np.clip(np.asarray(totals) + self.prior_weight, -60, 60)
        result = 1.0 / (1.0 + np.power(2.0, -exponent))
        return float(result) if np.ndim(result) == 0 else result

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "fields": [{"name": f.name, "levels": list(f.levels)} for f in self.fields],
                "m": self.m,
                "u": self.u,
                "prior": self.prior,
                "iterations": self.iterations,
                "pairs": self.pairs,
                "notes": self.notes,
                "given_name_sex": self.given_name_sex,
                "term_frequencies": self.term_frequencies,
                "term_frequency_floor": self.term_frequency_floor,
                "namesake_key_matches": self.namesake_key_matches,
                "same_system": self.same_system,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> MatchModel:
        data = json.loads(text)
        stored = [(f["name"], tuple(f["levels"])) for f in data["fields"]]
        expected = [(f.name, f.levels) for f in FIELDS]
        if stored != expected:
            raise ModelError(
                f"stored model compares {[n for n, _ in stored]} with other levels than this version's "
                f"{[n for n, _ in expected]}: estimate it again (hub citizens import re-estimates)"
            )
        return cls(
            fields=FIELDS,
            m=data["m"],
            u=data["u"],
            prior=data["prior"],
            iterations=data.get("iterations", 0),
            pairs=data.get("pairs", 0),
            notes=data.get("notes", {}),
            given_name_sex=data.get("given_name_sex", {}),
            term_frequencies=data.get("term_frequencies", {}),
            term_frequency_floor=data.get("term_frequency_floor", {}),
            namesake_key_matches=data.get("namesake_key_matches"),
            same_system=tuple(data["same_system"]) if data.get("same_system") else None,  # type: ignore[arg-type]
        )

    @classmethod
    def default(cls) -> MatchModel:
        """Prior weights from identity-management practice, used before any data was seen."""
        m, u = [], []
        for spec in FIELDS:
            agree = len(spec.levels) - 1
            m_levels = [0.85] + [0.10 / max(agree - 1, 1)] * (agree - 1) + [0.0]
            # Looser levels are commoner among two people, but never most of them: a field of
            # many levels (given names: 7 agreeing ones) must leave 'else' the commonest level
            # (uncapped, 0.002 * 3**6 alone passed 1 and 'else' weighed +15.6 bits).
            u_levels = [min(0.002 * 3**level, DEFAULT_U_CAP) for level in range(agree)] + [0.0]
            m_levels[-1] = 1 - sum(m_levels)
            u_levels[-1] = 1 - sum(u_levels)
            m.append(_normalised(m_levels))
            u.append(_normalised(u_levels))
        return cls(fields=FIELDS, m=m, u=u, prior=0.05, notes={"source": "default"})


# The largest share of non-matching pairs the default model puts at one agreeing level.
DEFAULT_U_CAP = 0.1


def _normalised(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values]


def frequencies(levels: np.ndarray, counts: np.ndarray, fields: tuple[FieldSpec, ...]) -> list[list[float]]:
    """Share of each level per field among the given patterns (Laplace-smoothed; missing ignored)."""
    out = []
    for k, spec in enumerate(fields):
        column = levels[:, k]
        tallies = np.array([counts[column == level].sum() for level in range(len(spec.levels))], float)
        out.append(_normalised(list(tallies + 0.5)))
    return out


def level_patterns(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a (pairs x fields) level array and how many pairs have each: every row
    packed into one int64, four bits per field (levels -1..14)."""
    packed = np.zeros(len(levels), dtype=np.int64)
    for k in range(levels.shape[1]):
        packed = (packed << 4) | (levels[:, k].astype(np.int64) + 1)
    _, first, inverse = unique_inverse(packed)
    return levels[first], np.bincount(inverse).astype(float)


def run_em(
    levels: np.ndarray,
    u_start: list[list[float]],
    *,
    fields: tuple[FieldSpec, ...] = FIELDS,
    m_start: list[list[float]] | None = None,
    prior_start: float = 0.1,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
    fixed_u_fields: frozenset[str] = frozenset(),
) -> MatchModel:
    """Expectation-maximisation of m, u and the prior over the candidate pairs' level patterns.

    ``fixed_u_fields`` keep the u probabilities they start with (estimated from random pairs), for
    fields whose blocking makes agreement among candidate non-matches unrepresentative.
    """
    patterns, counts = level_patterns(levels)
    m = np.array([_pad(v) for v in (m_start or MatchModel.default().m)])
    u = np.array([_pad(v) for v in u_start])
    prior = prior_start
    n_fields = len(fields)
    index = patterns.astype(np.int64)
    present = index != MISSING
    safe = np.maximum(index, 0)
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - kept for the model's record
        log_m = np.where(present, np.log(np.maximum(m[np.arange(n_fields), safe], _FLOOR)), 0.0).sum(1)
        log_u = np.where(present, np.log(np.maximum(u[np.arange(n_fields), safe], _FLOOR)), 0.0).sum(1)
        a = np.log(prior) + log_m
        b = np.log(1 - prior) + log_u
        top = np.maximum(a, b)
        posterior = np.exp(a - top) / (np.exp(a - top) + np.exp(b - top))
        match_w = posterior * counts
        non_w = (1 - posterior) * counts
        new_m = np.zeros_like(m)
        new_u = np.zeros_like(u)
        for k, spec in enumerate(fields):
            for level in range(len(spec.levels)):
                hit = index[:, k] == level
                new_m[k, level] = match_w[hit].sum() + 1e-3
                new_u[k, level] = non_w[hit].sum() + 1e-3
            width = len(spec.levels)
            new_m[k, :width] /= new_m[k, :width].sum()
            new_u[k, :width] /= new_u[k, :width].sum()
            if spec.name in fixed_u_fields:
                new_u[k] = u[k]
        new_prior = float(np.clip(match_w.sum() / counts.sum(), 1e-6, 1 - 1e-6))
        change = max(np.abs(new_m - m).max(), np.abs(new_u - u).max(), abs(new_prior - prior))
        m, u, prior = new_m, new_u, new_prior
        if change < tolerance:
            break
    widths = [len(spec.levels) for spec in fields]
    return MatchModel(
        fields=fields,
        m=[m[k, :w].tolist() for k, w in enumerate(widths)],
        u=[u[k, :w].tolist() for k, w in enumerate(widths)],
        prior=prior,
        iterations=iteration,
        pairs=int(counts.sum()),
    )


def fixed_weights_prior(
    levels: np.ndarray, model: MatchModel, *, start: float = 0.5, iterations: int = 200
) -> float:
    """Share of matches among these pairs, by EM on the prior alone (m and u of ``model`` kept):
    how many of the pairs sharing some traits are the same person, judged by their other traits
    (the shared ones set to MISSING by the caller)."""
    patterns, counts = level_patterns(levels)
    ratio = np.zeros(len(patterns))
    for k in range(len(model.fields)):
        column = patterns[:, k].astype(np.int64)
        present = column != MISSING
        safe = np.maximum(column, 0)
        m = np.maximum(np.asarray(model.m[k])[safe], _FLOOR)
        u = np.maximum(np.asarray(model.u[k])[safe], _FLOOR)
        ratio += np.where(present, np.log(m / u), 0.0)
    share = start
    for _ in range(iterations):
        odds = np.exp(np.clip(ratio + np.log(share / (1 - share)), -700, 700))
        updated = float(np.clip((odds / (1 + odds) * counts).sum() / counts.sum(), 1e-6, 1 - 1e-6))
        if abs(updated - share) < 1e-9:
            return updated
        share = updated
    return share


_WIDTH = max(len(f.levels) for f in FIELDS)


def _pad(values: list[float]) -> list[float]:
    return list(values) + [0.0] * (_WIDTH - len(values))
