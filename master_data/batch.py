"""Whole imports: estimate the weights, deduplicate one source or link two, as arrays.

A run normalises every record once (each distinct value once), generates candidate pairs from the
blocking keys, compares all pairs column by column (numpy, rapidfuzz's ``cpdist``), estimates the
weights (master_data.estimation), then scores and clusters. A million records of a town (11
million candidate pairs) take about a minute and 3.3 GB on two cores, the records themselves
included (bench/batch_dedup.py). Progress goes to a rich progress bar on stderr and a summary (counts,
seconds per step) comes back with the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from master_data.arrays import sorted_unique
from master_data.blocking import candidate_pairs, identifier_keys, key_arrays, namesake_keys
from master_data.communes import CommuneTable, default_table
from master_data.comparison import FIELDS, compare
from master_data.estimation import estimate_from_features
from master_data.features import Features
from master_data.matcher import (
    AMBIGUOUS_RULE,
    CONFLICT,
    GOLDEN_CONFLICT_RULE,
    RULE_PRIORITY,
    SAME_IDENTIFIER,
    Matcher,
)
from master_data.model import MatchModel
from master_data.records import IdentityRecord

# Chosen on the synthetic town (100,000 people): 0.99 left 1.04 % of people split and 2.6 % of
# records in review; 0.95 gives 0.78 % and 2.0 % for 1.6 more collisions per 10,000 golden records.
# FEBRL F1 is higher at 0.95 than at 0.99 on all four data sets, precision unchanged (1.0).
DEFAULT_UPPER = 0.95
DEFAULT_LOWER = 0.7  # review band [0.7, 0.95): 1.4 % of the town's records (2.2 % with 0.5), nothing lost
_SCORE_CHUNK = 500_000
_COMPONENT_LIMIT = 200
# Why a pair the score linked was held back for review (BatchResult.held): its link would put two
# conflicting records in one golden record, or its record is as close to another golden record.
HELD_CONFLICT, HELD_AMBIGUOUS = 1, 2
HELD_RULES = {HELD_CONFLICT: GOLDEN_CONFLICT_RULE, HELD_AMBIGUOUS: AMBIGUOUS_RULE}


@dataclass
class BatchResult:
    """What a batch run found.

    ``pairs`` (k x 2, record indices; for a link the right index counts from 0 in ``right``) with
    their ``probabilities``, ``totals`` and ``outcomes`` (2 link, 1 review, 0 new); ``clusters`` the
    groups of linked records (deduplication: connected components of the links, every record in
    exactly one cluster); ``summary`` counts and seconds per step.
    """

    pairs: np.ndarray
    probabilities: np.ndarray
    totals: np.ndarray
    outcomes: np.ndarray
    clusters: list[list[int]]
    model: MatchModel
    summary: dict[str, float | int] = field(default_factory=dict)
    # Per pair (deduplication only): the matcher's rule code (master_data.matcher: positive links
    # whatever the score, CONFLICT never links) and whether the pair shares a known homonym key
    # without a distinguishing trait: what a stored link or review task says it was decided by.
    rules: np.ndarray | None = None
    homonyms: np.ndarray | None = None
    # Against a stored population (:func:`deduplicate_against`): the first ``stored`` indices are
    # the stored records, each cluster holding one of them is that record's golden record.
    stored: int = 0
    # Per pair (deduplication only): 0, or why the clustering held a scored link back for review
    # (HELD_CONFLICT, HELD_AMBIGUOUS): the rule its review task states.
    held: np.ndarray | None = None

    @property
    def links(self) -> np.ndarray:
        return self.pairs[self.outcomes == 2]

    @property
    def reviews(self) -> np.ndarray:
        return self.pairs[self.outcomes == 1]


class _Steps:
    """A rich progress bar of the run's steps on stderr (silent when ``enabled`` is False)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.seconds: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("matching", total=total)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.progress.update(self.task, description=name)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)
        self.progress.advance(self.task)

    def __enter__(self) -> _Steps:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.update(self.task, description="done")
        self.progress.stop()


