"""The matcher: deterministic rules first, then Fellegi-Sunter scoring, two thresholds.

Rules, in order, for a pair:
1. same (system, local id) -> same record;
2. same NIR, valid with its key and consistent with both records' sex and birth date;
3. same full pivot identity (birth name, all given names, full birth date, sex, birth place);
4. otherwise the probability from the model: >= ``upper`` link, >= ``lower`` review, else new.
Default thresholds 0.95 and 0.7 (see master_data.batch for how they were chosen).

A pair where at least one record is identity-grade (it carries a sex: stated, as civil-registry
and INS-qualified records do, or given by a first name the population shows to be one sex's) and
whose strict traits clearly disagree (sex, given names, birth date or birth place at their 'else'
level, the same first name followed by other ones, or given names that cross without one list
holding the other) is a *conflict*: twins, parent and child with the same name, namesakes born
elsewhere. (Both records identity-grade was required at first; one is enough: a school record
without a sex and with a mistyped name does not make its twin's record less careful. Collisions
4.5 -> 4.2 per 10,000 in the town, nothing lost.) Given names are compared with what the
population knows first (:meth:`Matcher.refine`): two established, different first names are
different names, however alike. A conflict is never linked by the score; it goes to review only when
the identity traits alone, household traits (address, phone, e-mail) left out, pass the lower
threshold, and is another person otherwise. In such records a wholly different first name or
birth date is almost never a typing error, while a household shares every other trait, which a
model assuming independent fields cannot see. Looser lists (no sex: address files, FEBRL) are left
to the score, where a replaced first name is a common data-entry error. (Requiring two conflicts
there cost 0.4 to 0.8 point of F1 on FEBRL and saved 3 collisions in 20,000 people.) Batch
clustering also refuses any merge that would put two conflicting records in one golden record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz.distance import JaroWinkler, Levenshtein

from master_data.arrays import unique_inverse
from master_data.blocking import record_keys
from master_data.communes import CommuneTable, default_table
from master_data.comparison import FIELDS, GIVEN_NAMES, MISSING, compare
from master_data.estimation import TF_COLUMNS
from master_data.features import Features, normalise_record
from master_data.model import MatchModel
from master_data.records import Decision, Explanation, FieldComparison, IdentityRecord

# Rule codes of :meth:`Matcher.rules`, in priority order (positive ones link whatever the score).
NO_RULE, SAME_SYSTEM_ID, SAME_NIR, SAME_PIVOT, CONFLICT = 0, 1, 2, 3, -1
RULE_NAMES = {SAME_SYSTEM_ID: "same_system_id", SAME_NIR: "same_nir", SAME_PIVOT: "same_pivot_identity"}
STRICT_TRAITS = ("given_names", "birth_date", "birth_place", "sex")
# Traits a household shares: they cannot tell a mother from her daughter or twins apart.
HOUSEHOLD_TRAITS = ("address", "postal_code", "city", "phone", "email")
# Levels that mean "another person" for a strict trait: its 'else', and for given names also the
# same first name followed by different ones ("Paul Emmanuel" / "Paul Guillaume": namesakes).
CONFLICT_LEVELS = {spec.name: {len(spec.levels) - 1} for spec in FIELDS}
CONFLICT_LEVELS["given_names"].add(GIVEN_NAMES.levels.index("first_same_others_differ"))
_FIELD_INDEX = {spec.name: k for k, spec in enumerate(FIELDS)}
# Levels where a pair agrees on the value that term frequencies weigh, and the largest adjustment
# in bits either way (a value seen once in a million records would otherwise add 11 bits).
TF_LEVELS = {"birth_name": [0], "given_names": [0, 1]}
TF_CLIP = 6.0
# Given-name levels that say "probably the same name, mistyped or heard differently".
_GIVEN = _FIELD_INDEX["given_names"]
_GIVEN_FUZZY = [
    GIVEN_NAMES.levels.index(label) for label in ("jaro_winkler>=0.92", "phonetic", "jaro_winkler>=0.80")
]
_GIVEN_ELSE = len(GIVEN_NAMES.levels) - 1
_GIVEN_OTHER_ORDER = GIVEN_NAMES.levels.index("other_order")
_GIVEN_AGREE = [GIVEN_NAMES.levels.index(label) for label in ("exact", "truncated")]
# A first name the population holds at least ESTABLISHED_COUNT times, and at least ESTABLISHED_RATIO
# times as often as a similar one, is a name of its own, not a typing error of the other
# ("BERNARD" / "BERTRAND", "LAURE" / "CLAIRE"); unless one could be the other mistyped (one edit:
# "EMILIE" / "EMILE") or both spell one name (same sound, at most VARIANT_EDITS edits: "MATHIEU" /
# "MATTHIEU").
ESTABLISHED_COUNT = 5
NESTED_SIMILARITY = 0.80
ESTABLISHED_RATIO = 0.05
VARIANT_EDITS = 2
# Levels that tell two namesakes apart (same birth name, first given name and birth date): the same
# birth place, a shared household trait (address, phone, e-mail), the same national identifier.
_DISTINGUISHING = {
    _FIELD_INDEX["birth_place"]: [0],
    _FIELD_INDEX["address"]: [0, 1],
    _FIELD_INDEX["phone"]: [0],
    _FIELD_INDEX["email"]: [0],
    _FIELD_INDEX["nir"]: [0],
}


class Matcher:
    """Scores pairs with ``model`` and decides with two probability thresholds (``lower`` <= ``upper``)."""

    def __init__(
        self,
        model: MatchModel,
        upper: float = 0.95,
        lower: float = 0.7,
        *,
        communes: CommuneTable | None = None,
        strict_traits: Sequence[str] = STRICT_TRAITS,
    ) -> None:
        if not 0.0 <= lower <= upper <= 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 <= lower <= upper <= 1, got lower={lower} upper={upper}"
            )
        unknown = set(strict_traits) - set(_FIELD_INDEX)
        if unknown:
            raise ValueError(f"unknown strict traits {sorted(unknown)}; fields are {sorted(_FIELD_INDEX)}")
        self.model = model
        self.upper = upper
        self.lower = lower
        self.communes = communes or default_table()
        self.strict = [_FIELD_INDEX[name] for name in strict_traits]
        self.household = [_FIELD_INDEX[name] for name in HOUSEHOLD_TRAITS]

    # ----------------------------------------------------------------------------- building blocks

    def features(self, records: Sequence[IdentityRecord]) -> Features:
        return Features.of(records, self.communes)

    def blocking_keys(self, record: IdentityRecord) -> frozenset[str]:
        """Short strings; two records are candidates when they share one (see master_data.blocking)."""
        return frozenset(record_keys(normalise_record(record, self.communes)))

    def refine(self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Comparison levels corrected by what the population knows: two first given names that are
        each an established name (see ESTABLISHED_COUNT) and not spelling variants of one another
        are different names, whatever their resemblance ('else', not a fuzzy level). Twins are
        often given names that look alike; a typing error makes a name the population hardly
        holds. Returns ``levels`` (changed in place)."""
        table = self.model.term_frequencies.get("given_names")
        if not table or len(levels) == 0:
            return levels
        floor = self.model.term_frequency_floor["given_names"]
        fuzzy = np.flatnonzero(np.isin(levels[:, _GIVEN], _GIVEN_FUZZY))
        if len(fuzzy) == 0:
            return levels
        codes = features.codes["given_first"]
        a, b = codes[i[fuzzy]], codes[j[fuzzy]]
        combined = np.minimum(a, b) * (int(codes.max()) + 1) + np.maximum(a, b)
        _, first, inverse = unique_inverse(combined)
        strings, sounds = features.strings["given_first"], features.strings["given_phon"]
        left, right = i[fuzzy[first]].tolist(), j[fuzzy[first]].tolist()
        distinct = np.zeros(len(first), dtype=bool)
        for k, (x, y) in enumerate(zip(left, right, strict=True)):
            name_x, name_y = strings[x], strings[y]
            count_x = table.get(name_x, floor) / floor
            count_y = table.get(name_y, floor) / floor
            if min(count_x, count_y) < ESTABLISHED_COUNT:
                continue
            if min(count_x, count_y) < ESTABLISHED_RATIO * max(count_x, count_y):
                continue
            edits = Levenshtein.distance(name_x, name_y)
            variant = edits <= 1 or (sounds[x] == sounds[y] and edits <= VARIANT_EDITS)
            distinct[k] = not variant
        changed = fuzzy[distinct[inverse]]
        levels[changed, _GIVEN] = _GIVEN_ELSE
        return levels

    def rules(self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """The deterministic rule of each pair: a positive rule code, CONFLICT, or NO_RULE."""
        c = features.codes
        out = np.full(len(i), NO_RULE, dtype=np.int8)
        if self.strict:
            conflicting = np.zeros((len(i), len(self.strict)), dtype=bool)
            for column, k in enumerate(self.strict):
                conflicting[:, column] = np.isin(levels[:, k], list(CONFLICT_LEVELS[FIELDS[k].name]))
                if k == _GIVEN:
                    conflicting[:, column] |= self._reordered_apart(features, i, j, levels)
            sexed = self.sex_known(features)
            identity_grade = sexed[i] | sexed[j]
            conflicts = conflicting.sum(axis=1)
            out[(conflicts >= 1) & identity_grade] = CONFLICT
        pivot = (
            (c["surname"][i] == c["surname"][j])
            & (c["given_all"][i] == c["given_all"][j])
            & (c["sex"][i] == c["sex"][j])
            & (c["place"][i] == c["place"][j])
            & (features.year[i] == features.year[j])
            & (features.month[i] == features.month[j])
            & (features.day[i] == features.day[j])
            & (c["surname"][i] != 0)
            & (c["given_all"][i] != 0)
            & (c["sex"][i] != 0)
            & (c["place"][i] != 0)
            & (features.year[i] != 0)
            & ~features.placeholder[i]
        )
        out[pivot] = SAME_PIVOT
        out[(c["trusted_nir"][i] == c["trusted_nir"][j]) & (c["trusted_nir"][i] != 0)] = SAME_NIR
        out[c["source"][i] == c["source"][j]] = SAME_SYSTEM_ID
        return out

    @staticmethod
    def _reordered_apart(features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Pairs whose given names cross ('other_order') but whose lists are not one within the
        other: "THIERRY JULES" / "AUGUSTIN THIERRY ZACHARIE" are two people sharing a name (twins
        named after a grandfather), while one person's names reordered or cut short stay nested.
        Nested allows for typing errors (Jaro-Winkler >= 0.80) and for a surname in the list (the
        surname and a given name inverted)."""
        out = np.zeros(len(i), dtype=bool)
        crossed = np.flatnonzero(levels[:, _GIVEN] == _GIVEN_OTHER_ORDER)
        given, surname, used = features.given, features.strings["surname"], features.strings["used"]

        def within(names: tuple[str, ...], others: list[str]) -> bool:
            return all(
                any(
                    name == other or JaroWinkler.similarity(name, other) >= NESTED_SIMILARITY
                    for other in others
                )
                for name in names
            )

        for k, x, y in zip(crossed.tolist(), i[crossed].tolist(), j[crossed].tolist(), strict=True):
            a = [*given[x], surname[x], used[x]]
            b = [*given[y], surname[y], used[y]]
            out[k] = not (within(given[x], b) or within(given[y], a))
        return out

    def sex_known(self, features: Features) -> np.ndarray:
        """Per record: the sex is stated, or the first given name is one the estimated population
        shows to be unambiguously one sex."""
        known = features.codes["sex"] != 0
        table = self.model.given_name_sex
        if table:
            firsts = features.strings["given_first"]
            missing = np.flatnonzero(~known)
            known[missing] = [firsts[k] in table for k in missing.tolist()]
        return known

    def term_frequency(self, features: Features, i: np.ndarray, levels: np.ndarray) -> dict[int, np.ndarray]:
        """Per field with a term-frequency table, the weight added to each pair: log2(u / f) where f
        is the share of records holding the agreed value and u the chance that two random records
        agree on that field (the sum of f squared). Agreeing on "Martin" weighs less than agreeing
        on "Kerbiriou". Applies where the pair agrees exactly on the value (birth name exact; given
        names exact or truncated, on the first given name); 0 elsewhere."""
        out: dict[int, np.ndarray] = {}
        for name, column in TF_COLUMNS.items():
            table = self.model.term_frequencies.get(name)
            if not table:
                continue
            k = _FIELD_INDEX[name]
            agreeing = np.flatnonzero(np.isin(levels[:, k], TF_LEVELS[name]))
            adjust = np.zeros(len(levels))
            if len(agreeing):
                expected = sum(f * f for f in table.values()) + self.model.term_frequency_floor[name] * (
                    1 - sum(table.values())
                )
                records = i[agreeing]
                _, first, inverse = unique_inverse(features.codes[column][records])
                floor = self.model.term_frequency_floor[name]
                values = features.strings[column][records[first]].tolist()
                shares = np.array([table.get(value, floor) for value in values])
                adjust[agreeing] = np.clip(np.log2(expected / shares), -TF_CLIP, TF_CLIP)[inverse]
            out[k] = adjust
        return out

    def score(
        self, features: Features, i: np.ndarray, j: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """(levels, totals, probabilities, rules, term-frequency adjustments) of the pairs."""
        levels = self.refine(features, i, j, compare(features, i, j))
        adjustments = self.term_frequency(features, i, levels)
        totals = self.model.totals(levels) + sum(adjustments.values(), np.zeros(len(levels)))
        rules = self.rules(features, i, j, levels)
        return levels, totals, self.model.probability(totals), rules, adjustments

    def outcomes(
        self,
        probabilities: np.ndarray,
        rules: np.ndarray,
        levels: np.ndarray,
        adjustments: dict[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        """2 = link, 1 = review, 0 = new, per pair, from the thresholds and the rules.

        A conflict is never linked automatically. It goes to review only when the identity traits
        alone (household traits left out: address, phone, e-mail) would pass the lower threshold;
        otherwise it is another person (a mother and her daughter at one address).
        """
        out = np.where(probabilities >= self.upper, 2, np.where(probabilities >= self.lower, 1, 0))
        conflict = np.flatnonzero(rules == CONFLICT)
        if len(conflict):
            identity = levels[conflict].copy()
            identity[:, self.household] = MISSING
            identity_totals = self.model.totals(identity)
            for adjust in (adjustments or {}).values():
                identity_totals += adjust[conflict]
            alone = self.model.probability(identity_totals)
            out[conflict] = np.where((out[conflict] >= 1) & (alone >= self.lower), 1, 0)
        return np.where(rules > 0, 2, out).astype(np.int8)

    # ----------------------------------------------------------------------------------- one pair

    def _explanation(
        self, levels: np.ndarray, total: float, probability: float, rule: int, adjust: dict[int, float]
    ) -> Explanation:
        comparisons = []
        for k, spec in enumerate(FIELDS):
            level = int(levels[k])
            label = "missing" if level == MISSING else spec.levels[level]
            weight = self.model.weight(k, level) + adjust.get(k, 0.0)
            comparisons.append(FieldComparison(spec.name, label, round(weight, 4)))
        if rule > 0:
            rule_name: str | None = RULE_NAMES[rule]
        elif rule == CONFLICT:
            names = [FIELDS[k].name for k in self.strict if int(levels[k]) in CONFLICT_LEVELS[FIELDS[k].name]]
            rule_name = "conflict:" + ",".join(names)
        else:
            rule_name = None
        return Explanation(rule_name, tuple(comparisons), round(float(total), 4), float(probability))

    def explain(self, a: IdentityRecord, b: IdentityRecord) -> Explanation:
        """Each field's comparison level and weight, the total and the probability (symmetric)."""
        features = self.features([a, b])
        i, j = np.array([0]), np.array([1])
        levels, totals, probabilities, rules, adjustments = self.score(features, i, j)
        adjust = {k: float(a[0]) for k, a in adjustments.items()}
        return self._explanation(levels[0], totals[0], probabilities[0], int(rules[0]), adjust)

    def decide(
        self,
        record: IdentityRecord,
        candidates: Sequence[IdentityRecord],
        groups: Sequence[str] | None = None,
    ) -> Decision:
        """Link to the best candidate, send it to review, or create a new golden record.

        ``groups`` (optional, parallel to ``candidates``) names the golden record each candidate
        already belongs to. With it, several candidates of one golden record passing the threshold
        are one answer, not an ambiguity, and a golden record holding any record in conflict with
        the incoming one (a twin, a namesake born elsewhere) cannot take it automatically. Without
        it every candidate is its own group.

        A positive deterministic rule links at once. Otherwise the best-scored group decides; when
        two groups both pass the upper threshold, the choice goes to review (an agent must say
        which person it is).
        """
        if not candidates:
            return Decision("new", None, None)
        if groups is not None and len(groups) != len(candidates):
            raise ValueError(f"{len(groups)} groups for {len(candidates)} candidates")
        labels = list(groups) if groups is not None else [str(k) for k in range(len(candidates))]
        features = self.features([record, *candidates])
        j = np.arange(1, len(candidates) + 1)
        i = np.zeros(len(candidates), dtype=np.int64)
        levels, totals, probabilities, rules, adjustments = self.score(features, i, j)

        def explained(k: int) -> Explanation:
            adjust = {field: float(a[k]) for field, a in adjustments.items()}
            return self._explanation(levels[k], totals[k], probabilities[k], int(rules[k]), adjust)

        positive = np.flatnonzero(rules > 0)
        if len(positive):
            best = int(positive[np.argmin(rules[positive])])
            return Decision("link", candidates[best], explained(best))
        outcomes = self.outcomes(probabilities, rules, levels, adjustments)
        conflicted = {labels[k] for k in np.flatnonzero(rules == CONFLICT).tolist()}
        for k in range(len(candidates)):
            if labels[k] in conflicted and outcomes[k] == 2:
                outcomes[k] = 1
        order = np.lexsort((-totals, -outcomes)).tolist()
        best = order[0]
        if outcomes[best] == 0:
            return Decision("new", None, explained(best))
        rivals = [k for k in order[1:] if outcomes[k] == 2 and labels[k] != labels[best]]
        if outcomes[best] == 2 and not rivals:
            return Decision("link", candidates[best], explained(best))
        return Decision("review", candidates[best], explained(best))
