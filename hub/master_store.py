"""The golden record's persistence: source versions, cross-references, the blocking index, golden
records, their versions and values with lineage, review tasks, merges and unmerges.

Every method works on the caller's :class:`~sqlalchemy.Connection`, inside the caller's
transaction: a resolution, a merge or a steward's decision is written whole or not at all, together
with whatever the caller adds (the request's golden id, an outbox message, a journal row). Deciding
(matching, survivorship) is pure and lives in :mod:`master_data`; this module only reads and writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    JSON,
    CompoundSelect,
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)

from hub.db.master_models import (
    EVENTS,
    GOLDEN,
    KEYS,
    NOT_SAME,
    SOURCES,
    STATED,
    TASKS,
    VALUES,
    VERSIONS,
    XREFS,
)
from hub.db.models import REQUESTS
from hub.db.pipeline import Pending, Pipeline
from hub.db.prebuilt import insert_values
from hub.ids import new_id
from master_data.matcher import IDENTIFIER_CONFLICT_RULE, IDENTIFIER_RULE, IDENTIFIERS_CONFLICT, RULE_NAMES
from master_data.matching import Decision, Explanation, IdentityRecord, Matcher
from master_data.survivorship import SourceVersion, SurvivorshipPolicy, derive

# SQLite allows 32,766 host parameters per statement; PostgreSQL many more. Chunks stay well below.
_IN_CHUNK = 500
# Blocking keys probed per statement when a batch reads its neighbourhood (one array parameter).
_KEY_CHUNK = 5000
# Records a blocking key may hold and still be read in real time (master_data.max_key_records).
MAX_KEY_RECORDS = 2000
# The reason of a task closed because a steward answered the same question on another task: not a
# decision of its own (the thresholds report leaves it out).
FOLLOWED_TASK = "as decided on task "
# The reason of an open task closed because a merge made its two golden records one: answered by
# the merge (named by its event id), not a decision of its own either.
MERGED_TASK = "as merged by event "


class MasterDataError(Exception):
    """A steward's or an operator's request that cannot be carried out (typed, never partial)."""

    code = "master_data_error"
    status = 409

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


class UnknownGolden(MasterDataError):
    code, status = "not_found", 404


class NotActive(MasterDataError):
    code = "golden_record_not_active"


class NothingToUnmerge(MasterDataError):
    code = "nothing_to_unmerge"


class UnknownTask(MasterDataError):
    code, status = "not_found", 404


class TaskDecided(MasterDataError):
    code = "task_already_decided"


class DecidedNotSame(MasterDataError):
    code = "decided_not_same"


class SameGoldenRecord(MasterDataError):
    """ "Not the same person" about two records that one golden record holds: nothing would split
    them, so the steward unmerges first (the decision then applies to the two golden records)."""

    code = "same_golden_record"


@dataclass(frozen=True)
class Resolution:
    """Which golden record a source record belongs to, and how that was decided."""

    golden_id: str
    outcome: str  # unchanged | updated | link | review | new
    source_record_id: int
    explanation: Explanation | None = None
    task_id: int | None = None


@dataclass(frozen=True)
class NewMember:
    """A new source record of a golden record built by a batch: its version (id reserved), its
    blocking keys, and how it joined (``new`` for the first; ``score`` or ``rule:<name>``)."""

    source: SourceVersion
    keys: Sequence[str]
    link: str
    probability: float | None


@dataclass(frozen=True)
class JoiningRecords:
    """New source records a batch links to a stored golden record: its ``version`` and current
    ``stored`` sources when the batch read them, and the ``members`` joining it (in file order)."""

    golden_id: str
    version: int
    stored: Sequence[SourceVersion]
    members: Sequence[NewMember]


@dataclass(frozen=True)
class Neighbourhood:
    """The stored records a batch must meet (:meth:`GoldenStore.neighbourhood`): current source
    records with their golden id (parallel lists, grouped by golden record), each golden record's
    version when read, and the number of cross-references stored then (a batch checks before each
    write that nobody stored one since)."""

    sources: list[SourceVersion]
    golden_ids: list[str]
    versions: dict[str, int]
    population: int


@dataclass(frozen=True)
class NewTask:
    """A review task between two golden records of a batch (the record is the later one)."""

    source_record_id: int
    golden_id: str
    candidate_source_record_id: int
    candidate_golden_id: str
    explanation: Explanation


class _Golden(NamedTuple):
    status: str
    merged_into: str | None
    version: int
    last: Any
    last_status: str | None
    last_merged_into: str | None


@dataclass(frozen=True)
class MergeResult:
    event_id: int
    golden_id: str
    other_id: str
    moved: list[tuple[str, str]]
    systems: list[str]


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(IdentityRecord))


def record_json(record: IdentityRecord) -> dict[str, Any]:
    """The record as stored; ``identifiers`` as ``{system: local id}``. Fields a source did not
    give that older records never had (identifiers, updated_at) are left out, so a record stored
    before them keeps its digest (an unchanged re-import stays a no-op)."""
    # Field by field: ``dataclasses.asdict`` deep-copies recursively, a quarter of a batch's writing.
    data = {name: getattr(record, name) for name in _RECORD_FIELDS}
    data["given_names"] = list(record.given_names)
    data["identifiers"] = dict(record.identifiers)
    for name in ("identifiers", "updated_at"):
        if not data[name]:
            del data[name]
    return data


def record_from_json(data: dict[str, Any]) -> IdentityRecord:
    identifiers = tuple(sorted((data.get("identifiers") or {}).items()))
    return IdentityRecord(
        **{**data, "given_names": tuple(data.get("given_names") or ()), "identifiers": identifiers}
    )


def record_digest(record: IdentityRecord) -> str:
    """What the record says (not who says it): an unchanged record re-imports as a no-op."""
    data = record_json(record)
    del data["system"], data["local_id"]
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class GoldenStore:
    """Reads and writes the master-data tables; ``policy`` derives golden values from sources."""

    def __init__(
        self,
        policy: SurvivorshipPolicy,
        max_candidates: int = 50,
        max_key_records: int = MAX_KEY_RECORDS,
        request_system: str = "portal",
    ) -> None:
        self.policy = policy
        self.max_candidates = max_candidates
        self.max_key_records = max_key_records
        # The system requests' citizens are resolved under: a request's source record is the
        # cross-reference (request_system, requests.citizen_ref) (see hub.citizens.resolve_request).
        self.request_system = request_system
        self._candidates: dict[tuple[Any, ...], Select[Any]] = {}

    # ------------------------------------------------------------------ resolution (real time)

    @staticmethod
    def _identified(reads: Pipeline, record: IdentityRecord) -> list[Pending]:
        """Add to ``reads`` the current records (with their golden id) that the "same system
        identifier" rule may name for ``record``: those holding an identifier it states, and those
        stating one of these or its own (system, local id). One indexed statement per identifier;
        a record states few."""
        pending = [reads.add(_HOLDING, {"system": s, "local_id": i}) for s, i in record.identifiers]
        for system, local_id in (record.key, *record.identifiers):
            pending.append(reads.add(_STATING, {"system": system, "local_id": local_id}))
        return pending

    def resolve(
        self,
        connection: Connection,
        record: IdentityRecord,
        matcher: Matcher,
        *,
        now: datetime,
        exchange_id: int | None = None,
        actor: str = "hub",
    ) -> Resolution:
        """Attach ``record`` to its golden record: known (system, local id) first, then the matcher
        on candidates read through the blocking index; link, create + review task, or create."""
        digest = record_digest(record)
        keys = sorted(matcher.blocking_keys(record))
        dialect = connection.dialect.name
        # Round trip 1: the key locks, the (system, local id) if known, the candidates, a new id.
        reads = Pipeline(connection)
        # Records that may name one another by a system identifier take turns too, even when they
        # share no blocking key: each claims its own (system, local id) and those it states.
        self._claim(reads, [*keys, *identifier_lock_keys(record)])
        known_read = reads.add(_KNOWN, {"system": record.system, "local_id": record.local_id})
        found = reads.add(self._candidate_statement(dialect), {"keys": keys}) if keys else None
        # The golden records a steward said this record is not the person of (usually none).
        apart_read = reads.add(_NOT_SAME_OF_RECORD, {"system": record.system, "local_id": record.local_id})
        # The records holding an identifier it states, or stating one of its own or the same.
        identified = self._identified(reads, record)
        next_id = reads.add(_NEXT_SOURCE_ID[dialect])
        reads.run()
        known = known_read.first()
        if known is not None:
            if known.digest == digest:
                return Resolution(known.golden_id, "unchanged", known.source_record_id)
            source = SourceVersion(next_id.scalar(), record, now, exchange_id)
            return self._update_known(connection, known, source, digest, keys, matcher, now=now, actor=actor)

        candidates = [(_version(row), row.golden_id) for row in found.rows] if found is not None else []
        # Records named by a system identifier are candidates even without a shared blocking key.
        seen = {c.id for c, _golden in candidates}
        for pending in identified:
            for row in pending.rows:
                if row.id not in seen:
                    seen.add(row.id)
                    candidates.append((_version(row), row.golden_id))
        # A steward said this record is not the person of some golden records: never again
        # linked to them nor proposed with them.
        apart = {row.golden_id for row in apart_read.rows}
        candidates = [(c, golden) for c, golden in candidates if golden not in apart]
        # Candidates grouped by golden record: two records of one person are one answer, not an
        # ambiguity, and a golden record holding a conflicting record cannot take this one blindly.
        decision: Decision = matcher.decide(
            record, [c.record for c, _golden in candidates], [golden for _c, golden in candidates]
        )
        source = SourceVersion(next_id.scalar(), record, now, exchange_id)
        linked_to: str | None = None
        golden, linked_sources = None, []
        if decision.outcome in ("link", "review") and decision.candidate is not None:
            linked_to = _golden_of(candidates, decision.candidate)
            # Round trip 2: the golden record's values (to check the link against it as a whole)
            # and, for a link, the record locked with its last version and its sources.
            golden_reads = Pipeline(connection)
            values = None
            if _needs_golden_check(decision):
                values = golden_reads.add(_GOLDEN_VALUES, {"golden_id": linked_to})
            if decision.outcome == "link":
                state = golden_reads.add(_GOLDEN_STATE, {"golden_id": linked_to})
                sources = golden_reads.add(_SOURCES_OF, {"golden_id": linked_to})
            golden_reads.run()
            if values is not None:
                decision = _checked_against_golden(record, linked_to, decision, matcher, values.rows)
            if decision.outcome == "link":
                golden = _Golden(*state.first())
                linked_sources = [_version(row) for row in sources.rows] if golden.status == "active" else []
        explanation = decision.explanation
        probability = explanation.probability if explanation else None
        # Round trip 3: every write (the commit is the caller's).
        writes = Pipeline(connection)
        writes.add(_INSERT_SOURCE, _source_row(record, digest, 1, source))
        writes.add_many(_INSERT_KEY, [{"key": key[:120], "source_record_id": source.id} for key in keys])
        writes.add_many(_INSERT_STATED, _stated_rows(record, source.id))
        if decision.outcome == "link" and linked_to is not None and golden is not None:
            link = f"rule:{explanation.rule}" if explanation and explanation.rule else "score"
            writes.add(_INSERT_XREF, _xref_row(record, source.id, linked_to, link, probability, now))
            if golden.status == "active":
                linked_sources = sorted([*linked_sources, source], key=lambda s: s.id)
            self._derive(
                writes, linked_to, golden, linked_sources, now=now, cause="source_linked", actor=actor
            )
            writes.run()
            return Resolution(linked_to, "link", source.id, explanation)
        golden_id = new_id()
        writes.add(_INSERT_GOLDEN, _golden_row(golden_id, now))
        writes.add(_INSERT_XREF, _xref_row(record, source.id, golden_id, "new", probability, now))
        self._derive(writes, golden_id, _NEW_GOLDEN, [source], now=now, cause="created", actor=actor)
        task = None
        if decision.outcome == "review" and decision.candidate is not None and explanation is not None:
            task = writes.add(_INSERT_TASK, _task_row(source.id, golden_id, candidates, decision, now))
        writes.run()
        if task is not None:
            return Resolution(golden_id, "review", source.id, explanation, task.scalar())
        return Resolution(golden_id, "new", source.id, explanation)

    def _update_known(
        self,
        connection: Connection,
        known: Row[Any],
        source: SourceVersion,
        digest: str,
        keys: list[str],
        matcher: Matcher,
        *,
        now: datetime,
        actor: str,
    ) -> Resolution:
        """A known (system, local id) sent with new content: its new version becomes the current
        source record, indexed under its new keys, and the golden record is derived again. Two
        round trips after the first: the golden record (locked) with its sources, then the writes;
        the golden record's sources are those read with the new version in place of the old.

        A known record stays where it is: moving it to another golden record is a merge, which a
        steward decides. So a system identifier it newly states that another golden record holds
        (or states) opens a review task between the two (rule ``identifier_conflict``), unless a
        steward already decided the record is not the person of that golden record
        (:meth:`not_same_as_record`)."""
        record = source.record
        reads = Pipeline(connection)
        state = reads.add(_GOLDEN_STATE, {"golden_id": known.golden_id})
        current = reads.add(_SOURCES_OF, {"golden_id": known.golden_id})
        holding = [reads.add(_HOLDING, {"system": s, "local_id": i}) for s, i in record.identifiers]
        stating = [reads.add(_STATING, {"system": s, "local_id": i}) for s, i in record.identifiers]
        reads.run()
        golden = _Golden(*state.first())
        previous = next((_version(row) for row in current.rows if row.id == known.source_record_id), None)
        sources: list[SourceVersion] = []
        if golden.status == "active":
            kept = [_version(row) for row in current.rows if row.id != known.source_record_id]
            sources = sorted([*kept, source], key=lambda s: s.id)
        new_ids = set(record.identifiers) - set(previous.record.identifiers if previous else ())
        named: dict[str, SourceVersion] = {}
        for (system, local_id), pending in zip(
            [*record.identifiers, *record.identifiers], [*holding, *stating], strict=True
        ):
            if (system, local_id) not in new_ids:
                continue
            for row in pending.rows:
                if row.golden_id != known.golden_id and row.golden_id not in named:
                    named[row.golden_id] = _version(row)
        if named:
            apart = self.not_same_as_record(connection, record.key, set(named))
            named = {golden_id: v for golden_id, v in named.items() if golden_id not in apart}
        writes = Pipeline(connection)
        writes.add(_INSERT_SOURCE, _source_row(record, digest, known.version + 1, source))
        writes.add(_DELETE_KEYS, {"source_record_id": known.source_record_id})
        writes.add_many(_INSERT_KEY, [{"key": key[:120], "source_record_id": source.id} for key in keys])
        writes.add(_DELETE_STATED, {"source_record_id": known.source_record_id})
        writes.add_many(_INSERT_STATED, _stated_rows(record, source.id))
        writes.add(
            _SET_XREF_SOURCE,
            {"system": record.system, "local_id": record.local_id, "new_source_id": source.id},
        )
        self._derive(writes, known.golden_id, golden, sources, now=now, cause="source_updated", actor=actor)
        tasks, explanation = [], None
        for golden_id, other in sorted(named.items()):
            why = matcher.explain(record, other.record)
            explanation = explanation or why
            decision = Decision("review", other.record, why)
            row = _task_row(
                source.id, known.golden_id, [(other, golden_id)], decision, now, rule=IDENTIFIER_CONFLICT_RULE
            )
            tasks.append(writes.add(_INSERT_TASK, row))
        writes.run()
        if tasks:
            return Resolution(known.golden_id, "updated", source.id, explanation, tasks[0].scalar())
        return Resolution(known.golden_id, "updated", source.id)

    def _claim(self, pipeline: Pipeline, keys: Iterable[str]) -> None:
        """Take turns with every writer that could find this record among its candidates, or be
        found among ours: two records of one new person resolved at once by two workers would
        otherwise each read no candidate and make two golden records.

        Two records are candidates of one another only if they share a blocking key, so a lock per
        key suffices: PostgreSQL transaction-scoped advisory locks, taken in one order (no
        deadlock between claimers), before the candidates are read (READ COMMITTED: that read then
        sees what the previous holder committed). SQLite needs none: each write transaction begins
        IMMEDIATE, so the whole resolution already runs alone."""
        if pipeline.connection.dialect.name != "postgresql":
            return
        locks = sorted({_lock_id(key) for key in keys})
        if locks:
            pipeline.add(_CLAIM_KEYS, {"locks": locks})

    def candidates(self, connection: Connection, keys: Iterable[str]) -> list[tuple[SourceVersion, str]]:
        """Current source records sharing blocking keys with the incoming one, with their golden id:
        the ``max_candidates`` sharing the most keys (the same person shares several; a namesake in
        a large block shares one), read through the key index, then by primary keys only."""
        keys = sorted(set(keys))
        if not keys:
            return []
        reads = Pipeline(connection)
        found = reads.add(self._candidate_statement(connection.dialect.name), {"keys": keys})
        reads.run()
        return [(_version(row), row.golden_id) for row in found.rows]

    def _candidate_statement(self, dialect: str) -> Select[Any]:
        """The candidates' SELECT, built once per dialect (and limits): PostgreSQL takes the keys as
        one array (``unnest``), SQLite as one JSON array (``json_each``): one parameter however
        many keys.

        Over-full keys are left out: a key held by more than ``max_key_records`` records (a common
        surname and birth year, a placeholder date, a shared switchboard number) would drag its whole
        block in, and grow with the population. Each key is first probed for its
        (``max_key_records`` + 1)-th most recent record, reading at most that many index entries;
        a key that has one is over-full and is not read when the record has another key: the same
        person shares the more selective ones (birth date + surname sound, + given name sound,
        address...). A record whose every key is over-full reads the ``max_key_records`` most
        recent records of each, so no lookup reads more than ~2 × ``max_key_records`` index
        entries per key."""
        cache_key = (dialect, self.max_candidates, self.max_key_records)
        statement = self._candidates.get(cache_key)
        if statement is not None:
            return statement
        shared = func.count().label("shared")
        if dialect == "postgresql":
            wanted = (
                func.unnest(bindparam("keys", type_=ARRAY(KEYS.c.key.type)))
                .table_valued("value")
                .render_derived(name="wanted")  # unnest(...) AS wanted(value)
            )
        else:
            wanted = func.json_each(bindparam("keys", type_=JSON)).table_valued("value").alias("wanted")
        probe = KEYS.alias("probe")
        # The newest record past the cap, if any: a key with one holds more than the cap.
        edge = (
            select(probe.c.source_record_id)
            .where(probe.c.key == wanted.c.value)
            .order_by(probe.c.source_record_id.desc())
            .limit(1)
            .offset(self.max_key_records)
            .scalar_subquery()
        )
        sized = select(wanted.c.value.label("key"), edge.label("edge")).cte("sized")
        selective = select(sized.c.key).where(sized.c.edge.is_(None)).exists()
        used = select(sized.c.key, sized.c.edge).where(or_(sized.c.edge.is_(None), ~selective)).cte("used")
        ranked = (
            select(KEYS.c.source_record_id, shared)
            .select_from(
                used.join(
                    KEYS,
                    and_(KEYS.c.key == used.c.key, KEYS.c.source_record_id > func.coalesce(used.c.edge, 0)),
                )
            )
            .group_by(KEYS.c.source_record_id)
            .order_by(shared.desc(), KEYS.c.source_record_id)
            .limit(self.max_candidates)
            .subquery()
        )
        # Only a record's current version is indexed and may match; the cross-reference is found
        # by its primary key (system, local id).
        current = and_(
            XREFS.c.system == SOURCES.c.system,
            XREFS.c.local_id == SOURCES.c.local_id,
            XREFS.c.source_record_id == SOURCES.c.id,
        )
        statement = (
            select(
                SOURCES.c.id,
                SOURCES.c.record,
                SOURCES.c.received_at,
                SOURCES.c.exchange_id,
                XREFS.c.golden_id,
            )
            .select_from(ranked.join(SOURCES, SOURCES.c.id == ranked.c.source_record_id).join(XREFS, current))
            .order_by(ranked.c.shared.desc(), SOURCES.c.id)
        )
        self._candidates[cache_key] = statement
        return statement

    def reindex(self, connection: Connection, matcher: Matcher, *, after: int, limit: int) -> list[int]:
        """Blocking keys of the next ``limit`` current source records (by id, after ``after``)
        computed again, e.g. after the blocking rules changed; returns their ids (none at the end)."""
        rows = connection.execute(
            select(SOURCES.c.id, SOURCES.c.record)
            .join(XREFS, XREFS.c.source_record_id == SOURCES.c.id)
            .where(SOURCES.c.id > after)
            .order_by(SOURCES.c.id)
            .limit(limit)
        ).all()
        ids = [row.id for row in rows]
        if not ids:
            return ids
        connection.execute(delete(KEYS).where(KEYS.c.source_record_id.in_(ids)))
        keys = [
            {"key": key[:120], "source_record_id": row.id}
            for row in rows
            for key in sorted(matcher.blocking_keys(record_from_json(row.record)))
        ]
        if keys:
            connection.execute(insert(KEYS), keys)
        return ids

    # ------------------------------------------------------------------ golden records

    def sources_of(self, connection: Connection, golden_id: str) -> list[SourceVersion]:
        return [_version(row) for row in connection.execute(_SOURCES_OF, {"golden_id": golden_id})]

    def rederive(
        self, connection: Connection, golden_id: str, *, now: datetime, cause: str, actor: str
    ) -> int:
        """Golden values derived again from the current sources; a new version if anything changed.
        Returns the golden record's version after the call."""
        # The record, locked, and its last version in one round trip.
        golden = connection.execute(_GOLDEN_STATE, {"golden_id": golden_id}).one()
        sources = self.sources_of(connection, golden_id) if golden.status == "active" else []
        writes = Pipeline(connection)
        version = self._derive(writes, golden_id, golden, sources, now=now, cause=cause, actor=actor)
        writes.run()
        return version

    def _derive(
        self,
        writes: Pipeline,
        golden_id: str,
        golden: _Golden,
        sources: list[SourceVersion],
        *,
        now: datetime,
        cause: str,
        actor: str,
    ) -> int:
        """Add to ``writes`` the golden values derived from ``sources`` and a new version, unless
        nothing changed since ``golden``'s last version; returns the version after the writes."""
        values, snapshot = self._snapshot(sources)
        if golden.version > 0:
            last = (golden.last, golden.last_status, golden.last_merged_into)
            if last == (snapshot, golden.status, golden.merged_into):
                return golden.version
            writes.add(_DELETE_VALUES, {"golden_id": golden_id})
        version = golden.version + 1
        _add_values(writes, golden_id, values)
        _add_version(writes, golden_id, version, snapshot, golden, now=now, cause=cause, actor=actor)
        writes.add(_SET_GOLDEN_VERSION, {"golden_id": golden_id, "new_version": version, "now": now})
        return version

    def _snapshot(self, sources: list[SourceVersion]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The golden values derived from ``sources`` and the version snapshot that records them."""
        values = derive(sources, self.policy)
        snapshot = {
            "values": {
                a: {"value": v.value, "lineage": v.lineage.as_json()} for a, v in sorted(values.items())
            },
            "xrefs": sorted([s.system, s.local_id] for s in sources),
        }
        return values, snapshot

    # ------------------------------------------------------------------ batch (import)

    def reserve(self, connection: Connection, keys: Iterable[str], count: int) -> tuple[int, list[int]]:
        """Before writing a batch's golden records: take turns with real-time writers on their
        blocking keys (as :meth:`resolve` does), count the stored cross-references (the batch checks
        nobody else wrote since it matched) and reserve ``count`` source record ids, in order."""
        reads = Pipeline(connection)
        self._claim(reads, keys)
        stored = reads.add(_COUNT_XREFS)
        if connection.dialect.name == "postgresql":
            ids = reads.add(_NEXT_SOURCE_IDS, {"count": count})
        else:
            ids = reads.add(_NEXT_SOURCE_ID["sqlite"])
        reads.run()
        if connection.dialect.name == "postgresql":
            reserved = sorted(row[0] for row in ids.rows)
        else:
            first = ids.scalar()
            reserved = list(range(first, first + count))
        return stored.scalar(), reserved

    def known_local_ids(self, connection: Connection, system: str, local_ids: Sequence[str]) -> set[str]:
        """Which of ``local_ids`` the store holds for ``system`` (read by primary key, in chunks)."""
        known: set[str] = set()
        for chunk in _chunks(local_ids):
            known.update(
                connection.execute(
                    select(XREFS.c.local_id).where(XREFS.c.system == system, XREFS.c.local_id.in_(chunk))
                ).scalars()
            )
        return known

    def neighbourhood(
        self,
        connection: Connection,
        keys: Iterable[Collection[str]],
        identifiers: Iterable[tuple[str, str]],
        *,
        max_block: int,
    ) -> Neighbourhood:
        """The stored records a batch of new records must be matched against, and only those: every
        current record of each golden record holding a record that

        - shares a blocking key with the batch (``keys``: the new records' keys, in batches read
          one after the other, so the caller never holds the whole file's keys), in a block of
          fewer than ``max_block`` stored records (a larger block is skipped by the batch's
          blocking anyway, and is not read: memory follows the file's blocks, not the population);
        - or holds or states one of ``identifiers`` (the new records' own (system, local id) and
          those they state: the "same system identifier" rule).

        Whole golden records, because a record joins a golden record only if none of its records
        is in conflict with it, and the golden values are derived again from all of them. Versions
        are read before the records: a golden record changed while the batch decides has another
        version when the batch writes (:meth:`unchanged`). An empty store reads nothing more."""
        population = connection.execute(_COUNT_XREFS).scalar_one()
        if not population:
            return Neighbourhood([], [], {}, 0)
        ids: set[int] = set()
        small = self._small_keys_statement(connection.dialect.name, max_block)
        for batch in keys:
            wanted = sorted({key[:120] for key in batch})
            for start in range(0, len(wanted), _KEY_CHUNK):
                kept = list(connection.execute(small, {"keys": wanted[start : start + _KEY_CHUNK]}).scalars())
                for part in _chunks(kept):
                    ids.update(
                        connection.execute(
                            select(KEYS.c.source_record_id).where(KEYS.c.key.in_(part))
                        ).scalars()
                    )
        named = sorted(set(identifiers))
        for chunk in _chunks(named):
            ids.update(connection.execute(select(XREFS.c.source_record_id).where(_key_in(chunk))).scalars())
            stating = tuple_(STATED.c.system, STATED.c.local_id).in_([tuple(key) for key in chunk])
            ids.update(connection.execute(select(STATED.c.source_record_id).where(stating)).scalars())
        current = and_(
            XREFS.c.system == SOURCES.c.system,
            XREFS.c.local_id == SOURCES.c.local_id,
            XREFS.c.source_record_id == SOURCES.c.id,
        )
        goldens: set[str] = set()
        for chunk in _chunks(sorted(ids)):
            goldens.update(
                connection.execute(
                    select(XREFS.c.golden_id)
                    .select_from(SOURCES.join(XREFS, current))
                    .where(SOURCES.c.id.in_(chunk))
                ).scalars()
            )
        versions: dict[str, int] = {}
        for chunk in _chunks(sorted(goldens)):
            rows = connection.execute(
                select(GOLDEN.c.id, GOLDEN.c.version).where(
                    GOLDEN.c.id.in_(chunk), GOLDEN.c.status == "active"
                )
            )
            versions.update((row.id, row.version) for row in rows)
        sources: list[SourceVersion] = []
        golden_ids: list[str] = []
        for chunk in _chunks(sorted(versions)):
            for row in connection.execute(
                select(*_VERSION_COLUMNS, XREFS.c.golden_id)
                .join(XREFS, XREFS.c.source_record_id == SOURCES.c.id)
                .where(XREFS.c.golden_id.in_(chunk))
                .order_by(XREFS.c.golden_id, SOURCES.c.id)
            ):
                sources.append(_version(row))
                golden_ids.append(row.golden_id)
        return Neighbourhood(sources, golden_ids, versions, population)

    def _small_keys_statement(self, dialect: str, max_block: int) -> Select[Any]:
        """Of the keys given (one array parameter), those held by fewer than ``max_block`` records,
        each probed for its ``max_block``-th record (reading at most that many index entries)."""
        cache_key = ("small", dialect, max_block)
        statement = self._candidates.get(cache_key)
        if statement is not None:
            return statement
        if dialect == "postgresql":
            wanted = (
                func.unnest(bindparam("keys", type_=ARRAY(KEYS.c.key.type)))
                .table_valued("value")
                .render_derived(name="wanted")
            )
        else:
            wanted = func.json_each(bindparam("keys", type_=JSON)).table_valued("value").alias("wanted")
        edge = (
            select(KEYS.c.source_record_id)
            .where(KEYS.c.key == wanted.c.value)
            .order_by(KEYS.c.source_record_id)
            .limit(1)
            .offset(max_block - 1)
            .scalar_subquery()
        )
        statement = select(wanted.c.value).where(edge.is_(None))
        self._candidates[cache_key] = statement
        return statement

    def unchanged(self, connection: Connection, versions: dict[str, int]) -> bool:
        """Lock these golden records (in id order, as merges do) and tell whether each is still
        active at the version a batch read: if one was linked, updated, merged or split since,
        the batch's decision about it may be stale."""
        found: dict[str, Any] = {}
        for chunk in _chunks(sorted(versions)):
            for row in connection.execute(
                select(GOLDEN.c.id, GOLDEN.c.status, GOLDEN.c.version)
                .where(GOLDEN.c.id.in_(chunk))
                .order_by(GOLDEN.c.id)
                .with_for_update()
            ):
                found[row.id] = row
        return all(
            golden_id in found and found[golden_id].status == "active" and found[golden_id].version == version
            for golden_id, version in versions.items()
        )

    def write_new_golden_records(
        self,
        connection: Connection,
        clusters: Sequence[tuple[str, Sequence[NewMember]]],
        tasks: Sequence[NewTask],
        *,
        now: datetime,
        actor: str,
        joining: Sequence[JoiningRecords] = (),
    ) -> None:
        """Golden records a batch built from new source records, with the rows real-time
        resolution writes when it meets the members one after the other: each member's source
        version and blocking keys, the golden record, one cross-reference per member (``new`` for
        the first, the link's rule or score after), a version per member (``created``, then
        ``source_linked``, each derived from the members so far) and the golden values of all of
        them with their lineage; then the review tasks. One round trip of writes (the commit is the
        caller's); the ids were taken with :meth:`reserve`.

        ``joining``: new source records linked to stored golden records (checked
        :meth:`unchanged` first), written as real time links each: its source version, keys and
        cross-reference, and per record a version of the golden record (``source_linked``) derived
        from its stored sources and the records linked so far; the golden values of the last."""
        writes = Pipeline(connection)
        members = [m for _golden_id, ms in clusters for m in ms] + [m for j in joining for m in j.members]
        writes.add_many(
            _INSERT_SOURCE,
            [_source_row(m.source.record, record_digest(m.source.record), 1, m.source) for m in members],
        )
        writes.add_many(
            _INSERT_KEY,
            [{"key": key[:120], "source_record_id": m.source.id} for m in members for key in m.keys],
        )
        writes.add_many(
            _INSERT_STATED, [row for m in members for row in _stated_rows(m.source.record, m.source.id)]
        )
        for golden_id, cluster in clusters:
            row = _golden_row(golden_id, now)
            row["version"] = len(cluster)
            writes.add(_INSERT_GOLDEN, row)
            writes.add_many(
                _INSERT_XREF,
                [
                    _xref_row(m.source.record, m.source.id, golden_id, m.link, m.probability, now)
                    for m in cluster
                ],
            )
            values: dict[str, Any] = {}
            for version in range(1, len(cluster) + 1):
                values, snapshot = self._snapshot([m.source for m in cluster[:version]])
                cause = "created" if version == 1 else "source_linked"
                _add_version(
                    writes, golden_id, version, snapshot, _NEW_GOLDEN, now=now, cause=cause, actor=actor
                )
            _add_values(writes, golden_id, values)
        for join in joining:
            writes.add_many(
                _INSERT_XREF,
                [
                    _xref_row(m.source.record, m.source.id, join.golden_id, m.link, m.probability, now)
                    for m in join.members
                ],
            )
            golden = _Golden("active", None, join.version, None, None, None)
            sources = list(join.stored)
            for step, m in enumerate(join.members, start=1):
                sources = sorted([*sources, m.source], key=lambda s: s.id)
                values, snapshot = self._snapshot(sources)
                _add_version(
                    writes,
                    join.golden_id,
                    join.version + step,
                    snapshot,
                    golden,
                    now=now,
                    cause="source_linked",
                    actor=actor,
                )
            writes.add(_DELETE_VALUES, {"golden_id": join.golden_id})
            _add_values(writes, join.golden_id, values)
            writes.add(
                _SET_GOLDEN_VERSION,
                {"golden_id": join.golden_id, "new_version": join.version + len(join.members), "now": now},
            )
        writes.add_many(
            _INSERT_TASK_ROWS,
            [
                _task_values(
                    t.source_record_id,
                    t.golden_id,
                    t.candidate_source_record_id,
                    t.candidate_golden_id,
                    t.explanation,
                    now,
                )
                for t in tasks
            ],
        )
        writes.run()

    def current_id(self, connection: Connection, golden_id: str) -> str:
        """Where a golden id lives now: itself, or the record it was merged into (transitively)."""
        seen = set()
        while True:
            row = connection.execute(
                select(GOLDEN.c.status, GOLDEN.c.merged_into).where(GOLDEN.c.id == golden_id)
            ).first()
            if row is None:
                raise UnknownGolden(f"no golden record {golden_id!r}")
            if row.status != "merged" or row.merged_into is None or golden_id in seen:
                return golden_id
            seen.add(golden_id)
            golden_id = row.merged_into

    # ------------------------------------------------------------------ merge and unmerge

    def merge(
        self,
        connection: Connection,
        survivor: str,
        absorbed: str,
        *,
        now: datetime,
        actor: str,
        reason: str | None = None,
        task_id: int | None = None,
    ) -> MergeResult:
        """Move every cross-reference of ``absorbed`` to ``survivor``; both re-derived, both versioned."""
        if survivor == absorbed:
            raise NotActive("a golden record cannot be merged with itself", {"golden_id": survivor})
        self._require_active(connection, survivor, absorbed)
        rows = connection.execute(
            select(XREFS.c.system, XREFS.c.local_id, XREFS.c.linked_at)
            .where(XREFS.c.golden_id == absorbed)
            .order_by(XREFS.c.system, XREFS.c.local_id)
        ).all()
        moved = [(row.system, row.local_id) for row in rows]
        systems = self.systems_told(connection, [survivor, absorbed])
        connection.execute(
            update(XREFS).where(XREFS.c.golden_id == absorbed).values(golden_id=survivor, linked_at=now)
        )
        connection.execute(
            update(GOLDEN).where(GOLDEN.c.id == absorbed).values(status="merged", merged_into=survivor)
        )
        self.rederive(connection, absorbed, now=now, cause="merged", actor=actor)
        self.rederive(connection, survivor, now=now, cause="merged", actor=actor)
        event_id = connection.execute(
            insert(EVENTS).returning(EVENTS.c.id),
            {
                "at": now,
                "kind": "merge",
                "actor": actor[:100],
                "golden_id": survivor,
                "other_id": absorbed,
                # with each record's own link time, which an unmerge gives back (flows route with
                # a system's most recently linked record: $.golden.identifiers)
                "moved": [[row.system, row.local_id, row.linked_at.isoformat()] for row in rows],
                "systems": systems,
                "task_id": task_id,
                "reason": reason,
            },
        ).scalar_one()
        self._close_joined_tasks(connection, survivor, event_id, now=now, actor=actor)
        return MergeResult(event_id, survivor, absorbed, moved, systems)

    def _close_joined_tasks(
        self, connection: Connection, golden_id: str, event_id: int, *, now: datetime, actor: str
    ) -> None:
        """Close, as ``linked``, the open tasks whose two records ``golden_id`` now both holds: the
        merge answered their question, which must not stay in the review queue."""
        joined = [
            task_id
            for task_id, (a, b) in self.task_goldens(connection, open_only=True, golden_id=golden_id).items()
            if a == b == golden_id
        ]
        _close_open_tasks(connection, joined, "linked", f"{MERGED_TASK}{event_id}", now=now, actor=actor)

    def unmerge(
        self,
        connection: Connection,
        survivor: str,
        restored: str,
        *,
        now: datetime,
        actor: str,
        reason: str | None = None,
    ) -> MergeResult:
        """Split ``restored`` back out of ``survivor``: the records its merge moved go back to it,
        and so do the requests resolved from those records while they were merged."""
        merge = connection.execute(
            select(EVENTS)
            .where(
                EVENTS.c.kind == "merge",
                EVENTS.c.golden_id == survivor,
                EVENTS.c.other_id == restored,
                EVENTS.c.undone_by.is_(None),
            )
            .order_by(EVENTS.c.id.desc())
            .limit(1)
        ).first()
        if merge is None:
            raise NothingToUnmerge(
                f"{restored} was not merged into {survivor} (or was split back already)",
                {"golden_id": survivor, "restore": restored},
            )
        self._lock(connection, survivor, restored)
        self._require_active(connection, survivor)
        linked_before = {(m[0], m[1]): datetime.fromisoformat(m[2]) for m in merge.moved if len(m) > 2}
        still_here = set()
        for chunk in _chunks([(m[0], m[1]) for m in merge.moved]):
            still_here |= {
                (row.system, row.local_id)
                for row in connection.execute(
                    select(XREFS.c.system, XREFS.c.local_id).where(
                        XREFS.c.golden_id == survivor,
                        _key_in(chunk),
                    )
                )
            }
        back = sorted(still_here)
        for chunk in _chunks(back):
            connection.execute(
                _RESTORE_XREF,
                [
                    {"k_system": system, "k_local_id": local_id, "golden_id": restored}
                    | {"linked_at": linked_before.get((system, local_id), now)}
                    for system, local_id in chunk
                ],
            )
            # Requests resolved while the two were one, from a record that goes back: they are the
            # restored person's (a request's source record is (request_system, citizen_ref)).
            refs = [local_id for system, local_id in chunk if system == self.request_system]
            if refs:
                connection.execute(
                    update(REQUESTS)
                    .where(REQUESTS.c.golden_id == survivor, REQUESTS.c.citizen_ref.in_(refs))
                    .values(golden_id=restored)
                )
        connection.execute(
            update(GOLDEN).where(GOLDEN.c.id == restored).values(status="active", merged_into=None)
        )
        self.rederive(connection, restored, now=now, cause="unmerged", actor=actor)
        self.rederive(connection, survivor, now=now, cause="unmerged", actor=actor)
        systems = self.systems_told(connection, [survivor, restored])
        event_id = connection.execute(
            insert(EVENTS).returning(EVENTS.c.id),
            {
                "at": now,
                "kind": "unmerge",
                "actor": actor[:100],
                "golden_id": survivor,
                "other_id": restored,
                "moved": [list(key) for key in back],
                "systems": systems,
                "reason": reason,
            },
        ).scalar_one()
        connection.execute(update(EVENTS).where(EVENTS.c.id == merge.id).values(undone_by=event_id))
        return MergeResult(event_id, survivor, restored, back, systems)

    def systems_told(self, connection: Connection, golden_ids: Sequence[str]) -> list[str]:
        """Systems that hold or were sent either identity: its source systems and the systems its
        requests were routed to."""
        holders = connection.execute(
            select(XREFS.c.system).where(XREFS.c.golden_id.in_(golden_ids)).distinct()
        ).scalars()
        routed = connection.execute(
            select(REQUESTS.c.target_system)
            .where(REQUESTS.c.golden_id.in_(golden_ids), REQUESTS.c.target_system.is_not(None))
            .distinct()
        ).scalars()
        return sorted({*holders, *routed})

    def _lock(self, connection: Connection, *golden_ids: str) -> None:
        """Lock golden records in id order (PostgreSQL): concurrent merges cannot deadlock."""
        connection.execute(
            select(GOLDEN.c.id).where(GOLDEN.c.id.in_(golden_ids)).order_by(GOLDEN.c.id).with_for_update()
        )

    def _require_active(self, connection: Connection, *golden_ids: str) -> None:
        # Locked in id order: two stewards merging the same pair both ways cannot deadlock.
        rows = {
            row.id: row
            for row in connection.execute(
                select(GOLDEN.c.id, GOLDEN.c.status, GOLDEN.c.merged_into)
                .where(GOLDEN.c.id.in_(golden_ids))
                .order_by(GOLDEN.c.id)
                .with_for_update()
            )
        }
        for golden_id in golden_ids:
            row = rows.get(golden_id)
            if row is None:
                raise UnknownGolden(f"no golden record {golden_id!r}")
            if row.status != "active":
                raise NotActive(
                    f"golden record {golden_id} was merged into {row.merged_into}",
                    {"golden_id": golden_id, "merged_into": row.merged_into},
                )

    # ------------------------------------------------------------------ stewardship

    def decide(
        self,
        connection: Connection,
        task_id: int,
        decision: str,
        *,
        now: datetime,
        actor: str,
        reason: str | None = None,
    ) -> MergeResult | None:
        """A steward's answer to a review task: ``link`` merges the two golden records (the
        candidate's, older, survives); ``not_same`` keeps them apart. Returns the merge, if any."""
        task = connection.execute(select(TASKS).where(TASKS.c.id == task_id)).first()
        if task is None:
            raise UnknownTask(f"no review task {task_id}")
        if task.status != "open":
            raise TaskDecided(
                f"task {task_id} was decided already ({task.status} by {task.decided_by})",
                {"status": task.status, "decided_by": task.decided_by},
            )
        survivor = self.current_id(connection, task.candidate_golden_id)
        absorbed = self.current_id(connection, task.golden_id)
        if decision == "not_same" and survivor == absorbed:
            raise SameGoldenRecord(
                f"task {task_id}: both records are in golden record {survivor} already; unmerge first "
                "to keep them apart",
                {"golden_id": survivor},
            )
        if decision == "link" and self.not_same_between(connection, [(survivor, absorbed)]):
            raise DecidedNotSame(
                f"task {task_id}: the golden records {survivor} and {absorbed} hold records a steward "
                "decided are not the same person",
                {"golden_id": absorbed, "candidate_golden_id": survivor},
            )
        connection.execute(
            update(TASKS)
            .where(TASKS.c.id == task_id)
            .values(
                status="linked" if decision == "link" else "not_same",
                decided_at=now,
                decided_by=actor[:100],
                reason=reason,
            )
        )
        if decision != "link":
            self._remember_not_same(
                connection, task, {survivor, absorbed}, now=now, actor=actor, reason=reason
            )
            return None
        if survivor == absorbed:
            return None  # one golden record already: closed as linked, nothing to merge
        return self.merge(
            connection, survivor, absorbed, now=now, actor=actor, reason=reason, task_id=task_id
        )

    def _remember_not_same(
        self,
        connection: Connection,
        task: Any,
        pair: set[str],
        *,
        now: datetime,
        actor: str,
        reason: str | None,
    ) -> None:
        """Keep a "not the same person" as a constraint on the task's two records, and close the
        other open tasks that ask the same question: the same ``pair`` of golden records, as they
        are now."""
        keys = {
            row.id: (row.system, row.local_id)
            for row in connection.execute(
                select(SOURCES.c.id, SOURCES.c.system, SOURCES.c.local_id).where(
                    SOURCES.c.id.in_([task.source_record_id, task.candidate_source_record_id])
                )
            )
        }
        (a_system, a_local_id), (b_system, b_local_id) = (
            keys[task.source_record_id],
            keys[task.candidate_source_record_id],
        )
        connection.execute(
            insert(NOT_SAME),
            {
                "a_system": a_system,
                "a_local_id": a_local_id,
                "b_system": b_system,
                "b_local_id": b_local_id,
                "task_id": task.id,
                "decided_at": now,
                "decided_by": actor[:100],
                "reason": reason,
            },
        )
        same_question = [
            task_id
            for task_id, goldens in self.task_goldens(connection, open_only=True).items()
            if set(goldens) == pair and task_id != task.id
        ]
        _close_open_tasks(
            connection, same_question, "not_same", f"{FOLLOWED_TASK}{task.id}", now=now, actor=actor
        )

    def task_goldens(
        self,
        connection: Connection,
        *,
        open_only: bool = False,
        task_ids: Sequence[int] | None = None,
        golden_id: str | None = None,
    ) -> dict[int, tuple[str, str]]:
        """Each task's two golden records as they are now (the current golden of its two records);
        with ``golden_id``, only the tasks whose both records that golden record holds now."""
        record, candidate = SOURCES.alias("record_source"), SOURCES.alias("candidate_source")
        x_record, x_candidate = XREFS.alias("record_xref"), XREFS.alias("candidate_xref")
        query = select(
            TASKS.c.id, x_record.c.golden_id.label("a"), x_candidate.c.golden_id.label("b")
        ).select_from(
            TASKS.join(record, record.c.id == TASKS.c.source_record_id)
            .join(candidate, candidate.c.id == TASKS.c.candidate_source_record_id)
            .join(
                x_record,
                and_(x_record.c.system == record.c.system, x_record.c.local_id == record.c.local_id),
            )
            .join(
                x_candidate,
                and_(
                    x_candidate.c.system == candidate.c.system,
                    x_candidate.c.local_id == candidate.c.local_id,
                ),
            )
        )
        if open_only:
            query = query.where(TASKS.c.status == "open")
        if task_ids is not None:
            query = query.where(TASKS.c.id.in_(list(task_ids)))
        if golden_id is not None:
            query = query.where(x_record.c.golden_id == golden_id, x_candidate.c.golden_id == golden_id)
        return {row.id: (row.a, row.b) for row in connection.execute(query)}

    def not_same_between(
        self, connection: Connection, pairs: Iterable[tuple[str, str]]
    ) -> set[frozenset[str]]:
        """Of these pairs of golden ids, those holding two records a steward decided are not the
        same person (the decision follows the records through merges and unmerges)."""
        wanted = {frozenset(pair) for pair in pairs if pair[0] != pair[1]}
        if not wanted:
            return set()
        ids = sorted({golden for pair in wanted for golden in pair})
        x_a, x_b = XREFS.alias("a_xref"), XREFS.alias("b_xref")
        rows = connection.execute(
            select(x_a.c.golden_id.label("a"), x_b.c.golden_id.label("b"))
            .select_from(
                NOT_SAME.join(
                    x_a, and_(x_a.c.system == NOT_SAME.c.a_system, x_a.c.local_id == NOT_SAME.c.a_local_id)
                ).join(
                    x_b, and_(x_b.c.system == NOT_SAME.c.b_system, x_b.c.local_id == NOT_SAME.c.b_local_id)
                )
            )
            .where(x_a.c.golden_id.in_(ids), x_b.c.golden_id.in_(ids))
        )
        return wanted & {frozenset((row.a, row.b)) for row in rows}

    def not_same_as_record(
        self, connection: Connection, key: tuple[str, str], golden_ids: set[str]
    ) -> set[str]:
        """Of these golden records, those holding a record a steward decided is not the same person
        as the record ``key`` (system, local id); one round trip."""
        if not golden_ids:
            return set()
        reads = Pipeline(connection)
        found = reads.add(_NOT_SAME_OF_RECORD, {"system": key[0], "local_id": key[1]})
        reads.run()
        return {row.golden_id for row in found.rows} & golden_ids


# ---------------------------------------------------------------------- statements, built once
# Bound parameters only: each is compiled once per dialect (see hub.db.pipeline).


def _not_same_as_record() -> CompoundSelect:
    """Built once (real-time resolution reads it with the candidates, in the same round trip): the
    golden ids of records a steward decided are not the record (``:system``, ``:local_id``),
    whichever side of the decision it was on. Usually none; found through the decisions' indexes
    on each side."""
    sides = []
    for mine, theirs in (("a", "b"), ("b", "a")):
        other = XREFS.alias(f"{theirs}_xref")
        joined = NOT_SAME.join(
            other,
            and_(
                other.c.system == NOT_SAME.c[f"{theirs}_system"],
                other.c.local_id == NOT_SAME.c[f"{theirs}_local_id"],
            ),
        )
        sides.append(
            select(other.c.golden_id)
            .select_from(joined)
            .where(
                NOT_SAME.c[f"{mine}_system"] == bindparam("system"),
                NOT_SAME.c[f"{mine}_local_id"] == bindparam("local_id"),
            )
        )
    return union_all(*sides)


_NOT_SAME_OF_RECORD = _not_same_as_record()
_VERSION_COLUMNS = (SOURCES.c.id, SOURCES.c.record, SOURCES.c.received_at, SOURCES.c.exchange_id)
# The current record holding the cross-reference (:system, :local_id), with its golden id.
_HOLDING = (
    select(*_VERSION_COLUMNS, XREFS.c.golden_id)
    .join(SOURCES, SOURCES.c.id == XREFS.c.source_record_id)
    .where(XREFS.c.system == bindparam("system"), XREFS.c.local_id == bindparam("local_id"))
)
# The current records stating (:system, :local_id) as the person's identifier there.
_STATING = (
    select(*_VERSION_COLUMNS, XREFS.c.golden_id)
    .select_from(
        STATED.join(SOURCES, SOURCES.c.id == STATED.c.source_record_id).join(
            XREFS,
            and_(
                XREFS.c.system == SOURCES.c.system,
                XREFS.c.local_id == SOURCES.c.local_id,
                XREFS.c.source_record_id == SOURCES.c.id,
            ),
        )
    )
    .where(STATED.c.system == bindparam("system"), STATED.c.local_id == bindparam("local_id"))
    .order_by(SOURCES.c.id)
)
_KNOWN = (
    select(XREFS.c.golden_id, XREFS.c.source_record_id, SOURCES.c.digest, SOURCES.c.version)
    .join(SOURCES, SOURCES.c.id == XREFS.c.source_record_id)
    .where(XREFS.c.system == bindparam("system"), XREFS.c.local_id == bindparam("local_id"))
)
# The id the new source record will have: taken before the writes, because the golden record's
# lineage (written in the same round trip) names it. SQLite gives max(rowid) + 1 itself (the
# table has no AUTOINCREMENT) and the write transaction holds the only writer's lock.
_NEXT_SOURCE_ID = {
    "postgresql": text("SELECT nextval(pg_get_serial_sequence('md_source_records', 'id'))"),
    "sqlite": text("SELECT coalesce(max(id), 0) + 1 FROM md_source_records"),
}
# A batch's ids, taken together (PostgreSQL; SQLite: max + 1 onwards, under the writer's lock).
_NEXT_SOURCE_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('md_source_records', 'id')) FROM generate_series(1, :count)"
)
_COUNT_XREFS = select(func.count()).select_from(XREFS)
_GOLDEN_STATE = (
    select(
        GOLDEN.c.status,
        GOLDEN.c.merged_into,
        GOLDEN.c.version,
        VERSIONS.c.golden.label("last"),
        VERSIONS.c.status.label("last_status"),
        VERSIONS.c.merged_into.label("last_merged_into"),
    )
    .outerjoin(VERSIONS, and_(VERSIONS.c.golden_id == GOLDEN.c.id, VERSIONS.c.version == GOLDEN.c.version))
    .where(GOLDEN.c.id == bindparam("golden_id"))
    # Writers of one golden record take turns (PostgreSQL; SQLite has one writer).
    .with_for_update(of=GOLDEN)
)
_SOURCES_OF = (
    select(SOURCES.c.id, SOURCES.c.record, SOURCES.c.received_at, SOURCES.c.exchange_id)
    .join(XREFS, XREFS.c.source_record_id == SOURCES.c.id)
    .where(XREFS.c.golden_id == bindparam("golden_id"))
    .order_by(SOURCES.c.id)
)
_GOLDEN_VALUES = select(VALUES.c.attribute, VALUES.c.value).where(
    VALUES.c.golden_id == bindparam("golden_id")
)
_INSERT_SOURCE = insert_values(
    SOURCES, "id", "system", "local_id", "version", "record", "digest", "received_at", "exchange_id"
)
_INSERT_KEY = insert_values(KEYS, "key", "source_record_id")
_INSERT_STATED = insert_values(STATED, "system", "local_id", "source_record_id")
_DELETE_STATED = delete(STATED).where(STATED.c.source_record_id == bindparam("source_record_id"))
_INSERT_GOLDEN = insert_values(GOLDEN, "id", "status", "merged_into", "version", "created_at", "updated_at")
_INSERT_XREF = insert_values(
    XREFS, "system", "local_id", "golden_id", "source_record_id", "link", "probability", "linked_at"
)
_INSERT_VALUE = insert_values(
    VALUES,
    "golden_id",
    "attribute",
    "value",
    "source_record_id",
    "system",
    "local_id",
    "exchange_id",
    "observed_at",
    "rule",
    "source_updated_at",
)
_INSERT_VERSION = insert_values(
    VERSIONS, "golden_id", "version", "at", "cause", "actor", "status", "merged_into", "golden"
)
_INSERT_TASK_ROWS = insert_values(
    TASKS,
    "status",
    "created_at",
    "source_record_id",
    "golden_id",
    "candidate_source_record_id",
    "candidate_golden_id",
    "probability",
    "total",
    "explanation",
    "rule",
)
_INSERT_TASK = _INSERT_TASK_ROWS.returning(TASKS.c.id)
# An unmerge gives a moved record back to its golden record, with its link time from before the merge.
_RESTORE_XREF = (
    update(XREFS)
    .where(XREFS.c.system == bindparam("k_system"), XREFS.c.local_id == bindparam("k_local_id"))
    .values(golden_id=bindparam("golden_id"), linked_at=bindparam("linked_at", type_=XREFS.c.linked_at.type))
)
_DELETE_VALUES = delete(VALUES).where(VALUES.c.golden_id == bindparam("golden_id"))
_DELETE_KEYS = delete(KEYS).where(KEYS.c.source_record_id == bindparam("source_record_id"))
_SET_XREF_SOURCE = (
    update(XREFS)
    .where(XREFS.c.system == bindparam("system"), XREFS.c.local_id == bindparam("local_id"))
    .values(source_record_id=bindparam("new_source_id"))
)
_SET_GOLDEN_VERSION = (
    update(GOLDEN)
    .where(GOLDEN.c.id == bindparam("golden_id"))
    .values(
        version=bindparam("new_version", type_=GOLDEN.c.version.type),
        updated_at=bindparam("now", type_=GOLDEN.c.updated_at.type),
    )
)
# A golden record just created: version 0 until its first derivation.
_NEW_GOLDEN = _Golden("active", None, 0, None, None, None)


def _source_row(record: IdentityRecord, digest: str, version: int, source: SourceVersion) -> dict[str, Any]:
    return {
        "id": source.id,
        "system": record.system,
        "local_id": record.local_id,
        "version": version,
        "record": record_json(record),
        "digest": digest,
        "received_at": source.received_at,
        "exchange_id": source.exchange_id,
    }


def _stated_rows(record: IdentityRecord, source_id: int) -> list[dict[str, Any]]:
    return [
        {"system": system, "local_id": local_id[:200], "source_record_id": source_id}
        for system, local_id in record.identifiers
    ]


def _golden_row(golden_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": golden_id,
        "status": "active",
        "merged_into": None,
        "version": 0,
        "created_at": now,
        "updated_at": now,
    }


def _add_values(writes: Pipeline, golden_id: str, values: dict[str, Any]) -> None:
    writes.add_many(
        _INSERT_VALUE,
        [
            {
                "golden_id": golden_id,
                "attribute": attribute,
                "value": value.value,
                "source_record_id": value.lineage.source_record_id,
                "system": value.lineage.system,
                "local_id": value.lineage.local_id,
                "exchange_id": value.lineage.exchange_id,
                "observed_at": value.lineage.observed_at,
                "rule": value.lineage.rule,
                "source_updated_at": value.lineage.updated_at,
            }
            for attribute, value in values.items()
        ],
    )


def _add_version(
    writes: Pipeline,
    golden_id: str,
    version: int,
    snapshot: dict[str, Any],
    golden: _Golden,
    *,
    now: datetime,
    cause: str,
    actor: str,
) -> None:
    writes.add(
        _INSERT_VERSION,
        {
            "golden_id": golden_id,
            "version": version,
            "at": now,
            "cause": cause,
            "actor": actor[:100],
            "status": golden.status,
            "merged_into": golden.merged_into,
            "golden": snapshot,
        },
    )


def _xref_row(
    record: IdentityRecord,
    source_id: int,
    golden_id: str,
    link: str,
    probability: float | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "system": record.system,
        "local_id": record.local_id,
        "golden_id": golden_id,
        "source_record_id": source_id,
        "link": link[:64],
        "probability": probability,
        "linked_at": now,
    }


def _task_row(
    source_id: int,
    golden_id: str,
    candidates: list[tuple[SourceVersion, str]],
    decision: Decision,
    now: datetime,
    *,
    rule: str | None = None,
) -> dict[str, Any]:
    assert decision.candidate is not None and decision.explanation is not None
    candidate = next(s for s, _g in candidates if s.record.key == decision.candidate.key)
    return _task_values(
        source_id,
        golden_id,
        candidate.id,
        _golden_of(candidates, decision.candidate),
        decision.explanation,
        now,
        rule=rule,
    )


def _task_values(
    source_id: int,
    golden_id: str,
    candidate_source_id: int,
    candidate_golden_id: str,
    explanation: Explanation,
    now: datetime,
    *,
    rule: str | None = None,
) -> dict[str, Any]:
    """A review task's row. Its ``rule`` says why a steward is asked: the decision's rule (a
    conflict, known homonyms, ambiguous_golden...; None for the score's review band) unless the
    caller names another reason (identifier_conflict)."""
    why = rule or explanation.rule
    return {
        "status": "open",
        "created_at": now,
        "source_record_id": source_id,
        "golden_id": golden_id,
        "candidate_source_record_id": candidate_source_id,
        "candidate_golden_id": candidate_golden_id,
        "probability": explanation.probability,
        "total": explanation.total,
        "explanation": explanation_json(explanation),
        "rule": why[:64] if why else None,
    }


def _needs_golden_check(decision: Decision) -> bool:
    """A deterministic rule on the birth identity (same NIR, same pivot identity) links anyway; a
    score or a stated identifier must also hold against the golden record as a whole."""
    explanation = decision.explanation
    return not (explanation is not None and explanation.rule in RULE_NAMES.values())


def _checked_against_golden(
    record: IdentityRecord, golden_id: str, decision: Decision, matcher: Matcher, values: Sequence[Any]
) -> Decision:
    """A scored link, or a link by a stated identifier, must also hold against the golden record
    as a whole: a school record without a birth place must not vouch for a record born elsewhere
    than the registry says. A pair in conflict goes to review, explained against the golden record
    (conflict named)."""
    if decision.explanation is not None and decision.explanation.rule == IDENTIFIERS_CONFLICT:
        return decision  # the question for a steward is which person the identifiers name
    golden = golden_record(golden_id, {row.attribute: row.value for row in values})
    if decision.explanation is not None and decision.explanation.rule == IDENTIFIER_RULE:
        # A stated identifier is a claim: the golden record's birth identity (the registry's,
        # say) must not say "another person", whether or not either side carries a sex.
        traits = matcher.hard_conflicts(record, golden)
        if traits:
            whole = dataclasses.replace(matcher.explain(record, golden), rule="conflict:" + ",".join(traits))
            return Decision("review", decision.candidate, whole)
        return decision
    whole = matcher.explain(record, golden)
    if whole.rule and whole.rule.startswith("conflict"):
        return Decision("review", decision.candidate, whole)
    return decision


def golden_record(golden_id: str, values: dict[str, Any]) -> IdentityRecord:
    """Golden values as one record (to compare a record with the golden record as a whole)."""
    address = values.get("address") or {}
    return IdentityRecord(
        system="golden",
        local_id=golden_id,
        birth_name=values.get("birth_name"),
        used_name=values.get("used_name"),
        given_names=tuple(values.get("given_names") or ()),
        birth_date=values.get("birth_date"),
        sex=values.get("sex"),
        birth_place=values.get("birth_place"),
        address=address.get("line"),
        postal_code=address.get("postal_code"),
        city=address.get("city"),
        email=values.get("email"),
        phone=values.get("phone"),
        nir=values.get("nir"),
    )


def explanation_json(explanation: Explanation) -> dict[str, Any]:
    return {
        "rule": explanation.rule,
        "comparisons": [
            {"field": c.field, "level": c.level, "weight": round(c.weight, 4)}
            for c in explanation.comparisons
        ],
        "total": round(explanation.total, 4),
        "probability": explanation.probability,
    }


def _version(row: Any) -> SourceVersion:
    return SourceVersion(row.id, record_from_json(row.record), row.received_at, row.exchange_id)


def _golden_of(candidates: list[tuple[SourceVersion, str]], record: IdentityRecord) -> str:
    for source, golden_id in candidates:
        if source.record.key == record.key:
            return golden_id
    raise LookupError(f"the matcher chose {record.key}, which is not among the candidates")


# Locks taken in the order given (unnest keeps the array's order; the caller sorts it).
_CLAIM_KEYS = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:locks AS bigint[])) AS k")