@dataclass
class _Prepared:
    features: Features
    i: np.ndarray
    j: np.ndarray
    levels: np.ndarray
    split: int | None
    blocking: dict[str, int]


def _prepare(
    records: Sequence[IdentityRecord],
    split: int | None,
    communes: CommuneTable,
    max_block: int,
    steps: _Steps,
    stored: int = 0,
) -> _Prepared:
    with steps.step("normalising"):
        features = Features.of(records, communes)
    with steps.step("blocking"):
        owners, groups = key_arrays(features)
        stated_owners, stated_groups = identifier_keys(features)
        if len(stated_owners):
            owners, groups = np.concatenate([owners, stated_owners]), np.concatenate([groups, stated_groups])
        i, j, stats = candidate_pairs(
            owners, groups, features.n, max_block=max_block, split=split, known=stored
        )
        del owners, groups
        if stored:
            i, j = _with_stored_namesakes(features, i, j, stored, max_block)
    with steps.step("comparing pairs"):
        parts = [
            compare(features, i[s : s + _SCORE_CHUNK], j[s : s + _SCORE_CHUNK])
            for s in range(0, len(i), _SCORE_CHUNK)
        ]
        levels = np.concatenate(parts) if parts else np.zeros((0, len(FIELDS)), dtype=np.int8)
    return _Prepared(features, i, j, levels, split, stats)


