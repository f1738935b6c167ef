"""What a batch import writes, decided from a batch deduplication (master_data.batch).

A batch finds clusters of records (the golden records to create, or stored golden records the
file's records join), the links that made them and the pairs left to a steward. The store writes
each golden record with the rows real-time resolution would write had it met the file's records
one after the other, in file order: the first record of a new person creates the golden record,
each next one is linked to it; a record joining a stored golden record is linked to it. This
module turns a :class:`~master_data.batch.BatchResult` into that plan, with no I/O:

- **clusters** holding at least one record of the file, in the order of their first record (the
  stored golden records the file joins first: their records come first), members in order;
- each file record's **link**: ``new`` for the first member of a new golden record (with the
  highest probability it had against an earlier record, as real time records its best
  candidate's), else the rule (``rule:same_identifier``, ``rule:same_nir``...; identifiers first,
  as real time decides them) or ``score`` of its strongest link to an earlier member (a stored
  record is earlier than every record of the file), with that link's probability;
- one **review task** per pair of golden records holding a pair the matcher sent to review (its
  most probable pair; the later record is the task's record, the earlier its candidate),
  explained field by field as ``hub citizens explain`` shows it, with the rule that sent it to
  review when the score alone did not (``conflict:identifiers`` for a pair named by one
  identifier that could not be linked, ``known_homonyms``, or a link the clustering held back:
  ``conflict_in_golden``, ``ambiguous_golden``, as real time names them);
- **chunks** of whole clusters for bounded transactions, each task in the chunk that writes the
  later of its two golden records (both exist when it is written).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from master_data.batch import HELD_RULES, BatchResult
from master_data.matcher import (
    HOMONYM_RULE,
    IDENTIFIERS_CONFLICT,
    LINK_RULE_NAMES,
    RULE_PRIORITY,
    SAME_IDENTIFIER,
    Matcher,
)
from master_data.records import Explanation, IdentityRecord


@dataclass(frozen=True)
class PlannedTask:
    """A review task between the golden records of ``record`` and ``candidate`` (indices)."""

    record: int
    candidate: int
    explanation: Explanation


@dataclass
class LoadPlan:
    """Indices count over the batch's records: the ``stored`` ones first (a cluster holding one is
    that stored record's golden record), then the file's."""

    clusters: list[list[int]]
    # Per file record: (link, probability) of its cross-reference.
    links: dict[int, tuple[str, float | None]]
    tasks: list[PlannedTask]
    # Index in ``clusters`` of each task's later golden record.
    task_cluster: list[int] = field(default_factory=list)
    stored: int = 0

    def fresh(self, members: Sequence[int]) -> list[int]:
        """The file's records among ``members`` (a cluster's)."""
        return [m for m in members if m >= self.stored]

    def chunks(self, size: int) -> Iterator[tuple[list[list[int]], list[PlannedTask]]]:
        """Whole clusters holding about ``size`` records of the file (a larger cluster alone), with
        the tasks whose later golden record they write."""
        by_cluster: dict[int, list[PlannedTask]] = {}
        for task, cluster in zip(self.tasks, self.task_cluster, strict=True):
            by_cluster.setdefault(cluster, []).append(task)
        chunk: list[list[int]] = []
        tasks: list[PlannedTask] = []
        count = 0
        for k, members in enumerate(self.clusters):
            size_k = len(self.fresh(members))
            if chunk and count + size_k > size:
                yield chunk, tasks
                chunk, tasks, count = [], [], 0
            chunk.append(members)
            tasks.extend(by_cluster.get(k, []))
            count += size_k
        if chunk:
            yield chunk, tasks


def plan_load(records: Sequence[IdentityRecord], result: BatchResult, matcher: Matcher) -> LoadPlan:
    """The golden records, cross-references and review tasks of ``records`` as ``result`` (a
    deduplication of them by ``matcher``, or of the file against stored records: then
    ``records`` are the stored ones followed by the file's) found them."""
    n, stored = len(records), result.stored
    if result.rules is None or (len(result.clusters) == 0 and n):
        raise ValueError("plan_load needs a deduplication's result (clusters and rules)")
    every = sorted((sorted(members) for members in result.clusters), key=lambda c: c[0])
    label = np.empty(n, dtype=np.int64)
    for k, members in enumerate(every):
        label[members] = k
    # Position of each cluster among those written (-1: stored records only, nothing to write).
    position = np.full(len(every), -1, dtype=np.int64)
    clusters = []
    for k, members in enumerate(every):
        if members[-1] >= stored:
            position[k] = len(clusters)
            clusters.append(members)
    pairs, probabilities, outcomes, rules = result.pairs, result.probabilities, result.outcomes, result.rules
    earlier, later = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])

    # The first member's best candidate among the records before it (real time's "new" keeps it).
    best = np.full(n, -1.0)
    np.maximum.at(best, later, probabilities)
    links: dict[int, tuple[str, float | None]] = {
        members[0]: ("new", float(best[members[0]]) if best[members[0]] >= 0 else None)
        for members in clusters
        if members[0] >= stored
    }
    linked = np.flatnonzero(outcomes == 2)
    by_record: dict[int, list[int]] = {}
    for k in linked.tolist():
        by_record.setdefault(int(later[k]), []).append(k)
        by_record.setdefault(int(earlier[k]), []).append(k)
    rank = {code: position for position, code in enumerate(RULE_PRIORITY)}
    for members in clusters:
        for m in members:
            if m < stored or m in links:
                continue
            ks = by_record.get(m, [])
            # Its links to earlier members, as real time would have met it; else (it joined through
            # a later record) any of its links.
            before = [k for k in ks if later[k] == m] or ks
            positive = [k for k in before if rules[k] > 0]
            if positive:
                k = min(positive, key=lambda x: (rank[int(rules[x])], -probabilities[x]))
                links[m] = (f"rule:{LINK_RULE_NAMES[int(rules[k])]}", float(probabilities[k]))
            else:
                k = max(before, key=lambda x: probabilities[x])
                links[m] = ("score", float(probabilities[k]))

    reviewed = np.flatnonzero((outcomes == 1) & (label[pairs[:, 0]] != label[pairs[:, 1]]))
    chosen: dict[tuple[int, int], int] = {}
    for k in reviewed.tolist():
        key = tuple(sorted((int(label[pairs[k, 0]]), int(label[pairs[k, 1]]))))
        if key not in chosen or probabilities[k] > probabilities[chosen[key]]:
            chosen[key] = k
    tasks, task_cluster = [], []
    for (first, second), k in sorted(chosen.items()):
        record, candidate = int(later[k]), int(earlier[k])
        explanation = matcher.explain(records[record], records[candidate])
        if rules[k] == SAME_IDENTIFIER:
            # Named one person by an identifier, yet not linked: a record of the candidate's golden
            # record is another person by its strict traits (real time checks the golden record as
            # a whole), or the identifiers name two golden records.
            explanation = dataclasses.replace(
                explanation, rule=_identifier_refusal(records, record, every[int(label[candidate])], matcher)
            )
        elif result.homonyms is not None and result.homonyms[k] and explanation.rule is None:
            explanation = dataclasses.replace(explanation, rule=HOMONYM_RULE)
        if result.held is not None and result.held[k] and explanation.rule is None:
            explanation = dataclasses.replace(explanation, rule=HELD_RULES[int(result.held[k])])
        tasks.append(PlannedTask(record, candidate, explanation))
        task_cluster.append(int(max(position[first], position[second])))
    return LoadPlan(clusters, links, tasks, task_cluster, stored)


def _identifier_refusal(
    records: Sequence[IdentityRecord], record: int, members: Sequence[int], matcher: Matcher
) -> str:
    """Why a record named by an identifier was not linked to the golden record of ``members``: the
    hard conflict of one of them with it (``conflict:<traits>``), else ``conflict:identifiers``."""
    for member in members:
        traits = matcher.hard_conflicts(records[record], records[member])
        if traits:
            return "conflict:" + ",".join(traits)
    return IDENTIFIERS_CONFLICT