def identifier_lock_keys(record: IdentityRecord) -> list[str]:
    """The lock names a writer of ``record`` claims besides its blocking keys: its own (system,
    local id) and those it states (two records naming one another take turns)."""
    return [_identifier_lock_key(key) for key in (record.key, *record.identifiers)]


def _identifier_lock_key(key: tuple[str, str]) -> str:
    """The advisory lock name of a (system, local id) (apart from blocking keys: a unit separator
    cannot occur in them)."""
    return f"id\x1f{key[0]}\x1f{key[1]}"


def _lock_id(key: str) -> int:
    """A blocking key's advisory lock: 64 bits of a keyed hash, the same in every process (two keys
    sharing a lock only make their writers take turns, never a wrong answer)."""
    digest = hashlib.blake2b(key[:120].encode(), digest_size=8, person=b"md-blocking-key").digest()
    return int.from_bytes(digest, "big", signed=True)


def _close_open_tasks(
    connection: Connection, task_ids: Sequence[int], status: str, reason: str, *, now: datetime, actor: str
) -> None:
    """Close those of ``task_ids`` still open, as decided by ``actor`` for ``reason`` (a task another
    decision or a merge answered)."""
    for chunk in _chunks(task_ids):
        connection.execute(
            update(TASKS)
            .where(TASKS.c.id.in_(chunk), TASKS.c.status == "open")
            .values(status=status, decided_at=now, decided_by=actor[:100], reason=reason)
        )


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _key_in(keys: Sequence[tuple[str, str]]) -> Any:
    return tuple_(XREFS.c.system, XREFS.c.local_id).in_([tuple(key) for key in keys])