def _with_stored_namesakes(
    features: Features, i: np.ndarray, j: np.ndarray, stored: int, max_block: int
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs plus the pairs of stored records sharing the identity key (birth name,
    first given name, birth date) of a new record: whether the population holds two people under
    that key is what real time reads among its candidates (known homonyms), and two stored records
    are otherwise never compared again."""
    key = namesake_keys(features)
    new = key[stored:]
    wanted = np.flatnonzero((key[:stored] != 0) & np.isin(key[:stored], new[new != 0]))
    if len(wanted) < 2:
        return i, j
    si, sj, _ = candidate_pairs(wanted, key[wanted], features.n, max_block=max_block)
    n = features.n
    combined = sorted_unique(np.concatenate([i * n + j, si * n + sj]))
    return combined // n, combined % n


def _estimate(prepared: _Prepared, seed: int, steps: _Steps) -> MatchModel:
    with steps.step("estimating weights (EM)"):
        model = estimate_from_features(prepared.features, prepared.split, seed=seed)
        model.notes["records"] = prepared.features.n
    return model


def estimate(
    records: Sequence[IdentityRecord],
    *,
    communes: CommuneTable | None = None,
    seed: int = 1,
    progress: bool = False,
) -> MatchModel:
    """m/u weights and prior estimated from the records themselves, unsupervised (EM; see
    master_data.estimation)."""
    communes = communes or default_table()
    with _Steps(progress, 2) as steps:
        with steps.step("normalising"):
            features = Features.of(records, communes)
        with steps.step("estimating weights (EM)"):
            model = estimate_from_features(features, None, seed=seed)
            model.notes["records"] = features.n
    return model


estimate_model = estimate


def _clusters(
    n: int,
    links: np.ndarray,
    strength: np.ndarray,
    conflicts: np.ndarray | Callable[[np.ndarray], np.ndarray],
    anchors: np.ndarray | None = None,
) -> tuple[list[list[int]], np.ndarray]:
    """Clusters from the links, strongest first, refusing any merge that would put two records in
    conflict (twins, namesakes born elsewhere...) into one golden record, even through others.

    ``conflicts`` are pairs of records in conflict, or a function that, given the component of
    every record under the links, returns the conflicting pairs inside components (there only can
    a merge happen). Returns the clusters (every record in exactly one) and a mask of the links
    that were refused. Each cluster root keeps the records its members conflict with, so a merge
    checks only those.

    ``anchors`` (against a stored population) gives each stored record its golden record's label
    (-1 for a new record): the records of one golden record start as one cluster whatever their
    conflicts (a steward or real time put them there), and a merge that would join two golden
    records is refused (merging people is a steward's act, never a batch's).
    """
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    held = _anchor_links(anchors)
    # Most candidate pairs are conflicts (two members of a household), but only those inside one
    # component of the links could ever be merged: keep just these.
    joined = np.concatenate([held, links]) if len(held) else links
    for a, b in zip(joined[:, 0].tolist(), joined[:, 1].tolist(), strict=True):
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    del joined
    component = np.fromiter((find(x) for x in range(n)), dtype=np.int64, count=n)
    if callable(conflicts):
        conflicts = conflicts(component)
    relevant = conflicts[component[conflicts[:, 0]] == component[conflicts[:, 1]]]
    against: dict[int, list[int]] = {}
    for a, b in zip(relevant[:, 0].tolist(), relevant[:, 1].tolist(), strict=True):
        against.setdefault(a, []).append(b)
        against.setdefault(b, []).append(a)
    parent = list(range(n))
    owner: dict[int, int] = {}  # root -> label of the stored golden record the cluster is

    def join(root_a: int, root_b: int) -> None:
        partners_a, partners_b = against.get(root_a), against.get(root_b)
        parent[root_b] = root_a
        if partners_b:
            against[root_a] = (partners_a or []) + partners_b
        if root_b in owner:
            owner[root_a] = owner.pop(root_b)

    for a, b in zip(held[:, 0].tolist(), held[:, 1].tolist(), strict=True):
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            join(root_a, root_b)
    if anchors is not None:
        for x in np.flatnonzero(anchors >= 0).tolist():
            owner[find(x)] = int(anchors[x])

    refused = np.zeros(len(links), dtype=bool)
    order = np.argsort(-strength, kind="stable")
    for k, a, b in zip(order.tolist(), links[order, 0].tolist(), links[order, 1].tolist(), strict=True):
        root_a, root_b = find(a), find(b)
        if root_a == root_b:
            continue
        if root_a in owner and root_b in owner:
            refused[k] = True  # two stored golden records: a steward merges them, not a batch
            continue
        partners_a, partners_b = against.get(root_a), against.get(root_b)
        if partners_a and partners_b:  # conflicts are symmetric: one side's list is enough
            shorter, other_root = (
                (partners_a, root_b) if len(partners_a) <= len(partners_b) else (partners_b, root_a)
            )
            if any(find(p) == other_root for p in shorter):
                refused[k] = True
                continue
        join(root_a, root_b)
    roots = np.fromiter((find(x) for x in range(n)), dtype=np.int64, count=n)
    order = np.argsort(roots, kind="stable")
    bounds = [0, *(np.flatnonzero(np.diff(roots[order])) + 1).tolist(), n]
    ordered = order.tolist()
    return [ordered[start:end] for start, end in pairwise(bounds) if end > start], refused


def _anchor_links(anchors: np.ndarray | None) -> np.ndarray:
    """Pairs (first record, other record) joining the stored records of each golden record."""
    if anchors is None or not (anchors >= 0).any():
        return np.zeros((0, 2), dtype=np.int64)
    stored = np.flatnonzero(anchors >= 0)
    order = stored[np.argsort(anchors[stored], kind="stable")]
    labels = anchors[order]
    starts = np.concatenate(([True], labels[1:] != labels[:-1]))
    first = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
    keep = first != order
    return np.stack([first[keep], order[keep]], axis=1)


def _rival_anchors(
    pairs: np.ndarray,
    outcomes: np.ndarray,
    rules: np.ndarray,
    probabilities: np.ndarray,
    identified: np.ndarray,
    anchors: np.ndarray,
    stored: int,
) -> None:
    """A new record meeting several stored golden records decides as real time does
    (:meth:`master_data.matcher.Matcher.decide`): identifiers first (``identified`` pairs, in hard
    conflict or not: naming two golden records, it joins neither and a steward says which person
    it is), then a positive rule (its golden record takes the record), then the score (two golden
    records above the upper threshold: review). The links to the golden records not chosen become
    review pairs (``outcomes`` changed in place)."""
    cross = (pairs[:, 0] < stored) & (pairs[:, 1] >= stored)
    by_record: dict[int, list[int]] = {}
    for k in np.flatnonzero(cross & ((outcomes == 2) | identified)).tolist():
        by_record.setdefault(int(pairs[k, 1]), []).append(k)
    rank = {code: position for position, code in enumerate(RULE_PRIORITY)}
    for ks in by_record.values():
        golden = {k: int(anchors[pairs[k, 0]]) for k in ks}
        named = {golden[k] for k in ks if identified[k]}
        links = [k for k in ks if outcomes[k] == 2]
        if named:
            keep = named.pop() if len(named) == 1 else None
        elif len({golden[k] for k in links}) <= 1:
            continue
        elif ruled := [k for k in links if rules[k] > 0]:
            top = min(rank[int(rules[k])] for k in ruled)
            tier = [k for k in ruled if rank[int(rules[k])] == top]
            keep = golden[max(tier, key=lambda k: (probabilities[k], -k))]
        else:
            keep = None  # two golden records pass the upper threshold
        for k in links:
            if golden[k] != keep:
                outcomes[k] = 1


def _ambiguous(
    clusters: list[list[int]],
    pairs: np.ndarray,
    totals: np.ndarray,
    plausible: np.ndarray,
    separated: np.ndarray,
    conflicts: np.ndarray,
    margin: float,
) -> np.ndarray:
    """Records that fit two golden records known to be two people, with nothing to choose between
    them: a steward decides, the score does not.

    A record X of golden record C is ambiguous when another golden record D, holding a record in
    conflict with one of C's other records (two people: twins, namesakes born elsewhere), is a
    plausible place for X too (a ``plausible`` pair to one of D's records, and no conflict of X
    with D) and X's best pair into C beats its best pair into D by less than ``margin`` log-odds
    bits. The two hypotheses exclude each other, so the margin is the upper threshold applied to
    the choice between them (log2(upper / (1 - upper))): a link must be as sure against the other
    golden record as it is against "a new person". The strongest-first clustering would otherwise
    hand X to whichever side a typo or a missing birth place favoured by a fraction of a bit.
    Records in conflict are the ``separated`` pairs (a mask over ``pairs``) and ``conflicts``.
    """
    n = sum(len(c) for c in clusters)
    label = np.empty(n, dtype=np.int64)
    for k, members in enumerate(clusters):
        label[members] = k
    scored, scores = pairs[plausible], totals[plausible]
    x = np.concatenate([scored[:, 0], scored[:, 1]])
    y = np.concatenate([scored[:, 1], scored[:, 0]])
    total = np.concatenate([scores, scores])
    inside = label[x] == label[y]
    own = np.full(n, -np.inf)
    np.maximum.at(own, x[inside], total[inside])
    rival = np.flatnonzero(~inside & (total >= own[x] - margin))
    if len(rival) == 0:
        return np.zeros(0, dtype=np.int64)
    x, d = x[rival], label[y[rival]]
    # Only conflicts touching a golden record some record hesitates over matter (most conflicts
    # are within households no record hesitates between): select them with array operations.
    hesitant = np.isin(label, np.unique(label[x]))
    chosen = np.flatnonzero(separated & (hesitant[pairs[:, 0]] | hesitant[pairs[:, 1]]))
    conflicts = np.concatenate([pairs[chosen], conflicts])
    holders: dict[tuple[int, int], set[int]] = {}  # (C, D) -> C's records in conflict with D's
    for a, b in zip(conflicts[:, 0].tolist(), conflicts[:, 1].tolist(), strict=True):
        ca, cb = int(label[a]), int(label[b])
        if ca != cb:
            holders.setdefault((ca, cb), set()).add(a)
            holders.setdefault((cb, ca), set()).add(b)
    out = set()
    for r, dr in zip(x.tolist(), d.tolist(), strict=True):
        mine = holders.get((int(label[r]), dr), set())
        # Ambiguous when other records of C conflict with D; not when X itself does (D is then
        # no place for X).
        if mine and r not in mine:
            out.add(r)
    return np.array(sorted(out), dtype=np.int64)


def _conflicts_within(
    matcher: Matcher, features: Features, component: np.ndarray, identified: np.ndarray | None = None
) -> np.ndarray:
    """Conflicting pairs among ALL pairs inside each component of the links, not only the blocked
    candidates: a namesake's records may share no key with the other person's, yet a link through
    a third record would put them in one golden record. Components larger than
    ``_COMPONENT_LIMIT`` are left to their candidate conflicts.

    A record ``identified`` (linked by a system identifier) is also in conflict with any record
    its strict traits say is another person, whether or not a sex is known: real time links by an
    identifier only when no record of the golden record is in such a hard conflict with it."""
    i, j, _ = candidate_pairs(
        np.arange(features.n, dtype=np.int64), component, features.n, max_block=_COMPONENT_LIMIT
    )
    if len(i) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    levels = matcher.refine(features, i, j, compare(features, i, j))
    conflict = matcher.rules(features, i, j, levels) == CONFLICT
    if identified is not None:
        check = np.flatnonzero(identified[i] | identified[j])
        if len(check):
            hard = matcher.strict_conflicts(features, i[check], j[check], levels[check]).any(axis=1)
            conflict[check] |= hard
    return np.stack([i, j], axis=1)[conflict]


def _identifier_rules(
    matcher: Matcher, prepared: _Prepared, rules: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs naming one person by a system identifier take the rule ``SAME_IDENTIFIER`` (linked
    whatever the score), unless a strict trait says another person whatever the sex (a child
    stating a parent's payer id, twins stating one family id): those become conflicts that go to
    review (never a link, never left as two unrelated people), as real time sends them. ``rules``
    is changed in place; returns the mask of identified pairs and the indices of those to review."""
    mask = matcher.identified(prepared.features, prepared.i, prepared.j)
    identified = np.flatnonzero(mask)
    if len(identified) == 0:
        return mask, identified
    i, j = prepared.i[identified], prepared.j[identified]
    hard = matcher.strict_conflicts(prepared.features, i, j, prepared.levels[identified]).any(axis=1)
    rules[identified] = np.where(hard, CONFLICT, SAME_IDENTIFIER)
    return mask, identified[hard]


def _run(
    records: Sequence[IdentityRecord],
    split: int | None,
    matcher: Matcher | None,
    *,
    upper: float,
    lower: float,
    communes: CommuneTable | None,
    max_block: int,
    seed: int,
    progress: bool,
    anchors: np.ndarray | None = None,
) -> BatchResult:
    started = time.perf_counter()
    communes = matcher.communes if matcher else (communes or default_table())
    stored = int((anchors >= 0).sum()) if anchors is not None else 0
    with _Steps(progress, 5 if matcher is None else 4) as steps:
        prepared = _prepare(records, split, communes, max_block, steps, stored)
        if matcher is None:
            matcher = Matcher(_estimate(prepared, seed, steps), upper, lower, communes=communes)
        with steps.step("scoring and deciding"):
            matcher.refine(prepared.features, prepared.i, prepared.j, prepared.levels)
            adjustments = matcher.adjustments(prepared.features, prepared.i, prepared.j, prepared.levels)
            totals = matcher.model.totals(prepared.levels) + sum(
                adjustments.values(), np.zeros(len(prepared.i))
            )
            probabilities = matcher.model.probability(totals)
            rules = matcher.rules(prepared.features, prepared.i, prepared.j, prepared.levels)
            identified_pairs, to_review = _identifier_rules(matcher, prepared, rules)
            known = matcher.known_homonyms(prepared.features, prepared.i, prepared.j, rules)
            homonyms = matcher.unconfirmed_homonyms(
                prepared.features, prepared.i, prepared.j, prepared.levels, known
            )
            outcomes = matcher.outcomes(probabilities, rules, prepared.levels, adjustments, homonyms)
            outcomes[to_review] = 1
            pairs = np.stack([prepared.i, prepared.j], axis=1)
            clusters: list[list[int]] = []
            ambiguous_records = 0
            held = None
            if split is None:
                # Two stored records were decided when they were stored (together or apart): their
                # pairs only tell which identities the population holds twice (known homonyms).
                both_stored = pairs[:, 1] < stored
                outcomes[both_stored] = 0
                if stored:
                    _rival_anchors(pairs, outcomes, rules, probabilities, identified_pairs, anchors, stored)
                # Cannot-link pairs: strict conflicts, and pairs the matcher compared and found
                # as surely two people as a link must be one (probability below 1 - upper) when one
                # record is identity-grade (the scope of conflicts, see master_data.matcher).
                graded = matcher.sex_known(prepared.features)
                decided_apart = (rules <= 0) & (probabilities < 1 - matcher.upper)
                decided_apart &= graded[prepared.i] | graded[prepared.j]
                separated = (rules == CONFLICT) | decided_apart
                del decided_apart
                identified = np.zeros(len(records), dtype=bool)
                identified[pairs[(rules == SAME_IDENTIFIER) & (outcomes == 2)].ravel()] = True
                found: list[np.ndarray] = []

                def conflicts_within(component: np.ndarray) -> np.ndarray:
                    # the candidate conflicts inside one component of the links, and the others
                    # there (found once: removing links only splits components)
                    inside = separated & (component[prepared.i] == component[prepared.j])
                    if not found:
                        found.append(
                            _conflicts_within(
                                matcher,
                                prepared.features,
                                component,
                                identified if identified.any() else None,
                            )
                        )
                    return np.concatenate([pairs[inside], found[0]])

                strength = np.where(rules > 0, np.inf, totals)  # rules, then log-odds
                linked = np.flatnonzero(outcomes == 2)
                clusters, refused = _clusters(
                    len(records), pairs[linked], strength[linked], conflicts_within, anchors
                )
                held = np.zeros(len(pairs), dtype=np.int8)
                outcomes[linked[refused]] = 1  # a steward decides between the two golden records
                held[linked[refused]] = HELD_CONFLICT
                # Records as close to a golden record in conflict with theirs go to review, and the
                # golden records are rebuilt without their links.
                plausible = ((probabilities >= matcher.lower) & (rules != CONFLICT)) | (rules > 0)
                plausible &= ~both_stored
                margin = float(np.log2(matcher.upper / (1 - matcher.upper))) if matcher.upper < 1 else np.inf
                ambiguous = _ambiguous(clusters, pairs, strength, plausible, separated, found[0], margin)
                ambiguous = ambiguous[ambiguous >= stored]  # a stored record stays where it is
                if len(ambiguous):
                    touched = np.isin(pairs[:, 0], ambiguous) | np.isin(pairs[:, 1], ambiguous)
                    demoted = touched & (outcomes == 2) & (rules <= 0)
                    outcomes[demoted] = 1
                    # Its links refused above are the same question: which golden record is it in?
                    held[demoted | (touched & (held != 0))] = HELD_AMBIGUOUS
                    linked = np.flatnonzero(outcomes == 2)
                    clusters, refused = _clusters(
                        len(records), pairs[linked], strength[linked], conflicts_within, anchors
                    )
                    outcomes[linked[refused]] = 1
                    held[linked[refused]] = HELD_CONFLICT
                ambiguous_records = len(ambiguous)
            else:
                pairs = pairs - np.array([0, split])
    summary: dict[str, float | int] = {
        "records": len(records) - stored,
        **({"stored_records": stored} if stored else {}),
        "candidate_pairs": len(prepared.i),
        "links": int((outcomes == 2).sum()),
        "reviews": int((outcomes == 1).sum()),
        "skipped_blocks": prepared.blocking.get("skipped_blocks", 0),
        "seconds": round(time.perf_counter() - started, 3),
        **{f"seconds.{name}": value for name, value in steps.seconds.items()},
    }
    if split is None:
        summary["clusters"] = len(clusters)
        summary["ambiguous_records"] = ambiguous_records
    if progress:
        Console(stderr=True).print(
            "[bold]summary[/]: " + ", ".join(f"{key} {value}" for key, value in summary.items())
        )
    return BatchResult(
        pairs,
        probabilities,
        totals,
        outcomes,
        clusters,
        matcher.model,
        summary,
        rules,
        homonyms,
        stored=stored,
        held=held,
    )


def deduplicate(
    records: Sequence[IdentityRecord],
    matcher: Matcher | None = None,
    *,
    upper: float = DEFAULT_UPPER,
    lower: float = DEFAULT_LOWER,
    communes: CommuneTable | None = None,
    max_block: int = 500,
    seed: int = 1,
    progress: bool = False,
) -> BatchResult:
    """Group ``records`` into people. Without a ``matcher`` the weights are estimated from these
    very records first (one pass over the candidate pairs serves EM and scoring)."""
    return _run(
        records,
        None,
        matcher,
        upper=upper,
        lower=lower,
        communes=communes,
        max_block=max_block,
        seed=seed,
        progress=progress,
    )


def link(
    left: Sequence[IdentityRecord],
    right: Sequence[IdentityRecord],
    matcher: Matcher | None = None,
    *,
    upper: float = DEFAULT_UPPER,
    lower: float = DEFAULT_LOWER,
    communes: CommuneTable | None = None,
    max_block: int = 500,
    seed: int = 1,
    progress: bool = False,
) -> BatchResult:
    """Pairs (index in ``left``, index in ``right``) that are the same person."""
    return _run(
        [*left, *right],
        len(left),
        matcher,
        upper=upper,
        lower=lower,
        communes=communes,
        max_block=max_block,
        seed=seed,
        progress=progress,
    )


def deduplicate_against(
    stored: Sequence[IdentityRecord],
    golden: Sequence[str],
    records: Sequence[IdentityRecord],
    matcher: Matcher,
    *,
    max_block: int = 500,
    progress: bool = False,
) -> BatchResult:
    """Group ``records`` into people and link them to a stored population, in one run.

    ``stored`` are current source records already held by golden records (``golden``, parallel:
    the golden id of each); every record of a golden record the new records may meet must be among
    them (the batch checks conflicts against the whole golden record). Indices of the result count
    over ``[*stored, *records]``: each cluster holding stored records is their golden record (two
    golden records are never joined), the others are new people. Only pairs with a new record are
    decided; the weights are the ``matcher``'s (a stored population has its model)."""
    if len(golden) != len(stored):
        raise ValueError(f"{len(golden)} golden ids for {len(stored)} stored records")
    labels: dict[str, int] = {}
    anchors = np.array(
        [labels.setdefault(g, len(labels)) for g in golden] + [-1] * len(records), dtype=np.int64
    )
    return _run(
        [*stored, *records],
        None,
        matcher,
        upper=matcher.upper,
        lower=matcher.lower,
        communes=None,
        max_block=max_block,
        seed=1,
        progress=progress,
        anchors=anchors if len(stored) else None,
    )
