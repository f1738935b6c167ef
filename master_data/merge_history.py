"""Who was one golden record with whom, and when: the merge history read as periods.

A steward's merge makes two golden records one person; an unmerge splits them back, and the merge
still counted for the time it lasted. Merges chain (A merged into B, B into C: A is inside C) and
overlap (A and C both merged into B for a while), so "who was held together with this person at
time t" is the connected component, at t, of the merges in force at t — not a one-merge-deep
look-up. This module answers it from the merge events alone, with no I/O, so that a caller reads
the history in one query and asks one question of it (the journal's selection of a citizen: RGPD
art. 15).

A person is the golden records merged together *now* (:func:`current_person`): a steward said they
are one, so every row written under any of them, at any time, is that person's. Beside them, a
golden record split back from them (or from a record they were joined with) concerned them only
while it was held together with one of them (:func:`shared_periods`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Merge:
    """``absorbed`` merged into ``survivor`` at ``at``; split back at ``until`` (None: in force)."""

    survivor: str
    absorbed: str
    at: datetime
    until: datetime | None = None


@dataclass(frozen=True)
class Period:
    """Rows written under ``golden_id`` from ``since`` to ``until`` (both included) concern the person."""

    golden_id: str
    since: datetime
    until: datetime


def current_person(golden_id: str, merges: Iterable[Merge]) -> frozenset[str]:
    """``golden_id`` and every golden record merged with it now, at any depth and on either side
    (the record it was merged into, that one's other merged records...)."""
    return _component(golden_id, [m for m in merges if m.until is None])


def shared_periods(person: Iterable[str], merges: Sequence[Merge]) -> list[Period]:
    """The periods during which a golden record outside ``person`` was held together with one of
    its golden records by merges since undone, at any depth, merged into one period per golden
    record where they touch. Between two consecutive event times the merges in force are fixed;
    each such span is checked once (a history holds few events)."""
    members = frozenset(person)
    times = sorted({m.at for m in merges} | {m.until for m in merges if m.until is not None})
    spans: dict[str, list[list[datetime]]] = {}
    for start, end in itertools.pairwise(times):
        in_force = [m for m in merges if m.at <= start and (m.until is None or m.until >= end)]
        together = _joined(members, in_force)
        for golden_id in sorted(together - members):
            runs = spans.setdefault(golden_id, [])
            if runs and runs[-1][1] == start:
                runs[-1][1] = end
            else:
                runs.append([start, end])
    return [Period(golden_id, since, until) for golden_id, runs in spans.items() for since, until in runs]


def _joined(members: frozenset[str], merges: Sequence[Merge]) -> set[str]:
    """Every golden record connected by ``merges`` to one of ``members``."""
    neighbours: dict[str, set[str]] = {}
    for merge in merges:
        neighbours.setdefault(merge.survivor, set()).add(merge.absorbed)
        neighbours.setdefault(merge.absorbed, set()).add(merge.survivor)
    seen, frontier = set(members), list(members)
    while frontier:
        for other in neighbours.get(frontier.pop(), ()):
            if other not in seen:
                seen.add(other)
                frontier.append(other)
    return seen


def _component(golden_id: str, merges: Sequence[Merge]) -> frozenset[str]:
    return frozenset(_joined(frozenset([golden_id]), merges))
