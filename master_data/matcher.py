"""The matcher: deterministic rules first, then Fellegi-Sunter scoring, two thresholds.

Before any rule, **system identifiers** (:meth:`IdentityRecord.identifies`): a record that states
another system's identifier of the person (the school's family record holding the finance
system's payer id) is that system's record's person, and two records stating the same identifier
are one person. The identified golden record takes the record (rule ``same_identifier``) unless a
hard conflict forbids it: a strict trait (sex, given names, birth date, birth place) at its
conflict level with any record of that golden record, whether or not a sex is known (a family
record may state a parent's payer id for a child: another birth date; twins state the same one:
other given names), or identifiers naming two golden records. Then the pair goes to review.

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

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from rapidfuzz.distance import JaroWinkler, Levenshtein

from master_data.arrays import unique_inverse
from master_data.blocking import namesake_keys, record_keys
from master_data.communes import CommuneTable, default_table
from master_data.comparison import FIELDS, GIVEN_NAMES, MISSING, compare
from master_data.estimation import TF_COLUMNS
from master_data.features import Features, Normalised, normalise_columns, normalise_record
from master_data.model import MatchModel
from master_data.phonetics import phonetic
from master_data.records import Decision, Explanation, FieldComparison, IdentityRecord

# Rule codes of :meth:`Matcher.rules`, in priority order (positive ones link whatever the score).
NO_RULE, SAME_SYSTEM_ID, SAME_NIR, SAME_PIVOT, CONFLICT = 0, 1, 2, 3, -1
# The batch's code of a pair linked by a system identifier (:meth:`Matcher.identified`). Real time
# decides identifiers before every other rule (:meth:`Matcher.decide`); a batch ranks them first
# too (:data:`RULE_PRIORITY`). Not in RULE_NAMES: that rule is checked against the golden record.
SAME_IDENTIFIER = 4
# At or below this weight of "both records from one system", two records of one system under one
# identity key are taken for two people (Matcher.known_homonyms).
SYSTEM_HOMONYM_WEIGHT = -2.0
# Key of the source-system weight in :meth:`Matcher.adjustments` (after the fields' indices).
SYSTEM = len(FIELDS)
# Explanation rule of a pair sent to review because its identity has known homonyms.
HOMONYM_RULE = "known_homonyms"
RULE_NAMES = {SAME_SYSTEM_ID: "same_system_id", SAME_NIR: "same_nir", SAME_PIVOT: "same_pivot_identity"}
# Explanation rule of a link by a stated system identifier, and of identifiers naming two golden records.
IDENTIFIER_RULE = "same_identifier"
IDENTIFIERS_CONFLICT = "conflict:identifiers"
# Positive rule codes, strongest first, and the name a cross-reference records for each.
RULE_PRIORITY = (SAME_IDENTIFIER, SAME_SYSTEM_ID, SAME_NIR, SAME_PIVOT)
LINK_RULE_NAMES = {**RULE_NAMES, SAME_IDENTIFIER: IDENTIFIER_RULE}
# Rules of a review that the pair's score alone would have linked (probability >= upper): the record
# passed ``upper`` against two golden records (which person is it?), or against a golden record
# that also holds a record in conflict with it (a twin, a namesake born elsewhere). And, on the
# store's side, a known record that newly states an identifier another golden record holds or
# states: known records are not moved, so a steward says whether the two golden records are one.
AMBIGUOUS_RULE = "ambiguous_golden"
GOLDEN_CONFLICT_RULE = "conflict_in_golden"
IDENTIFIER_CONFLICT_RULE = "identifier_conflict"
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
_GIVEN = _FIELD_INDEX["given_names"]
_DATE = _FIELD_INDEX["birth_date"]
_SEX = _FIELD_INDEX["sex"]
# The fields of the identity key (Matcher.namesake_cap).
_KEY_FIELDS = (_FIELD_INDEX["birth_name"], _GIVEN, _DATE)
# Given-name levels that say "probably the same name, mistyped or heard differently".
_GIVEN_FUZZY = [
    GIVEN_NAMES.levels.index(label) for label in ("jaro_winkler>=0.92", "phonetic", "jaro_winkler>=0.80")
]
_GIVEN_ELSE = len(GIVEN_NAMES.levels) - 1
_GIVEN_OTHER_ORDER = GIVEN_NAMES.levels.index("other_order")
_GIVEN_TRUNCATED = GIVEN_NAMES.levels.index("truncated")
_GIVEN_OTHERS_DIFFER = GIVEN_NAMES.levels.index("first_same_others_differ")
# A first name the population holds at least ESTABLISHED_COUNT times, and at least ESTABLISHED_RATIO
# times as often as a similar one, is a name of its own, not a typing error of the other
# ("BERNARD" / "BERTRAND", "LAURE" / "CLAIRE"); unless one could be the other mistyped (one edit:
# "EMILIE" / "EMILE") or both spell one name (same sound, at most VARIANT_EDITS edits: "MATHIEU" /
# "MATTHIEU").
ESTABLISHED_COUNT = 5
ESTABLISHED_RATIO = 0.05
VARIANT_EDITS = 2
# Two given names alike enough to be one mistyped, when checking that two lists nest.
NESTED_SIMILARITY = 0.80
# Share of the identity key's weight above its ceiling that still counts (Matcher.namesake_cap).
KEY_EXCESS_SHARE = 0.1
# Levels that tell two namesakes apart (same birth name, first given name and birth date): the same
# birth place, a shared household trait (address, phone, e-mail), the same national identifier.
_DISTINGUISHING = {
    _FIELD_INDEX["birth_place"]: [0],
    _FIELD_INDEX["address"]: [0, 1, 2, 3],
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
        self._distinct_names: dict[tuple[str, str], bool] = {}

    # ----------------------------------------------------------------------------- building blocks

    def features(self, records: Sequence[IdentityRecord]) -> Features:
        return Features.of(records, self.communes)

    def blocking_keys(self, record: IdentityRecord) -> frozenset[str]:
        """Short strings; two records are candidates when they share one (see master_data.blocking)."""
        return frozenset(record_keys(normalise_record(record, self.communes)))

    def blocking_keys_of(self, records: Sequence[IdentityRecord]) -> list[frozenset[str]]:
        """:meth:`blocking_keys` of many records, normalised together (each distinct value once:
        a batch's thousands of records in a fraction of the time, one at a time)."""
        columns = normalise_columns(records, self.communes)
        fields = [columns[name] for name in Normalised._fields]
        return [frozenset(record_keys(Normalised(*(f[k] for f in fields)))) for k in range(len(records))]

    def refine(self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Comparison levels corrected by what the population knows: two first given names that are
        each an established name (see ESTABLISHED_COUNT) and not spelling variants of one another
        are different names, whatever their resemblance ('else', not a fuzzy level), and so are
        two whose shorter starts the longer with no established name left over ("LUC" / "LUCAS",
        unlike "JEAN" / "JEANPIERRE"). Twins are often given names that look alike; a typing
        error makes a name the population hardly holds. Returns ``levels`` (changed in place)."""
        if not self.model.term_frequencies.get("given_names") or len(levels) == 0:
            return levels
        codes = features.codes["given_first"]
        # A first name that starts another ("LUC" / "LUCAS") was taken for a compound name cut
        # short ("JEAN" / "JEANPIERRE"); two established names with no name left over are two.
        cut = (levels[:, _GIVEN] == _GIVEN_TRUNCATED) & (codes[i] != codes[j])
        fuzzy = np.flatnonzero(np.isin(levels[:, _GIVEN], _GIVEN_FUZZY) | cut)
        if len(fuzzy) == 0:
            return levels
        a, b = codes[i[fuzzy]], codes[j[fuzzy]]
        combined = np.minimum(a, b) * (int(codes.max()) + 1) + np.maximum(a, b)
        _, first, inverse = unique_inverse(combined)
        strings = features.strings["given_first"]
        left, right = i[fuzzy[first]].tolist(), j[fuzzy[first]].tolist()
        pairs = zip(left, right, strict=True)
        distinct = np.array([self._distinct(strings[x], strings[y]) for x, y in pairs], dtype=bool)
        prefixed = np.flatnonzero(distinct & cut[fuzzy[first]])
        for k in prefixed.tolist():
            x, y = sorted((strings[left[k]], strings[right[k]]), key=len)
            distinct[k] = not self._established(y[len(x) :])
        changed = fuzzy[distinct[inverse]]
        levels[changed, _GIVEN] = _GIVEN_ELSE
        return levels

    def _established(self, name: str) -> bool:
        """A first name the population holds at least ESTABLISHED_COUNT times."""
        table = self.model.term_frequencies.get("given_names") or {}
        floor = self.model.term_frequency_floor.get("given_names")
        return bool(floor) and table.get(name, 0.0) / floor >= ESTABLISHED_COUNT

    def _distinct(self, x: str, y: str) -> bool:
        """Two different first names, each established in the population (see ESTABLISHED_COUNT),
        that no typing error or spelling variant turns into one another."""
        table = self.model.term_frequencies.get("given_names")
        if not table or x == y:
            return False
        known = self._distinct_names.get((x, y))
        if known is not None:
            return known
        floor = self.model.term_frequency_floor["given_names"]
        count_x, count_y = table.get(x, floor) / floor, table.get(y, floor) / floor
        if min(count_x, count_y) < max(ESTABLISHED_COUNT, ESTABLISHED_RATIO * max(count_x, count_y)):
            return False
        edits = Levenshtein.distance(x, y)
        distinct = not (edits <= 1 or (phonetic(x) == phonetic(y) and edits <= VARIANT_EDITS))
        self._distinct_names[(x, y)] = distinct
        return distinct

    def _alike(self, x: str, y: str) -> bool:
        """The same name, or one that may be it mistyped (Jaro-Winkler >= NESTED_SIMILARITY)."""
        if x == y:
            return True
        return JaroWinkler.similarity(x, y) >= NESTED_SIMILARITY and not self._distinct(x, y)

    def _given_apart(self, features: Features, i: np.ndarray, j: np.ndarray, check: np.ndarray) -> np.ndarray:
        """Among the pairs ``check``, those whose given-name lists are not one within the other:
        "THIERRY JULES" / "AUGUSTIN THIERRY ZACHARIE", "PAUL EMMANUEL" / "PAUL GUILLAUME" are two
        people, while one person's names reordered, cut short or mistyped stay nested ("CHARLES
        HUGUES" / "CHARLES HUNUES", "LUC" / "LC"). The surnames count as names (a surname and a
        given name inverted)."""
        out = np.zeros(len(i), dtype=bool)
        given, surname, used = features.given, features.strings["surname"], features.strings["used"]
        index = np.flatnonzero(check)
        for k, x, y in zip(index.tolist(), i[index].tolist(), j[index].tolist(), strict=True):
            a = [*given[x], surname[x], used[x]]
            b = [*given[y], surname[y], used[y]]
            out[k] = not (self._within(given[x], b) or self._within(given[y], a))
        return out

    def _within(self, names: Sequence[str], others: Sequence[str]) -> bool:
        """Every one of ``names`` is :meth:`_alike` one of ``others`` (empty ones, a missing surname,
        match nothing)."""
        return all(any(self._alike(name, other) for other in others if other) for name in names)

    def rules(self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """The deterministic rule of each pair: a positive rule code, CONFLICT, or NO_RULE."""
        c = features.codes
        out = np.full(len(i), NO_RULE, dtype=np.int8)
        if self.strict:
            conflicting = self.strict_conflicts(features, i, j, levels)
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

    def strict_conflicts(
        self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray
    ) -> np.ndarray:
        """Per pair and strict trait (columns in ``strict_traits`` order): the trait says "another
        person" (see the module docstring), whatever the records' sex."""
        conflicting = np.zeros((len(i), len(self.strict)), dtype=bool)
        for column, k in enumerate(self.strict):
            if k == _GIVEN:
                conflicting[:, column] = self._given_conflicts(features, i, j, levels)
            else:
                conflicting[:, column] = np.isin(levels[:, k], list(CONFLICT_LEVELS[FIELDS[k].name]))
        return conflicting

    @staticmethod
    def identified(features: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Per pair: the two records name one person by a system identifier (one states the
        other's own (system, local id), or both state the same one), as
        :meth:`IdentityRecord.identifies` says for one pair. Only pairs where a record states
        something are looked at (usually few)."""
        out = np.zeros(len(i), dtype=bool)
        stated = features.stated
        if not any(stated):
            return out
        states = np.fromiter((bool(s) for s in stated), dtype=bool, count=features.n)
        source = features.strings["source"]
        check = np.flatnonzero(states[i] | states[j])
        for k, x, y in zip(check.tolist(), i[check].tolist(), j[check].tolist(), strict=True):
            mine, theirs = stated[x], stated[y]
            out[k] = source[y] in mine or source[x] in theirs or not set(mine).isdisjoint(theirs)
        return out

    def hard_conflicts(self, a: IdentityRecord, b: IdentityRecord) -> list[str]:
        """The strict traits on which ``a`` and ``b`` are two people: what forbids a link by a
        system identifier (a stated identifier is a claim, not proof against the birth identity)."""
        features = self.features([a, b])
        i, j = np.array([0]), np.array([1])
        levels = self.refine(features, i, j, compare(features, i, j))
        row = self.strict_conflicts(features, i, j, levels)[0]
        return [FIELDS[k].name for column, k in enumerate(self.strict) if row[column]]

    def _given_conflicts(
        self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray
    ) -> np.ndarray:
        """Given names that say "another person": at 'else', the same first name followed by other
        ones, or crossed ('other_order'), when the lists are not one within the other
        (:meth:`_given_apart`). The nesting is checked where it matters, on pairs whose birth
        dates agree in some way (a household's members differ by their dates anyway)."""
        given = levels[:, _GIVEN]
        crossed = np.isin(given, [_GIVEN_OTHERS_DIFFER, _GIVEN_OTHER_ORDER])
        different = given == _GIVEN_ELSE
        # 'else' is checked where a typo or a swap may hide one person: same birth date in some way,
        # a first name starting like one of the other's names.
        check = different & (levels[:, _DATE] != len(FIELDS[_DATE].levels) - 1)
        check &= self._may_nest(features, i, j)
        apart = self._given_apart(features, i, j, crossed | check)
        # A first name alike but mistyped, followed by other names on both sides, is the same
        # first name followed by other names: two people when the later names do not nest
        # ("ALICE CHANTAL" / "ALCIE JULIETTE", not "ZOE MADELEINE" / "ZE MADELEINE").
        several = (features.given_count[i] >= 2) & (features.given_count[j] >= 2)
        later = self._later_apart(features, i, j, np.isin(given, _GIVEN_FUZZY) & several)
        return (crossed & apart) | (different & (apart | ~check)) | later

    def _later_apart(self, features: Features, i: np.ndarray, j: np.ndarray, check: np.ndarray) -> np.ndarray:
        """Among the pairs ``check``, those whose given names after the first are not one list
        within the other (allowing typos, see :meth:`_alike`)."""
        out = np.zeros(len(i), dtype=bool)
        given = features.given
        index = np.flatnonzero(check)
        for k, x, y in zip(index.tolist(), i[index].tolist(), j[index].tolist(), strict=True):
            a, b = given[x][1:], given[y][1:]
            out[k] = not (self._within(a, b) or self._within(b, a))
        return out

    @staticmethod
    def _may_nest(features: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """A cheap necessary condition for :meth:`_given_apart` to find the lists nested: one
        record's first given name starts like one of the other's names (given or surnames). Two
        strangers born the same day (most of the pairs at given names 'else') fail it."""
        initials = features.initials
        columns = ("given_first", "given_second", "given_third", "surname", "used")
        out = np.zeros(len(i), dtype=bool)
        for a, b in ((i, j), (j, i)):
            first = initials["given_first"][a]
            for column in columns:
                out |= (first != 0) & (first == initials[column][b])
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

    def term_frequency(
        self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Per field with a term-frequency table, the weight added to each pair: log2(u / f) where f
        is the share of records holding the agreed value and u the chance that two random records
        agree on that field (the sum of f squared). Agreeing on "Martin" weighs less than agreeing
        on "Kerbiriou". Applies where the pair agrees exactly on the value (birth name exact; given
        names exact or truncated, on the first given name); 0 elsewhere.

        The two records may agree on two spellings ("JEAN" truncated from "JEANPIERRE", a name
        with and without its particle): f is the commoner of the two, so the weight, like the
        score, does not depend on which record comes first."""
        out: dict[int, np.ndarray] = {}
        for name, column in TF_COLUMNS.items():
            table = self.model.term_frequencies.get(name)
            if not table:
                continue
            k = _FIELD_INDEX[name]
            agreeing = np.flatnonzero(np.isin(levels[:, k], TF_LEVELS[name]))
            adjust = np.zeros(len(levels))
            if len(agreeing):
                expected = self.model.term_agreement[name]
                floor = self.model.term_frequency_floor[name]
                shares = np.maximum(
                    _shares(features, column, i[agreeing], table, floor),
                    _shares(features, column, j[agreeing], table, floor),
                )
                adjust[agreeing] = np.clip(np.log2(expected / shares), -TF_CLIP, TF_CLIP)
            out[k] = adjust
        return out

    def namesake_cap(
        self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray
    ) -> np.ndarray | None:
        """The weight removed from pairs for what birth name, given names and birth date say
        together. Summed as if independent, exact agreement on the three makes ~30 bits, while the
        population says how often two records sharing them (the identity key: birth name, first
        given name, full birth date) are two people: ``model.namesake_key_matches``, estimated by
        master_data.estimation. The key's own log-odds are the ``ceiling`` of the three fields'
        sum, so that the other traits decide (a different address, a missing birth place); what
        a pair's sum has above it counts for KEY_EXCESS_SHARE only, so that a closer agreement
        still weighs more than a looser one (one name cut short against names reordered). A
        shared second given name is evidence beyond the key: such pairs keep their weights. None
        when the model has no estimate."""
        share = self.model.namesake_key_matches
        if share is None or len(i) == 0:
            return None
        share = min(max(share, 1e-6), 1 - 1e-9)
        ceiling = float(np.log2(share / (1 - share)) - self.model.prior_weight)
        key_sum = np.zeros(len(i))
        for k in _KEY_FIELDS:
            key_sum += np.where(
                levels[:, k] == MISSING, 0.0, self.model.weights[k, np.maximum(levels[:, k], 0)]
            )
        out = np.minimum(0.0, (ceiling - key_sum) * (1 - KEY_EXCESS_SHARE))
        second = features.codes["given_second"]
        out[(second[i] == second[j]) & (second[i] != 0)] = 0.0
        return out

    def adjustments(
        self, features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Weights added to the pairs' field weights, per field: term frequencies on names, the
        identity key's cap (:meth:`namesake_cap`, shown on the birth date), the sex's weight taken
        back when the first names agree, and under the key
        ``SYSTEM`` the weight of both records coming from one system or from two (a system seldom
        holds one person twice: two of its records under one name are more often two people)."""
        out = self.term_frequency(features, i, j, levels)
        cap = self.namesake_cap(features, i, j, levels)
        if cap is not None:
            out[_DATE] = out[_DATE] + cap if _DATE in out else cap
        # The same first name implies the same sex ("MARIE", "JEAN"): agreeing on both is one piece
        # of evidence, not two (namesakes share both).
        first = features.codes["given_first"]
        implied = (first[i] == first[j]) & (first[i] != 0) & (levels[:, _SEX] == 0)
        if implied.any():
            out[_SEX] = np.where(implied, -self.model.weights[_SEX, 0], 0.0)
        weights = self.model.system_weights()
        if weights is not None:
            systems = features.codes["system"]
            out[SYSTEM] = np.where(systems[i] == systems[j], weights[0], weights[1])
        return out

    def score(
        self, features: Features, i: np.ndarray, j: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """(levels, totals, probabilities, rules, term-frequency adjustments) of the pairs."""
        levels = self.refine(features, i, j, compare(features, i, j))
        adjustments = self.adjustments(features, i, j, levels)
        totals = self.model.totals(levels) + sum(adjustments.values(), np.zeros(len(levels)))
        rules = self.rules(features, i, j, levels)
        return levels, totals, self.model.probability(totals), rules, adjustments

    def outcomes(
        self,
        probabilities: np.ndarray,
        rules: np.ndarray,
        levels: np.ndarray,
        adjustments: dict[int, np.ndarray] | None = None,
        homonyms: np.ndarray | None = None,
    ) -> np.ndarray:
        """2 = link, 1 = review, 0 = new, per pair, from the thresholds and the rules.

        A conflict is never linked automatically. It goes to review only when the identity traits
        alone (household traits left out: address, phone, e-mail) would pass the lower threshold;
        otherwise it is another person (a mother and her daughter at one address). A pair of
        ``homonyms`` (:meth:`unconfirmed_homonyms`) goes to review instead of being linked.
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
        if homonyms is not None:
            out[homonyms & (out == 2)] = 1
        return np.where(rules > 0, 2, out).astype(np.int8)

    # ----------------------------------------------------------------------------------- homonyms

    def known_homonyms(
        self, features: Features, i: np.ndarray, j: np.ndarray, rules: np.ndarray
    ) -> np.ndarray:
        """The identity keys (:func:`~master_data.blocking.namesake_keys`) the population is known
        to hold two people under: shared by two records in conflict, or by two records of one
        system when the model shows that systems seldom hold one person twice (a pair from one
        system weighs SYSTEM_HOMONYM_WEIGHT or less: not so in a single source's deduplication)."""
        key = namesake_keys(features)
        evidence = rules == CONFLICT
        weights = self.model.system_weights()
        if weights is not None and weights[0] <= SYSTEM_HOMONYM_WEIGHT:
            systems = features.codes["system"]
            evidence |= (systems[i] == systems[j]) & (rules != SAME_SYSTEM_ID)
        a, b = i[evidence], j[evidence]
        return np.unique(key[a][(key[a] == key[b]) & (key[a] != 0)])

    @staticmethod
    def distinguishing(features: Features, i: np.ndarray, j: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Pairs agreeing on a trait that tells namesakes apart: the same second given name, birth
        place, address (even mistyped, at the same number), phone, e-mail or national identifier."""
        second = features.codes["given_second"]
        out = (second[i] == second[j]) & (second[i] != 0)
        for k, agreeing in _DISTINGUISHING.items():
            out |= np.isin(levels[:, k], agreeing)
        return out

    def unconfirmed_homonyms(
        self,
        features: Features,
        i: np.ndarray,
        j: np.ndarray,
        levels: np.ndarray,
        known: np.ndarray,
    ) -> np.ndarray:
        """Pairs sharing a ``known`` homonym key (:meth:`known_homonyms`) with no distinguishing
        trait (:meth:`distinguishing`): when the population holds two people under this birth
        name, first given name and birth date, agreeing on them proves nothing, and the link is
        checked by a person (identitovigilance practice), not made by the score."""
        key = namesake_keys(features)
        shared = (key[i] == key[j]) & (key[i] != 0) & np.isin(key[i], known)
        return shared & ~self.distinguishing(features, i, j, levels)

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
        weights = self.model.system_weights()
        if weights is not None and SYSTEM in adjust:
            same = adjust[SYSTEM] == weights[0]
            comparisons.append(
                FieldComparison("system", "exact" if same else "else", round(adjust[SYSTEM], 4))
            )
        if rule > 0:
            rule_name: str | None = RULE_NAMES[rule]
        elif rule == CONFLICT:
            names = [
                FIELDS[k].name
                for k in self.strict
                if int(levels[k]) in CONFLICT_LEVELS[FIELDS[k].name]
                or (k == _GIVEN and int(levels[k]) == _GIVEN_OTHER_ORDER)
            ]
            rule_name = "conflict:" + ",".join(names or ["given_names"])
        else:
            rule_name = None
        return Explanation(rule_name, tuple(comparisons), round(float(total), 4), float(probability))

    def explain(self, a: IdentityRecord, b: IdentityRecord) -> Explanation:
        """Each field's comparison level and weight, the total and the probability (symmetric);
        the rule is ``same_identifier`` (or the hard conflict forbidding it) when one record
        states the other's system identifier or both state the same one."""
        features = self.features([a, b])
        i, j = np.array([0]), np.array([1])
        levels, totals, probabilities, rules, adjustments = self.score(features, i, j)
        adjust = {k: float(a[0]) for k, a in adjustments.items()}
        why = self._explanation(levels[0], totals[0], probabilities[0], int(rules[0]), adjust)
        if a.identifies(b):
            traits = self._conflict_names(self.strict_conflicts(features, i, j, levels)[0])
            why = dataclasses.replace(why, rule="conflict:" + ",".join(traits) if traits else IDENTIFIER_RULE)
        return why

    def _conflict_names(self, row: np.ndarray) -> list[str]:
        return [FIELDS[k].name for column, k in enumerate(self.strict) if row[column]]

    def _by_identifier(
        self,
        candidates: Sequence[IdentityRecord],
        labels: list[str],
        identified: list[int],
        conflicts: np.ndarray,
        totals: np.ndarray,
        explained: Callable[[int], Explanation],
    ) -> Decision:
        """The decision when some candidates share a system identifier with the record (see the
        module docstring): link to their golden record, or review when identifiers name two golden
        records or a record of that golden record is in hard conflict with the incoming one."""
        best = max(identified, key=lambda k: (float(totals[k]), -k))
        groups = {labels[k] for k in identified}
        if len(groups) > 1:
            return Decision(
                "review", candidates[best], dataclasses.replace(explained(best), rule=IDENTIFIERS_CONFLICT)
            )
        group = labels[best]
        clashing = [k for k in range(len(candidates)) if labels[k] == group and conflicts[k].any()]
        if clashing:
            # The identified record itself first: its conflict is the one a steward must see.
            k = best if best in clashing else clashing[0]
            rule = "conflict:" + ",".join(self._conflict_names(conflicts[k]))
            return Decision("review", candidates[k], dataclasses.replace(explained(k), rule=rule))
        return Decision("link", candidates[best], dataclasses.replace(explained(best), rule=IDENTIFIER_RULE))

    def _homonyms_among(self, features: Features, levels: np.ndarray) -> np.ndarray:
        """:meth:`unconfirmed_homonyms` of the incoming record (index 0) against each candidate,
        with the known homonym keys found among the records sharing its identity key: what a batch
        finds among its candidate pairs (records sharing that key always share a blocking key)."""
        key = namesake_keys(features)
        n = features.n - 1
        group = np.flatnonzero(key == key[0]) if key[0] != 0 else np.zeros(0, dtype=np.int64)
        if len(group) < 2:
            return np.zeros(n, dtype=bool)
        a, b = np.triu_indices(len(group), k=1)
        gi, gj = group[a], group[b]
        group_levels = self.refine(features, gi, gj, compare(features, gi, gj))
        known = self.known_homonyms(features, gi, gj, self.rules(features, gi, gj, group_levels))
        i, j = np.zeros(n, dtype=np.int64), np.arange(1, n + 1)
        return self.unconfirmed_homonyms(features, i, j, levels, known)

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
        the incoming one (a twin, a namesake born elsewhere) cannot take it automatically (the
        review's rule is ``conflict_in_golden``). Without it every candidate is its own group.

        A candidate sharing a system identifier with the record decides first
        (:meth:`_by_identifier`). Then a positive deterministic rule links at once. Otherwise the
        best-scored group decides; when two groups both pass the upper threshold, the choice goes
        to review (an agent must say which person it is: rule ``ambiguous_golden``).
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

        homonyms: np.ndarray | None = None

        def explained(k: int) -> Explanation:
            adjust = {field: float(a[k]) for field, a in adjustments.items()}
            why = self._explanation(levels[k], totals[k], probabilities[k], int(rules[k]), adjust)
            if homonyms is not None and homonyms[k] and why.rule is None:
                why = dataclasses.replace(why, rule=HOMONYM_RULE)
            return why

        identified = [k for k, candidate in enumerate(candidates) if record.identifies(candidate)]
        if identified:
            conflicts = self.strict_conflicts(features, i, j, levels)
            return self._by_identifier(candidates, labels, identified, conflicts, totals, explained)
        positive = np.flatnonzero(rules > 0)
        if len(positive):
            best = int(positive[np.argmin(rules[positive])])
            return Decision("link", candidates[best], explained(best))
        homonyms = self._homonyms_among(features, levels)
        outcomes = self.outcomes(probabilities, rules, levels, adjustments, homonyms)
        conflicted = {labels[k] for k in np.flatnonzero(rules == CONFLICT).tolist()}
        held_back = set()
        for k in range(len(candidates)):
            if labels[k] in conflicted and outcomes[k] == 2:
                outcomes[k] = 1
                held_back.add(k)
        order = np.lexsort((-totals, -outcomes)).tolist()
        best = order[0]
        if outcomes[best] == 0:
            return Decision("new", None, explained(best))
        rivals = [k for k in order[1:] if outcomes[k] == 2 and labels[k] != labels[best]]
        if outcomes[best] == 2 and not rivals:
            return Decision("link", candidates[best], explained(best))
        why = explained(best)
        # A review the score did not ask for says why it was asked (the steward's question, and the
        # thresholds report, which counts it apart from the score's band).
        if why.rule is None and (rivals or best in held_back):
            why = dataclasses.replace(why, rule=AMBIGUOUS_RULE if rivals else GOLDEN_CONFLICT_RULE)
        return Decision("review", candidates[best], why)


def _shares(
    features: Features, column: str, records: np.ndarray, table: dict[str, float], floor: float
) -> np.ndarray:
    """Each record's share of the population for its value of ``column`` (``floor`` if unseen),
    looked up once per distinct value."""
    _, first, inverse = unique_inverse(features.codes[column][records])
    values = features.strings[column][records[first]].tolist()
    return np.array([table.get(value, floor) for value in values], dtype=float)[inverse]
