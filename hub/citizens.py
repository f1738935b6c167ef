"""The golden citizen record as the hub's entry points use it (API, CLI, worker).

It composes the pure core (:mod:`master_data`: matching, survivorship) with the store
(:mod:`hub.master_store`) and the hub's own records: each operation is one transaction that also
writes what the hub must keep with it — the request's golden id, the journal row of a 360° view or
of a steward's decision, the outbox message that tells the systems about a merge.

Merges and unmerges reach the systems through an **event flow** (``master_data.merge_event_flow``):
the hub files a request of that flow, in the merge's own transaction, whose ``data`` says which
golden records were merged or split, the cross-references moved and the systems concerned; the
worker routes it like any démarche (its steps map and call each system). Without a configured
flow, the event is kept in ``md_events`` (shown in the history) and nothing is sent: a merge must
never wait for, nor be lost with, a back-end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, insert, not_, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from connectors.exchange import digest
from hub.db.master_models import EVENTS, GOLDEN, MODELS, SOURCES, TASKS, VALUES, VERSIONS, XREFS
from hub.db.models import EVENTS as REQUEST_EVENTS
from hub.db.models import JOURNAL, OUTBOX, REQUESTS, utcnow
from hub.ids import new_id
from hub.master_store import (
    FOLLOWED_TASK,
    MERGED_TASK,
    GoldenStore,
    JoiningRecords,
    MasterDataError,
    MergeResult,
    NewMember,
    NewTask,
    Resolution,
    UnknownGolden,
    explanation_json,
    golden_record,
    identifier_lock_keys,
    record_digest,
    record_from_json,
)
from hub.runtime import Hub
from master_data.identity import CitizenIdentity
from master_data.load_plan import plan_load
from master_data.matching import IdentityRecord, Matcher, MatchModel, deduplicate_against, estimate_model
from master_data.sources import from_identity
from master_data.stewardship import Decided, ThresholdsReport, thresholds_report, why_asked
from master_data.survivorship import SourceVersion

MODEL_TTL_S = 30.0
# Records per import transaction. Small enough that a batch holds few locks (on PostgreSQL one
# advisory lock per blocking key of its new records: ~600, not the ~3,000 of 500 records, in a lock
# table of 6,400 by default shared by every session) and keeps SQLite's single writer for ~0.2 s at a
# time, so requests keep flowing during an import; large enough that commits cost nothing (8,000
# records: 12.8 s at 500 per batch, 13.1 s at 100 on SQLite; 22.6 / 23.7 s on PostgreSQL).
IMPORT_BATCH = 100
# EM needs enough candidate pairs to tell matches from non-matches; below this the identity-practice
# defaults serve until ``hub citizens estimate`` runs on a larger population.
MIN_ESTIMATE_RECORDS = 1000
# Records EM reads at most when estimating from the stored population (an even sample beyond).
ESTIMATE_SAMPLE = 200_000
# Blocks (records sharing a key) a batch compares whole; larger ones are skipped (master_data.batch).
BATCH_MAX_BLOCK = 500
# New records whose blocking keys a batch computes at once when it reads the stored neighbourhood.
KEY_SLICE = 5000
# Open tasks checked per round trip when the thresholds report counts those the queue would list.
PENDING_CHUNK = 500
EVENT_CLIENT = "hub:master-data"


@dataclass(frozen=True)
class TaskPage:
    """A page of review tasks; ``next_after`` is the cursor of the next page, None after the last."""

    tasks: list[dict[str, Any]]
    next_after: int | None


@dataclass
class ImportSummary:
    """What an import did. Record by record, ``outcomes`` counts each record's resolution
    (``new``, ``link``, ``review``, ``updated``, ``unchanged``); a batch counts ``new`` golden
    records created, records ``link``-ed to a stored golden record, records ``joined`` to a
    golden record the batch created, and ``review_tasks`` (plus the known records' resolutions)."""

    system: str
    records: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    model: str = "stored"
    exchange_id: int | None = None
    mode: str = "record by record"
    review_tasks: int = 0
    seconds: float = 0.0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    @property
    def golden_records_created(self) -> int:
        return self.outcomes.get("new", 0) + self.outcomes.get("review", 0)


class Citizens:
    """Resolve, import, explain, merge, unmerge, review, and show the golden citizen record."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = hub.config.master_data
        self.store = GoldenStore(
            self.settings.policy(),
            self.settings.max_candidates,
            self.settings.max_key_records,
            self.settings.portal_system,
        )
        # Birth-place codes compare through the shipped commune table and the configured COG file.
        self.communes = self.settings.communes(hub.config.source.parent)
        self._matcher: Matcher | None = None
        self._model_id: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the model in use

    def matcher(self) -> Matcher:
        """The matcher over the latest stored model (checked again every 30 s, so an import's
        re-estimation reaches running workers); the identity-practice default before any."""
        with self._lock:
            if self._matcher is not None and time.monotonic() - self._checked_at < MODEL_TTL_S:
                return self._matcher
            with self.hub.db.sessions() as session:
                row = session.execute(
                    select(MODELS.c.id, MODELS.c.model).order_by(MODELS.c.id.desc())
                ).first()
            if self._matcher is None or (row is not None and row.id != self._model_id):
                model = MatchModel.from_json(row.model["json"]) if row is not None else MatchModel.default()
                thresholds = self.settings.thresholds
                self._matcher = Matcher(model, thresholds.upper, thresholds.lower, communes=self.communes)
                self._model_id = row.id if row is not None else None
            self._checked_at = time.monotonic()
            return self._matcher

    def store_model(self, connection: Connection, model: MatchModel, records: int) -> None:
        connection.execute(
            insert(MODELS), {"created_at": utcnow(), "records": records, "model": {"json": model.to_json()}}
        )
        with self._lock:
            self._checked_at = 0.0

    # ------------------------------------------------------------------ real time

    def known_golden_id(
        self, citizen: dict[str, Any], citizen_ref: str, known: tuple[str, str] | None
    ) -> str | None:
        """The golden id of a portal citizen already resolved with the same identity (the common
        case: a citizen filing another request), or None when a resolution must write. ``known`` is
        the golden id and record digest the portal's record under ``citizen_ref`` has, read with
        the request itself (no read of its own)."""
        if known is None:
            return None
        record = from_identity(
            CitizenIdentity.model_validate(citizen), self.settings.portal_system, citizen_ref
        )
        golden_id, known_digest = known
        return golden_id if known_digest == record_digest(record) else None

    def identifiers(self, golden_id: str) -> dict[str, str]:
        """Each system's own identifier of the citizen (system -> local id). A system holding the
        person twice (a duplicate of its own) gives its most recently linked record."""
        with self.hub.db.reading() as connection:
            rows = connection.execute(
                select(XREFS.c.system, XREFS.c.local_id)
                .where(XREFS.c.golden_id == golden_id)
                .order_by(XREFS.c.linked_at, XREFS.c.local_id)
            ).all()
        return {row.system: row.local_id for row in rows}

    def resolve_request(self, request_id: str, citizen: dict[str, Any], citizen_ref: str) -> str:
        """The golden id of a request's citizen (the portal's identity), stored on the request in
        the same transaction; the request's inbound journal row is the lineage's exchange."""
        record = from_identity(
            CitizenIdentity.model_validate(citizen), self.settings.portal_system, citizen_ref
        )

        def write(connection: Connection) -> Resolution:
            exchange_id = connection.execute(
                select(JOURNAL.c.id)
                .where(JOURNAL.c.request_id == request_id, JOURNAL.c.direction == "inbound")
                .order_by(JOURNAL.c.id)
                .limit(1)
            ).scalar()
            resolution = self.store.resolve(
                connection, record, self.matcher(), now=utcnow(), exchange_id=exchange_id, actor="portal"
            )
            connection.execute(
                update(REQUESTS).where(REQUESTS.c.id == request_id).values(golden_id=resolution.golden_id)
            )
            return resolution

        return self._retrying(write).golden_id

    def resolve(self, record: IdentityRecord, *, actor: str, exchange_id: int | None = None) -> Resolution:
        return self._retrying(
            lambda c: self.store.resolve(
                c, record, self.matcher(), now=utcnow(), exchange_id=exchange_id, actor=actor
            )
        )

    def _retrying(self, work: Callable[[Connection], Any]) -> Any:
        """Two workers resolving the same new (system, local id) at once meet at its primary key:
        the loser starts again and finds the winner's cross-reference. A deadlock PostgreSQL broke
        (a resolution's key locks against an import batch's row locks) is started again too."""
        for attempt in range(3):
            try:
                with self.hub.db.connection() as connection:
                    return work(connection)
            except (IntegrityError, OperationalError) as exc:
                retry = isinstance(exc, IntegrityError) or getattr(exc.orig, "sqlstate", None) == "40P01"
                if attempt == 2 or not retry:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ initial load

    def import_records(
        self,
        system: str,
        records: Sequence[IdentityRecord],
        *,
        source: str,
        raw: bytes,
        actor: str,
        progress: Callable[[int], None] = lambda _n: None,
        estimate: bool = False,
    ) -> ImportSummary:
        """Load a system's export: each record is resolved as in real time (a record already
        imported is unchanged, a changed one updated). Weights are estimated from the file when
        no model is stored yet, or with ``estimate`` (:meth:`_import_model`). Commits every
        :data:`IMPORT_BATCH` records: an interrupted import is finished by running it again."""
        started = time.perf_counter()
        summary = ImportSummary(system, len(records))
        model, summary.model = self._import_model(records, estimate=estimate, progress=False)
        with self.hub.db.connection() as connection:
            self._journal_import(connection, summary, source, raw, actor)
            if model is not None:
                self.store_model(connection, model, model.notes.get("records", len(records)))
        self._resolve_each(records, self.matcher(), summary, actor, progress)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def import_batch(
        self,
        system: str,
        records: Sequence[IdentityRecord],
        *,
        source: str,
        raw: bytes,
        actor: str,
        progress: Callable[[int], None] = lambda _n: None,
        steps: bool = False,
        stage: Callable[[str], None] = lambda _s: None,
        estimate: bool = False,
    ) -> ImportSummary:
        """A system's export through the batch engine (master_data.batch), into an empty store (an
        initial load) or one that holds golden records already (another system's export): the
        file's new records are deduplicated among themselves and linked to the stored population
        at once (blocking, comparison and clustering as arrays), then written with the rows
        real-time resolution writes, by :data:`IMPORT_BATCH` new records per transaction (whole
        golden records each).

        - Records of the file already known (same system and local id) are resolved first, as the
          record-by-record import does (``unchanged``, or ``updated``): running the same import
          again changes nothing, and the new records then meet the current versions.
        - The stored records read are only those the new records can meet
          (:meth:`GoldenStore.neighbourhood`): memory follows the file, not the population.
        - A new record joins a stored golden record with a cross-reference (``score`` or
          ``rule:<name>`` with its probability), and the golden record gets a version per record
          joining it, its values derived again with lineage; two stored golden records are never
          merged (a record fitting two goes to review, as in real time).
        - Should another writer store a record, or change a golden record the batch joins, while
          the batch writes, the rest of the file is resolved record by record.

        Weights: as :meth:`import_records` (``estimate``: see :meth:`_import_model`). ``steps``
        shows the matching steps' progress bar (stderr); ``stage`` is told what the import does
        next (for the caller's progress display)."""
        started = time.perf_counter()
        summary = ImportSummary(system, len(records), mode="batch")
        summary.outcomes = {"new": 0, "link": 0, "joined": 0}
        with self.hub.db.reading() as connection:
            known = self.store.known_local_ids(connection, system, [r.local_id for r in records])
        new = [record for record in records if record.local_id not in known]
        model, summary.model = self._import_model(records, estimate=estimate, progress=steps, stage=stage)
        with self.hub.db.connection() as connection:
            self._journal_import(connection, summary, source, raw, actor)
            if model is not None:
                # The batch matches with the weights as stored and read back by every later resolution.
                self.store_model(connection, model, model.notes.get("records", len(records)))
        if known:
            stage("known records")
            self._resolve_each(
                [r for r in records if r.local_id in known], self.matcher(), summary, actor, progress
            )
        if not new:
            summary.mode = "record by record (every record of the file is known)"
            summary.seconds = round(time.perf_counter() - started, 3)
            return summary
        rest = self._link_batch(new, summary, actor, progress, steps, stage)
        if rest:
            summary.mode = f"batch, then record by record for the last {len(rest)} records"
            self._resolve_each(rest, self.matcher(), summary, actor, progress)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _link_batch(
        self,
        new: Sequence[IdentityRecord],
        summary: ImportSummary,
        actor: str,
        progress: Callable[[int], None],
        steps: bool,
        stage: Callable[[str], None],
    ) -> list[IdentityRecord]:
        """Match the new records against each other and the stored population, and write the
        plan; returns the records left unwritten (another writer came first: record by record)."""
        matcher = self.matcher()
        stage("reading stored records")
        keys = (
            [key for found in matcher.blocking_keys_of(new[start : start + KEY_SLICE]) for key in found]
            for start in range(0, len(new), KEY_SLICE)
        )
        named = {key for record in new for key in (record.key, *record.identifiers)}
        with self.hub.db.reading() as connection:
            around = self.store.neighbourhood(connection, keys, named, max_block=BATCH_MAX_BLOCK)
        stage("matching")
        result = deduplicate_against(
            [s.record for s in around.sources],
            around.golden_ids,
            new,
            matcher,
            max_block=BATCH_MAX_BLOCK,
            progress=steps,
        )
        everything = [*(s.record for s in around.sources), *new]
        plan = plan_load(everything, result, matcher)
        stored = len(around.sources)
        golden_ids: dict[int, str] = dict(enumerate(around.golden_ids))
        source_ids: dict[int, int] = {k: s.id for k, s in enumerate(around.sources)}
        members_of: dict[str, list[SourceVersion]] = {}
        for k, golden_id in enumerate(around.golden_ids):
            members_of.setdefault(golden_id, []).append(around.sources[k])
        stage("writing")
        written = 0
        for chunk, tasks in plan.chunks(IMPORT_BATCH):
            fresh = [i for members in chunk for i in plan.fresh(members)]
            keys = dict(
                zip(fresh, map(sorted, matcher.blocking_keys_of([everything[i] for i in fresh])), strict=True)
            )
            locks = {key for found in keys.values() for key in found}
            locks.update(lock for i in fresh for lock in identifier_lock_keys(everything[i]))
            joined = {around.golden_ids[members[0]] for members in chunk if members[0] < stored}
            with self.hub.db.connection() as connection:
                now = utcnow()
                others, ids = self.store.reserve(connection, locks, len(fresh))
                if others != around.population + written or not self.store.unchanged(
                    connection, {g: around.versions[g] for g in joined}
                ):
                    break  # someone else wrote meanwhile: the rest is matched against it
                source_ids.update(zip(fresh, ids, strict=True))
                clusters, joining = [], []
                for members in chunk:
                    golden_id = around.golden_ids[members[0]] if members[0] < stored else new_id()
                    arriving = [
                        NewMember(
                            SourceVersion(source_ids[i], everything[i], now, summary.exchange_id),
                            keys[i],
                            *plan.links[i],
                        )
                        for i in plan.fresh(members)
                    ]
                    golden_ids.update((i, golden_id) for i in plan.fresh(members))
                    if members[0] < stored:
                        joining.append(
                            JoiningRecords(
                                golden_id, around.versions[golden_id], members_of[golden_id], arriving
                            )
                        )
                        summary.outcomes["link"] += len(arriving)
                    else:
                        clusters.append((golden_id, arriving))
                        summary.outcomes["new"] += 1
                        summary.outcomes["joined"] += len(arriving) - 1
                new_tasks = [
                    NewTask(
                        source_ids[task.record],
                        golden_ids[task.record],
                        source_ids[task.candidate],
                        golden_ids[task.candidate],
                        task.explanation,
                    )
                    for task in tasks
                ]
                self.store.write_new_golden_records(
                    connection, clusters, new_tasks, now=now, actor=actor, joining=joining
                )
            written += len(fresh)
            summary.review_tasks += len(new_tasks)
            progress(len(fresh))
        return [everything[i] for i in range(stored, len(everything)) if i not in source_ids]

    def _import_model(
        self,
        records: Sequence[IdentityRecord],
        *,
        estimate: bool,
        progress: bool,
        stage: Callable[[str], None] = lambda _s: None,
    ) -> tuple[MatchModel | None, str]:
        """The weights an import estimates (EM) and stores before matching, if any, and what the
        summary says of them.

        By default, from the file when no weights are stored yet and it has at least
        :data:`MIN_ESTIMATE_RECORDS` records (the first import of a town). With ``estimate``, from
        the stored population (an even sample, :meth:`estimation_sample`; the stored versions of
        the file's own records left out) and the file together: after a first import of one
        system, whose records seldom hold one person twice, another system's export brings the
        pairs of one person EM learns from. Too few records together is an error, before any
        effect."""
        if estimate:
            keys = {record.key for record in records}
            room = max(ESTIMATE_SAMPLE - len(records), 0)
            stored = [r for r in self.estimation_sample(room) if r.key not in keys] if room else []
            together = [*stored, *records]
            if len(together) < MIN_ESTIMATE_RECORDS:
                raise MasterDataError(
                    f"{len(stored)} stored records and {len(records)} in the file; estimating weights "
                    f"needs {MIN_ESTIMATE_RECORDS}",
                    {"stored": len(stored), "file": len(records)},
                )
            stage("estimating weights")
            model = estimate_model(together, communes=self.communes, progress=progress)
            note = (
                f"estimated from {len(together)} records ({len(stored)} stored, {len(records)} in the file)"
            )
            return MatchModel.from_json(model.to_json()), note
        with self.hub.db.reading() as connection:
            has_model = self._stored_model(connection)
        if has_model or len(records) < MIN_ESTIMATE_RECORDS:
            return None, "stored"
        stage("estimating weights")
        model = estimate_model(list(records), communes=self.communes, progress=progress)
        return MatchModel.from_json(model.to_json()), f"estimated from {len(records)} records"

    def _stored_model(self, connection: Connection) -> bool:
        return bool(connection.execute(select(func.count()).select_from(MODELS)).scalar_one())

    def _journal_import(
        self, connection: Connection, summary: ImportSummary, source: str, raw: bytes, actor: str
    ) -> None:
        """The import's inbound journal row: the lineage's exchange of every value it brings."""
        operation = f"citizens import ({summary.system}: {source})"
        row = self.hub.call_row(actor, operation, "accepted", raw, purpose=self.settings.purpose)
        summary.exchange_id = connection.execute(insert(JOURNAL).returning(JOURNAL.c.id), row).scalar_one()

    def _resolve_each(
        self,
        records: Sequence[IdentityRecord],
        matcher: Matcher,
        summary: ImportSummary,
        actor: str,
        progress: Callable[[int], None],
    ) -> None:
        """Each record resolved as in real time, :data:`IMPORT_BATCH` per transaction."""
        for start in range(0, len(records), IMPORT_BATCH):
            batch = records[start : start + IMPORT_BATCH]
            with self.hub.db.connection() as connection:
                now = utcnow()
                for record in batch:
                    resolution = self.store.resolve(
                        connection, record, matcher, now=now, exchange_id=summary.exchange_id, actor=actor
                    )
                    summary.count(resolution.outcome)
            progress(len(batch))

    def estimate(self, *, sample: int = ESTIMATE_SAMPLE) -> int:
        """Estimate the weights again from the stored population (current source versions), or
        from an even sample of ``sample`` of them (:meth:`estimation_sample`)."""
        records = self.estimation_sample(sample)
        if len(records) < MIN_ESTIMATE_RECORDS:
            raise MasterDataError(
                f"{len(records)} stored records; estimating weights needs {MIN_ESTIMATE_RECORDS}"
            )
        model = estimate_model(records, communes=self.communes)
        with self.hub.db.connection() as connection:
            self.store_model(connection, model, len(records))
        return len(records)

    def estimation_sample(self, sample: int) -> list[IdentityRecord]:
        """The current source records to estimate from: all of them, or ``sample`` spread evenly
        over the population. The first rows in the join's order would be one system's, or the
        oldest imports', and bias the weights (a system's own duplicates, an era's data quality);
        ordering by a multiplicative hash of the source record id mixes them, and gives the same
        sample for the same population (an estimate can be run again and compared)."""
        current = select(SOURCES.c.record).join(XREFS, XREFS.c.source_record_id == SOURCES.c.id)
        with self.hub.db.sessions() as session:
            stored = session.execute(select(func.count()).select_from(XREFS)).scalar_one()
            if stored > sample:
                # Knuth's multiplicative hash modulo 2^32: integer arithmetic on both databases,
                # no overflow below 3 billion ids.
                current = current.order_by((SOURCES.c.id * 2654435761) % 4294967296, SOURCES.c.id).limit(
                    sample
                )
            rows = session.execute(current).all()
        return [record_from_json(row.record) for row in rows]

    def reindex(self, progress: Callable[[int], None] = lambda _n: None, batch: int = 2000) -> int:
        """Rebuild the blocking-key index with the matcher's current rules; returns records indexed."""
        matcher, last, done = self.matcher(), 0, 0
        while True:
            with self.hub.db.connection() as connection:
                ids = self.store.reindex(connection, matcher, after=last, limit=batch)
            if not ids:
                return done
            last, done = ids[-1], done + len(ids)
            progress(len(ids))

    def population(self) -> int:
        with self.hub.db.sessions() as session:
            return session.execute(select(func.count()).select_from(XREFS)).scalar_one()

    # ------------------------------------------------------------------ explain

    def record(self, reference: str) -> tuple[IdentityRecord, str]:
        """A record named ``system:local_id`` (its current version) or a golden id (its golden
        values), with the golden id of the person it belongs to. A golden id merged into another
        stands for the golden record it lives in now (a merged record holds no values: comparing
        it would compare nothing); the golden id returned says which."""
        with self.hub.db.sessions() as session:
            connection = session.connection()
            if ":" in reference:
                system, local_id = reference.split(":", 1)
                row = connection.execute(
                    select(SOURCES.c.record, XREFS.c.golden_id)
                    .join(XREFS, XREFS.c.source_record_id == SOURCES.c.id)
                    .where(XREFS.c.system == system, XREFS.c.local_id == local_id)
                ).first()
                if row is None:
                    raise UnknownGolden(
                        f"no source record {reference!r} (write SYSTEM:LOCAL_ID or a golden id)"
                    )
                return record_from_json(row.record), row.golden_id
            try:
                current = self.store.current_id(connection, reference)
            except UnknownGolden:
                raise UnknownGolden(
                    f"no golden record {reference!r} (write SYSTEM:LOCAL_ID or a golden id)"
                ) from None
            values = {
                row.attribute: row.value
                for row in connection.execute(select(VALUES).where(VALUES.c.golden_id == current))
            }
            return golden_record(current, values), current

    def explain(self, a: str, b: str) -> dict[str, Any]:
        """Each field's comparison and weight for two records, and the outcome the matcher itself
        gives the pair (a conflict or an unconfirmed known homonym is never a link, whatever its
        probability): what real-time resolution would do with ``a`` if ``b`` were its only
        candidate. A golden id merged into another is compared as the golden record it lives in
        now; ``merged_into`` says so (``{"a": id}`` and/or ``{"b": id}``; empty otherwise)."""
        (first, first_golden), (second, second_golden) = self.record(a), self.record(b)
        merged_into = {
            side: golden
            for side, reference, golden in (("a", a, first_golden), ("b", b, second_golden))
            if ":" not in reference and golden != reference
        }
        matcher = self.matcher()
        decision = matcher.decide(first, [second])
        explanation = decision.explanation or matcher.explain(first, second)
        return {
            "a": a,
            "b": b,
            "golden_ids": sorted({first_golden, second_golden}),
            "merged_into": merged_into,
            "outcome": decision.outcome,
            **explanation_json(explanation),
        }

    # ------------------------------------------------------------------ merge, unmerge, review

    # A steward's action touches two people: each gets a journal row (their RGPD art. 15 report
    # lists it), in the action's transaction; a refused action is journaled too, with its error
    # code, in a transaction of its own (the action's is rolled back).

    def merge(self, survivor: str, absorbed: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        return self._merge_or_split("merge", survivor, absorbed, actor=actor, reason=reason)

    def unmerge(
        self, survivor: str, restored: str, *, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        return self._merge_or_split("unmerge", survivor, restored, actor=actor, reason=reason)

    def _merge_or_split(
        self, kind: str, survivor: str, other: str, *, actor: str, reason: str | None
    ) -> dict[str, Any]:
        """The store's merge (``other`` absorbed) or unmerge (``other`` restored), with the event
        flow's notice and one journal row per person, in one transaction."""
        merging = kind == "merge"
        operation = f"merge {other} into {survivor}" if merging else f"unmerge {other} from {survivor}"
        act = self.store.merge if merging else self.store.unmerge
        try:
            with self.hub.db.connection() as connection:
                result = act(connection, survivor, other, now=utcnow(), actor=actor, reason=reason)
                notice = self._notify(connection, "citizen.merged" if merging else "citizen.unmerged", result)
                for golden_id in (survivor, other):
                    self._journal(connection, actor, operation, golden_id)
        except MasterDataError as error:
            self._journal_refused(actor, operation, [survivor, other], error)
            raise
        self._after_notice(notice)
        return self._event_json(result, kind, notice)

    def decide(self, task_id: int, decision: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """A steward's decision on a review task; ``link`` merges the two golden records."""
        operation = f"stewardship task {task_id}: {decision}"
        try:
            with self.hub.db.connection() as connection:
                people = self._task_people(connection, task_id)
                result = self.store.decide(
                    connection, task_id, decision, now=utcnow(), actor=actor, reason=reason
                )
                notice = self._notify(connection, "citizen.merged", result) if result else None
                task = connection.execute(select(TASKS).where(TASKS.c.id == task_id)).one()
                for golden_id in people:
                    self._journal(connection, actor, operation, golden_id)
        except MasterDataError as error:
            with self.hub.db.reading() as connection:
                people = self._task_people(connection, task_id)
            self._journal_refused(actor, operation, people, error)
            raise
        self._after_notice(notice)
        answer = self.task_json(task)
        answer["merge"] = self._event_json(result, "merge", notice) if result else None
        return answer

    def _notify(self, connection: Connection, event: str, result: MergeResult) -> str | None:
        """File the event flow's request in the merge's transaction (see the module docstring)."""
        flow_name = self.settings.merge_event_flow
        if flow_name is None:
            return None
        flow = self.hub.flows[flow_name]
        values = {
            row.attribute: row.value
            for row in connection.execute(select(VALUES).where(VALUES.c.golden_id == result.golden_id))
        }
        xrefs = connection.execute(
            select(XREFS.c.system, XREFS.c.local_id)
            .where(XREFS.c.golden_id.in_([result.golden_id, result.other_id]))
            .order_by(XREFS.c.system, XREFS.c.local_id)
        ).all()
        now = utcnow()
        request_id = new_id()
        body = {
            "citizen": portal_shape(values),
            "data": {
                "event": event,
                "event_id": result.event_id,
                "golden_id": result.golden_id,
                "other_golden_id": result.other_id,
                "moved": [{"system": s, "local_id": i} for s, i in result.moved],
                "cross_references": [{"system": x.system, "local_id": x.local_id} for x in xrefs],
                "systems": result.systems,
            },
        }
        connection.execute(
            insert(REQUESTS),
            {
                "id": request_id,
                "flow": flow.name,
                "client": EVENT_CLIENT,
                "idempotency_key": f"md-event-{result.event_id}",
                "body_digest": digest(body, self.hub.digest_key),
                "body": body,
                "status": "received",
                "citizen_ref": result.golden_id,
                "golden_id": result.golden_id,
                "correlation_id": request_id,
                "context": {},
                "created_at": now,
                "updated_at": now,
            },
        )
        connection.execute(
            insert(OUTBOX),
            {
                "request_id": request_id,
                "state": "pending",
                "step": 0,
                "available_at": now,
                "attempts": 0,
                "created_at": now,
            },
        )
        connection.execute(
            insert(REQUEST_EVENTS), {"request_id": request_id, "at": now, "step": "received", "outcome": "ok"}
        )
        connection.execute(
            update(EVENTS).where(EVENTS.c.id == result.event_id).values(notice_request_id=request_id)
        )
        return request_id

    def _after_notice(self, notice: str | None) -> None:
        if notice is not None:
            self.hub.wake_workers()

    def _event_json(self, result: MergeResult, kind: str, notice: str | None) -> dict[str, Any]:
        return {
            "event_id": result.event_id,
            "kind": kind,
            "golden_id": result.golden_id,
            "other_id": result.other_id,
            "moved": [{"system": s, "local_id": i} for s, i in result.moved],
            "systems": result.systems,
            "notice_request_id": notice,
        }

    # ------------------------------------------------------------------ journal

    def _journal(
        self, connection: Connection, client: str, operation: str, golden_id: str | None, outcome: str = "ok"
    ) -> None:
        row = self.hub.call_row(
            client, operation, outcome, operation, citizen_ref=golden_id, purpose=self.settings.purpose
        )
        connection.execute(insert(JOURNAL), row)

    def _task_people(self, connection: Connection, task_id: int) -> list[str | None]:
        """The golden records a task is about, as they are now (one when a merge joined them);
        ``[None]`` for no such task (the attempt is journaled without a person)."""
        task = connection.execute(
            select(TASKS.c.golden_id, TASKS.c.candidate_golden_id).where(TASKS.c.id == task_id)
        ).first()
        if task is None:
            return [None]
        return sorted(
            {
                self.store.current_id(connection, task.golden_id),
                self.store.current_id(connection, task.candidate_golden_id),
            }
        )

    def _journal_refused(
        self, client: str, operation: str, golden_ids: Sequence[str | None], error: MasterDataError
    ) -> None:
        with self.hub.db.connection() as connection:
            for golden_id in dict.fromkeys(golden_ids):
                self._journal(connection, client, operation, golden_id, outcome=error.code)

    def journal_access(self, client: str, operation: str, golden_id: str | None, outcome: str = "ok") -> None:
        """Journal one read of a citizen's data (360° view, history, requests), found or not."""
        with self.hub.db.connection(single_statement=True) as connection:
            self._journal(connection, client, operation, golden_id, outcome)

    def journal_explained(self, client: str, operation: str, explained: dict[str, Any]) -> None:
        """Journal a comparison of two records: one row per person shown (two when they are two),
        so each person's report (RGPD art. 15) lists the steward who compared their data."""
        with self.hub.db.connection() as connection:
            for golden_id in explained["golden_ids"]:
                self._journal(connection, client, operation, golden_id)

    def journal_shown(self, client: str, operation: str, tasks: list[dict[str, Any]]) -> None:
        """Journal a review queue read: one row per citizen shown, so each person's report (RGPD
        art. 15) lists the stewards who saw them."""
        shown = sorted({t["golden_id"] for t in tasks} | {t["candidate_golden_id"] for t in tasks})
        with self.hub.db.connection() as connection:
            for golden_id in shown or [None]:
                self._journal(connection, client, operation, golden_id)

    # ------------------------------------------------------------------ views

    def view(self, golden_id: str) -> dict[str, Any]:
        """The 360° view: golden values with lineage, cross-references, merges."""
        with self.hub.db.snapshot() as session:
            connection = session.connection()
            golden = connection.execute(select(GOLDEN).where(GOLDEN.c.id == golden_id)).first()
            if golden is None:
                raise UnknownGolden(f"no golden record {golden_id!r}")
            values = connection.execute(
                select(VALUES).where(VALUES.c.golden_id == golden_id).order_by(VALUES.c.attribute)
            ).all()
            xrefs = connection.execute(
                select(XREFS).where(XREFS.c.golden_id == golden_id).order_by(XREFS.c.system, XREFS.c.local_id)
            ).all()
            merged_from = (
                connection.execute(
                    select(GOLDEN.c.id).where(GOLDEN.c.merged_into == golden_id).order_by(GOLDEN.c.id)
                )
                .scalars()
                .all()
            )
            stated = self._stated_identifiers(connection, golden_id)
        return {
            "id": golden.id,
            "status": golden.status,
            "merged_into": golden.merged_into,
            "version": golden.version,
            "created_at": golden.created_at.isoformat(),
            "updated_at": golden.updated_at.isoformat(),
            "values": {
                v.attribute: {
                    "value": v.value,
                    "lineage": {
                        "source_record_id": v.source_record_id,
                        "system": v.system,
                        "local_id": v.local_id,
                        "exchange_id": v.exchange_id,
                        "observed_at": v.observed_at.isoformat(),
                        "updated_at": v.source_updated_at.isoformat() if v.source_updated_at else None,
                        "rule": v.rule,
                    },
                }
                for v in values
            },
            "cross_references": [
                {
                    "system": x.system,
                    "local_id": x.local_id,
                    "source_record_id": x.source_record_id,
                    "link": x.link,
                    "probability": x.probability,
                    "linked_at": x.linked_at.isoformat(),
                }
                for x in xrefs
            ],
            "merged_from": list(merged_from),
            "stated_identifiers": stated,
        }

    def _stated_identifiers(self, connection: Connection, golden_id: str) -> list[dict[str, Any]]:
        """Other systems' identifiers the person's current source records state, each with where it
        came from (the stating record, the exchange that brought it) and the golden record that
        holds it as a cross-reference now (this one, another one — a steward should look — or
        none yet)."""
        rows = connection.execute(
            select(
                SOURCES.c.id,
                SOURCES.c.system,
                SOURCES.c.local_id,
                SOURCES.c.record,
                SOURCES.c.exchange_id,
                SOURCES.c.received_at,
            )
            .join(XREFS, XREFS.c.source_record_id == SOURCES.c.id)
            .where(XREFS.c.golden_id == golden_id)
            .order_by(SOURCES.c.system, SOURCES.c.local_id)
        ).all()
        stated = [
            (system, local_id, row)
            for row in rows
            for system, local_id in sorted((row.record.get("identifiers") or {}).items())
        ]
        holders: dict[tuple[str, str], str] = {}
        for system, local_id, _row in stated:
            holder = connection.execute(
                select(XREFS.c.golden_id).where(XREFS.c.system == system, XREFS.c.local_id == local_id)
            ).scalar()
            if holder is not None:
                holders[(system, local_id)] = holder
        return [
            {
                "system": system,
                "local_id": local_id,
                "held_by": holders.get((system, local_id)),
                "stated_by": {
                    "source_record_id": row.id,
                    "system": row.system,
                    "local_id": row.local_id,
                    "exchange_id": row.exchange_id,
                    "received_at": row.received_at.isoformat(),
                    "updated_at": row.record.get("updated_at"),
                },
            }
            for system, local_id, row in stated
        ]

    def history(self, golden_id: str) -> dict[str, Any]:
        with self.hub.db.snapshot() as session:
            connection = session.connection()
            if connection.execute(select(GOLDEN.c.id).where(GOLDEN.c.id == golden_id)).first() is None:
                raise UnknownGolden(f"no golden record {golden_id!r}")
            versions = connection.execute(
                select(VERSIONS).where(VERSIONS.c.golden_id == golden_id).order_by(VERSIONS.c.version)
            ).all()
            events = connection.execute(
                select(EVENTS)
                .where((EVENTS.c.golden_id == golden_id) | (EVENTS.c.other_id == golden_id))
                .order_by(EVENTS.c.id)
            ).all()
        return {
            "id": golden_id,
            "versions": [
                {
                    "version": v.version,
                    "at": v.at.isoformat(),
                    "cause": v.cause,
                    "actor": v.actor,
                    "status": v.status,
                    "merged_into": v.merged_into,
                    **v.golden,
                }
                for v in versions
            ],
            "events": [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "golden_id": e.golden_id,
                    "other_id": e.other_id,
                    "moved": [m[:2] for m in e.moved],  # (system, local id); the link time stays inside
                    "systems": e.systems,
                    "reason": e.reason,
                    "undone_by": e.undone_by,
                    "notice_request_id": e.notice_request_id,
                }
                for e in events
            ],
        }

    def requests(self, golden_id: str) -> dict[str, Any]:
        """Every request of the citizen, across services: its own, and those of records merged into it."""
        with self.hub.db.snapshot() as session:
            connection = session.connection()
            if connection.execute(select(GOLDEN.c.id).where(GOLDEN.c.id == golden_id)).first() is None:
                raise UnknownGolden(f"no golden record {golden_id!r}")
            ids, frontier = {golden_id}, [golden_id]
            while frontier:
                frontier = [
                    i
                    for i in connection.execute(
                        select(GOLDEN.c.id).where(GOLDEN.c.merged_into.in_(frontier))
                    ).scalars()
                    if i not in ids
                ]
                ids.update(frontier)
            rows = connection.execute(
                select(
                    REQUESTS.c.id,
                    REQUESTS.c.flow,
                    REQUESTS.c.status,
                    REQUESTS.c.client,
                    REQUESTS.c.target_system,
                    REQUESTS.c.golden_id,
                    REQUESTS.c.created_at,
                    REQUESTS.c.completed_at,
                )
                .where(REQUESTS.c.golden_id.in_(sorted(ids)))
                .order_by(REQUESTS.c.created_at, REQUESTS.c.id)
            ).all()
        return {
            "id": golden_id,
            "requests": [
                {
                    "id": r.id,
                    "flow": r.flow,
                    "status": r.status,
                    "client": r.client,
                    "target_system": r.target_system,
                    "golden_id": r.golden_id,
                    "created_at": r.created_at.isoformat(),
                    "completed_at": r.completed_at.isoformat() if r.completed_at else None,
                }
                for r in rows
            ],
        }

    def tasks(self, status: str = "open", limit: int = 50, after: int = 0) -> TaskPage:
        """Up to ``limit`` tasks of ``status`` after task id ``after``, oldest first.

        Open tasks that ask again what a steward already answered "not the same person", and
        those whose two records one golden record holds already (a merge answered them; a merge
        closes them, this also hides any left by older versions), are left out; the page is filled
        from the following tasks, so a full page means "there may be more" and a short one "there
        is no more", whatever was left out."""
        shown: list[Any] = []
        cursor, exhausted = after, False
        with self.hub.db.sessions() as session:
            connection = session.connection()
            while len(shown) < limit and not exhausted:
                wanted = limit - len(shown)
                rows = connection.execute(
                    select(TASKS)
                    .where(TASKS.c.status == status, TASKS.c.id > cursor)
                    .order_by(TASKS.c.id)
                    .limit(wanted)
                ).all()
                exhausted = len(rows) < wanted
                if rows:
                    cursor = rows[-1].id
                if status == "open" and rows:
                    askable = self._askable(connection, [r.id for r in rows])
                    rows = [r for r in rows if r.id in askable]
                shown += rows
            ids = {r.source_record_id for r in shown} | {r.candidate_source_record_id for r in shown}
            records = {
                row.id: row.record
                for row in connection.execute(
                    select(SOURCES.c.id, SOURCES.c.record).where(SOURCES.c.id.in_(ids))
                )
            }
        return TaskPage([self.task_json(row, records) for row in shown], None if exhausted else cursor)

    def _askable(self, connection: Connection, task_ids: Sequence[int]) -> set[int]:
        """Of these open tasks, those the queue asks: their two records are in two golden records
        (a merge joined none of them) that no steward decided are not the same person."""
        goldens = self.store.task_goldens(connection, task_ids=task_ids)
        apart = self.store.not_same_between(connection, goldens.values())
        return {
            task_id
            for task_id, pair in goldens.items()
            if len(set(pair)) == 2 and frozenset(pair) not in apart
        }

    def _pending(self, connection: Connection) -> int:
        """The open tasks the queue would list (not every open row: some ask what a merge or a
        "not the same person" answered since), counted in chunks."""
        open_ids = connection.scalars(select(TASKS.c.id).where(TASKS.c.status == "open")).all()
        return sum(
            len(self._askable(connection, open_ids[start : start + PENDING_CHUNK]))
            for start in range(0, len(open_ids), PENDING_CHUNK)
        )

    def task_json(self, row: Any, records: dict[int, Any] | None = None) -> dict[str, Any]:
        answer = {
            "id": row.id,
            "status": row.status,
            "created_at": row.created_at.isoformat(),
            "golden_id": row.golden_id,
            "candidate_golden_id": row.candidate_golden_id,
            "probability": row.probability,
            "total": row.total,
            "rule": row.rule,
            "why": why_asked(row.rule, row.probability, self.settings.thresholds.upper),
            "explanation": row.explanation,
            "decided_at": row.decided_at.isoformat() if row.decided_at else None,
            "decided_by": row.decided_by,
            "reason": row.reason,
        }
        if records is not None:
            answer["record"] = records.get(row.source_record_id)
            answer["candidate"] = records.get(row.candidate_source_record_id)
        return answer

    def thresholds_report(self) -> ThresholdsReport:
        """Stewards' decisions by match probability, against the configured thresholds.

        A link a later unmerge undid counts as "not the same person" (the steward's final word).
        Tasks a rule made are counted apart, by rule (see :mod:`master_data.stewardship`)."""
        undone = (
            select(EVENTS.c.id)
            .where(EVENTS.c.task_id == TASKS.c.id, EVENTS.c.kind == "merge", EVENTS.c.undone_by.is_not(None))
            .exists()
        )
        with self.hub.db.sessions() as session:
            # Tasks closed by another task's decision, or by the merge that answered them, are not
            # decisions: counting them would weigh one answer as many.
            rows = session.execute(
                select(TASKS.c.probability, TASKS.c.status, TASKS.c.rule, undone.label("undone")).where(
                    TASKS.c.status != "open",
                    or_(
                        TASKS.c.reason.is_(None),
                        not_(
                            or_(
                                TASKS.c.reason.startswith(FOLLOWED_TASK),
                                TASKS.c.reason.startswith(MERGED_TASK),
                            )
                        ),
                    ),
                )
            ).all()
            pending = self._pending(session.connection())
        decided = [
            Decided(row.probability, row.status == "linked" and not row.undone, row.rule) for row in rows
        ]
        thresholds = self.settings.thresholds
        return thresholds_report(decided, thresholds.upper, thresholds.lower, pending=pending)


def portal_shape(values: dict[str, Any]) -> dict[str, Any]:
    """Golden values in the shape of the portal's ``citizen`` (what flow mappings read)."""
    citizen: dict[str, Any] = {
        key: values[key]
        for key in ("birth_name", "used_name", "given_names", "birth_date", "sex", "email", "phone")
        if key in values
    }
    if "birth_place" in values:
        citizen["birth_place"] = {"insee_code": values["birth_place"]}
    address = values.get("address")
    if address:
        citizen["address"] = {
            "line1": address.get("line"),
            "postal_code": address.get("postal_code"),
            "city": address.get("city"),
        }
    return citizen
