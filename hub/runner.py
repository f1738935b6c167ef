"""Runs one request's flow, step by step, from where its outbox message says it stands.

Progress (step index, saved results, status, timeline) is checkpointed under the message's claim
token before a call leaves whenever the outbox does not name that call's step yet: the outbox's
step is then always the one call a worker of the message may have in flight. Such a checkpoint
replaces the one that used to follow each call, so a flow writes no more of them than before.

A call's journal rows (its answer, or its permanent error) are written with the checkpoint that
follows it, in the same statement (:mod:`hub.checkpoint`), not on their own: the outbox moves past a
call exactly when its end is journaled. So a worker killed mid-flow leaves its message claimed at a
step whose call may have left and whose end is not journaled; the claim that takes over
(``interrupted``) re-runs from that step and, at the first call it reaches (the lost one's, since
the steps between read only the saved document), journals it ``interrupted`` under its own system,
operation and step ("may have reached the system") before making it again with the same
idempotency key (request id + step id), so the back-end makes its effect once. A worker lost after
the answer but before the checkpoint is reported the same way: the journal never claims a call did
not reach a system when it may have.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from connectors.errors import CircuitOpenError, ConnectorError
from connectors.exchange import CallContext
from connectors.ged import FILE_OPERATION
from hub.checkpoint import Checkpoint, save_checkpoint
from hub.citizens import Citizens
from hub.db.master_models import SOURCES, XREFS
from hub.db.models import REQUESTS, utcnow
from hub.flow_paths import SETTABLE
from hub.flows import CallSpec, FileDocumentSpec, Flow, Step, WaitUntil
from hub.journal import insert_rows
from hub.mapping import MappingFailed, mask
from hub.mapping.conditions import describe
from hub.mapping.paths import MISSING
from hub.outbox import Claim, extend
from hub.runtime import Hub

log = logging.getLogger("hub.runner")


@dataclass(frozen=True, slots=True)
class _Event:
    at: datetime
    step: str
    outcome: str
    detail: str | None


@dataclass
class _Progress:
    """What a run changed and has not written yet."""

    step: int
    status: str
    context: dict[str, Any]
    target_system: str | None
    leased_until: float = 0.0  # time.monotonic() by which this run's lease surely holds
    durable: int = -1  # the step the outbox holds for this claim: the claimed one, then checkpoints'
    events: list[_Event] = field(default_factory=list)
    golden_id: str | None = None  # the citizen's, when found by a read: written with the checkpoint
    journal: list[dict[str, Any]] = field(default_factory=list)  # rows of calls answered since

    def event(self, step: str, outcome: str, detail: str | None = None) -> None:
        self.events.append(_Event(utcnow(), step, outcome, detail))


@dataclass
class _Run:
    """One run of a flow for one claimed message: what every step needs."""

    flow: Flow
    claim: Claim
    context: CallContext
    document: dict[str, Any]  # what mappings and conditions read; ``steps`` is progress.context
    progress: _Progress
    # The claim this one replaced without its release (a worker lost mid-flow), until the run
    # reaches its first call: the one that claim may have had in flight.
    lost_claim: str | None = None
    # The call an earlier delivery lost in flight: its next call journals that attempt first (once).
    interrupted_step: Step | None = None


class _Rescheduled(Exception):
    """The flow waits (polling) or backs off: the message returns to the queue at ``at``."""

    def __init__(self, at: datetime) -> None:
        self.at = at


# How long a request read with its claimed batch may wait for a free slot before its run reads it
# again. Besides the claim's holder, a steward's merge or unmerge may change who the request's
# citizen is (its golden id, the portal record's link); a run already works with what it read when
# it started, and a claimed-ahead message may wait as long as the slow calls ahead of it.
FRESH_READ_S = 1.0


class FlowRunner:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.citizens = Citizens(hub)

    def read(self, claims: list[Claim]) -> list[Claim]:
        """The claims with their requests read in one statement (a worker's batch): one round trip
        per batch instead of one per message."""
        if not claims:
            return claims
        params = {"ids": [c.request_id for c in claims], "portal": self.citizens.settings.portal_system}
        with self.hub.db.reading() as connection:
            rows = {row.id: row for row in connection.execute(_READ_REQUESTS, params)}
        read_at = time.monotonic()
        return [replace(c, request=rows.get(c.request_id), read_at=read_at) for c in claims]

    def process(self, claim: Claim) -> str:
        """Run the claimed message's flow as far as it goes; return the message's new state."""
        request = claim.request
        if request is None or time.monotonic() - claim.read_at > FRESH_READ_S:
            with self.hub.db.reading() as connection:
                params = {"ids": [claim.request_id], "portal": self.citizens.settings.portal_system}
                request = connection.execute(_READ_REQUESTS, params).first()
        if request is None:
            raise LookupError(f"outbox message {claim.message_id} names a missing request")
        flow = self.hub.flows.get(request.flow)
        snapshot = _snapshot(request)
        if flow is None:
            return self._dead(
                claim,
                _Progress(claim.step, snapshot["status"], snapshot["steps"], None),
                "unknown_flow",
                f"flow {snapshot['flow']!r} is no longer loaded",
            )
        context = self.hub.request_context(
            request_id=claim.request_id,
            flow_name=flow.name,
            correlation_id=snapshot["correlation_id"],
            client=snapshot["client"],
            citizen_ref=snapshot["citizen_ref"],
            golden_id=snapshot["golden_id"],
            previous_attempts=claim.attempts,
        )
        progress = _Progress(
            claim.step,
            snapshot["status"],
            dict(snapshot["steps"]),
            snapshot["target_system"],
            claim.leased_until,
            durable=claim.step,
        )
        if progress.status == "received":
            progress.status = "processing"
            progress.event("processing", "ok", f"worker {claim.token.split('/')[0]}")
        document: dict[str, Any] = {
            "request": snapshot["request"],
            "citizen": snapshot["citizen"],
            "data": snapshot["data"],
            "steps": progress.context,
        }
        try:
            golden_id = snapshot["golden_id"]
            if golden_id is None and snapshot["citizen"]:
                # The citizen's golden id, resolved before the first call: the journal then follows
                # one person across systems and spellings (RGPD art. 15), not one spelling. A citizen
                # already known with this identity is only read; its id goes with the next checkpoint.
                known = (request.known_golden_id, request.known_digest) if request.known_golden_id else None
                golden_id = self.citizens.known_golden_id(snapshot["citizen"], snapshot["citizen_ref"], known)
                if golden_id is None:
                    golden_id = self.citizens.resolve_request(
                        claim.request_id, snapshot["citizen"], snapshot["citizen_ref"]
                    )
                else:
                    progress.golden_id = golden_id
                context = replace(context, citizen_ref=golden_id)
            if golden_id is not None:
                # The citizen as the hub knows them across systems: mappings route with each
                # system's own identifier ($.golden.identifiers.ecole), not the portal's spelling.
                document["golden"] = {"id": golden_id}
                if flow.reads_identifiers:
                    document["golden"]["identifiers"] = self.citizens.identifiers(golden_id)
            # The calls' journal rows wait in progress.journal for the next checkpoint.
            context = replace(context, held_rows=progress.journal)
            run = _Run(flow, claim, context, document, progress, claim.interrupted)
            return self._run(run)
        except _Rescheduled as wait:
            return self._checkpoint(claim, progress, available_at=wait.at)
        except _Finished:
            return self._checkpoint(claim, progress, done=True)
        except _LeaseLost:
            log.warning("lost the lease of message %s; another worker carries on", claim.message_id)
            return "lost"
        except (OperationalError, InterfaceError):
            # The hub's own database is unavailable (restarted, unreachable, locked, disk full, a
            # deadlock or serialization failure): leave the message to be claimed again when its
            # lease expires, rather than failing a request whose back-end call may have worked.
            # Other driver errors (a constraint, a bad statement) are the hub's defects: retrying
            # would fail the same way forever, so they dead-letter below, replayable once fixed.
            log.exception("database error while running request %s; it will be retried", claim.request_id)
            self._journal_held(progress)
            return "retry"
        except MappingFailed as exc:
            progress.event(flow.steps[progress.step].id, "failed", str(exc))
            return self._dead(claim, progress, exc.code, str(exc))
        except ConnectorError as exc:
            return self._connector_failed(flow, claim, progress, exc)
        except Exception as exc:  # a defect, not bad input: keep the request visible and replayable
            log.exception("request %s failed in step %s", claim.request_id, progress.step)
            progress.event(
                flow.steps[min(progress.step, len(flow.steps) - 1)].id, "failed", type(exc).__name__
            )
            return self._dead(claim, progress, "internal_error", f"{type(exc).__name__} in the hub (logged)")

    def _run(self, run: _Run) -> str:
        flow, progress = run.flow, run.progress
        while progress.step < len(flow.steps):
            step = flow.steps[progress.step]
            if step.when is not None and not flow.guards[step.id](run.document, run.document):
                progress.event(step.id, "skipped", f"not met: {describe(step.when)}")
                progress.step += 1  # written with the next checkpoint: skipping has no effect to redo
                continue
            outbound = _outbound(step)
            if outbound is not None:
                self._before_call(run, step, *outbound)
            result: Any = None
            if step.map is not None:
                result = flow.mappings[step.map.mapping].apply(run.document)
            elif step.call is not None:
                result = self._call(run, step, step.call)
            elif step.set_status is not None:
                progress.status = _status(flow, step, run.document)
                progress.event(step.id, "ok", f"status {progress.status}")  # written with the next checkpoint
            elif step.wait_until is not None:
                result = self._wait(run, step, step.wait_until)
            elif step.file_document is not None:
                result = self._file(run, step, step.file_document)
            if step.save_as:
                progress.context[step.save_as] = result
            progress.step += 1
        return self._checkpoint(run.claim, progress, done=True)

    def _before_call(self, run: _Run, step: Step, system: str, operation: str) -> None:
        """Make the outbox name this call before it leaves (one checkpoint, unless it already does):
        whoever takes the message over from a lost worker then knows which call may be in flight.

        The first call of a claim that took over is the lost claim's: the call at the step the
        outbox names, whose end the lost claim never journaled (it would have moved the outbox in
        the same statement). It is made again, journaled ``interrupted`` first. This claim then
        checkpoints, so that its own call, if lost in turn, is reported by the next claim too."""
        progress = run.progress
        mark = progress.step != progress.durable
        if run.lost_claim is not None:
            lost, run.lost_claim = run.lost_claim, None
            run.interrupted_step = step
            progress.event(step.id, "interrupted", f"worker lost during {system}.{operation}; made again")
            log.warning(
                "request %s: claim %s was lost during %s.%s (step %s); it may have reached the system",
                run.claim.request_id,
                lost,
                system,
                operation,
                step.id,
            )
            mark = True
        if mark and self._checkpoint(run.claim, progress) == "lost":
            raise _LeaseLost()

    def _call(self, run: _Run, step: Step, call: CallSpec) -> Any:
        answer = self._send(run, step, call)
        run.progress.target_system = call.system
        run.progress.event(step.id, "ok", f"{call.system}.{call.operation}")
        if call.response_mapping is None:
            return answer
        return run.flow.mappings[call.response_mapping].apply({**run.document, "response": answer})

    def _wait(self, run: _Run, step: Step, wait: WaitUntil) -> Any:
        answered = {**run.document, "response": self._send(run, step, wait)}
        progress = run.progress
        progress.target_system = wait.system
        if wait.fail_when is not None and _matches(
            run.flow, f"{step.id}.fail_when", wait.fail_when.equals, answered
        ):
            progress.status = "rejected"
            progress.event(step.id, "rejected", f"{wait.system}.{wait.operation}: {wait.fail_when.equals}")
            raise _Finished()
        if _matches(run.flow, f"{step.id}.until", wait.until.equals, answered):
            progress.event(step.id, "ok", f"{wait.system}.{wait.operation}: {wait.until.equals}")
            if wait.response_mapping is not None:
                return run.flow.mappings[wait.response_mapping].apply(answered)
            return answered["response"]
        started = datetime.fromisoformat(run.document["request"]["created_at"])
        now = utcnow()
        if now - started > timedelta(seconds=wait.timeout_s):
            raise ConnectorError(
                "WAIT_TIMEOUT", f"{step.id}: condition not met after {wait.timeout_s:.0f} s", transient=False
            )
        waited_s = (now - started).total_seconds()
        raise _Rescheduled(now + timedelta(seconds=wait.next_interval_s(waited_s)))

    def _file(self, run: _Run, step: Step, spec: FileDocumentSpec) -> dict[str, Any]:
        """File the document into the GED; what the request keeps (and the journal digests) is
        its claim check, never its bytes. The idempotency key (request + step) makes a retried
        upload file it once."""
        content = _document_bytes(run.flow, step, spec, run.document)
        fields = run.flow.mappings[spec.metadata].apply(run.document)
        self._renew_lease(run, spec.system)
        keyed = _keyed(run, step)
        ged = self.hub.adapter(spec.system)
        filed = ged.file(keyed, io.BytesIO(content), fields, content_type=spec.content_type)
        run.progress.event(step.id, "ok", f"{spec.system}.FileDocument {filed.id}")
        return {
            "system": spec.system,
            "document_id": filed.id,
            "sha256": filed.sha256,
            "size": filed.size,
            "content_type": filed.content_type,
        }

    def _renew_lease(self, run: _Run, system: str) -> None:
        """Make the lease outlast the coming call: a worker that lost its claim must not call a
        back-end for the message."""
        lease_s = self.hub.config.worker.lease_s
        if run.progress.leased_until - time.monotonic() < self.hub.config.systems[system].timeout_s + 1:
            renewed_at = time.monotonic()
            if not extend(self.hub.db, run.claim, lease_s):
                raise _LeaseLost()
            run.progress.leased_until = renewed_at + lease_s

    def _send(self, run: _Run, step: Step, call: CallSpec) -> Any:
        """Map the message and call the system through its instrumented client, under a lease that
        outlasts the call."""
        self._renew_lease(run, call.system)
        if call.mapping is not None:
            # the target format's form: a dict (json, soap), a line (csv, fixed_width) or XML text
            message = run.flow.mappings[call.mapping].render(run.document)
        else:
            message = run.document["steps"][call.message]
        keyed = _keyed(run, step)
        return self.hub.adapter(call.system).call(call.operation, message, keyed)

    # ------------------------------------------------------------------ outcomes

    def _connector_failed(self, flow: Flow, claim: Claim, progress: _Progress, exc: ConnectorError) -> str:
        step = flow.steps[progress.step]
        # Every step that reaches a back-end (a call, a poll, a filing into the GED) takes that
        # system's retry policy: a GED timeout is as transient as a registry's.
        target = step.call or step.wait_until or step.file_document
        system = self.hub.config.systems[target.system] if target else None
        if not exc.transient or system is None:
            progress.event(step.id, "failed", f"{exc.code}: {exc.message}")
            return self._dead(claim, progress, exc.code, exc.message)
        # A call the open circuit refused never reached the back-end: it spends no attempt of the
        # retry budget (max_elapsed_s still bounds the wait), or a few minutes of outage with many
        # requests queued would dead-letter them all while the breaker lets one probe through.
        refused = isinstance(exc, CircuitOpenError)
        attempts = claim.attempts + (0 if refused else 1)
        first_failure = claim.first_failure_at or utcnow()
        elapsed = (utcnow() - first_failure).total_seconds()
        if attempts >= system.retry.max_attempts or elapsed >= system.retry.max_elapsed_s:
            progress.event(step.id, "failed", f"{exc.code} after {attempts} attempts: {exc.message}")
            return self._dead(claim, progress, exc.code, f"retries exhausted: {exc.message}")
        if isinstance(exc, CircuitOpenError):
            # after the probe window, spread out so the queued requests do not all wake at once
            delay = exc.retry_after_s + random.uniform(0, system.retry.backoff_initial_s)
        else:  # exponential backoff with full jitter
            ceiling = min(system.retry.backoff_max_s, system.retry.backoff_initial_s * 2 ** (attempts - 1))
            delay = random.uniform(0, ceiling)
        progress.event(step.id, "retry", f"{exc.code}: attempt {attempts} failed, next in {delay:.2f} s")
        return self._checkpoint(
            claim,
            progress,
            available_at=utcnow() + timedelta(seconds=delay),
            attempts=attempts,
            first_failure_at=first_failure,
            error=f"{exc.code}: {exc.message}",
        )

    def _dead(self, claim: Claim, progress: _Progress, code: str, message: str) -> str:
        """Dead-letter the message and fail the request; an operator can replay it."""
        progress.status = "failed"
        return self._checkpoint(claim, progress, dead=(code, message))

    def _journal_held(self, progress: _Progress) -> None:
        """Write the held journal rows on their own when their checkpoint could not be written:
        the calls were made, whatever becomes of the run. Best effort: the database may be away."""
        if not progress.journal:
            return
        rows, progress.journal[:] = list(progress.journal), []
        try:
            self.hub.db.write(lambda connection: insert_rows(connection, rows))
        except Exception:
            log.exception(
                "could not journal %d answered calls; the next claim reports them interrupted", len(rows)
            )

    def _checkpoint(
        self,
        claim: Claim,
        progress: _Progress,
        *,
        done: bool = False,
        available_at: datetime | None = None,
        attempts: int | None = None,
        first_failure_at: datetime | None = None,
        error: str | None = None,
        dead: tuple[str, str] | None = None,
    ) -> str:
        """Write the run's progress in one transaction, if this claim still holds the message."""
        now = utcnow()
        renewed_at = time.monotonic()
        lease_s = self.hub.config.worker.lease_s
        # A checkpoint that keeps the message also renews its lease, so calls seldom need to.
        message: dict[str, Any] = {"step": progress.step, "lease_until": now + timedelta(seconds=lease_s)}
        request: dict[str, Any] = {
            "status": progress.status,
            "context": dict(progress.context),
            "target_system": progress.target_system,
            "updated_at": now,
        }
        if progress.golden_id is not None:
            request["golden_id"] = progress.golden_id
        outcome = "running"
        if dead is not None:
            request.update(error_code=dead[0], error_message=dead[1], completed_at=now)
            message.update(state="dead", last_error=f"{dead[0]}: {dead[1]}", lease_until=None)
            outcome = "dead"
        elif done:
            request["completed_at"] = now
            message.update(state="done", lease_until=None, claimed_by=None)
            outcome = "done"
        else:
            if attempts is not None:
                message.update(attempts=attempts, first_failure_at=first_failure_at, last_error=error)
            elif available_at is not None:  # a wait, not a failure: the retry budget starts afresh
                message.update(attempts=0, first_failure_at=None)
            if available_at is not None:
                message.update(available_at=available_at, lease_until=None, claimed_by=None)
                outcome = "scheduled"
        events = [
            {"at": e.at, "step": e.step, "outcome": e.outcome, "detail": e.detail} for e in progress.events
        ]
        fence = {"id": claim.message_id, "claimed_by": claim.token}
        checkpoint = Checkpoint(fence, message, claim.request_id, request, events, list(progress.journal))
        try:
            held = save_checkpoint(self.hub.db, checkpoint)
        except DBAPIError as exc:
            if isinstance(exc, OperationalError | InterfaceError) or not checkpoint.journal:
                raise
            # A held journal row the database refuses (a defect) would fail every checkpoint of the
            # run, the dead-letter's too: the message would be claimed and the call made again at
            # each lease, forever. The rows go to the log instead (digests and pseudonyms only).
            log.exception("journal rows refused by the database, logged instead: %s", checkpoint.journal)
            held = save_checkpoint(self.hub.db, replace(checkpoint, journal=[]))
        progress.journal.clear()  # written whether the fence held or not: the calls were made
        if not held:
            return "lost"
        progress.events.clear()
        if outcome == "running":
            progress.leased_until = renewed_at + lease_s
            progress.durable = progress.step
        return outcome


# Requests, each with the golden id and digest of the portal's record of its citizen when the hub
# already knows it (a citizen filing again): one round trip for a batch, before the first call.
_READ_REQUESTS = (
    select(REQUESTS, XREFS.c.golden_id.label("known_golden_id"), SOURCES.c.digest.label("known_digest"))
    .select_from(
        REQUESTS.outerjoin(
            XREFS.join(SOURCES, SOURCES.c.id == XREFS.c.source_record_id),
            and_(XREFS.c.system == bindparam("portal"), XREFS.c.local_id == REQUESTS.c.citizen_ref),
        )
    )
    .where(REQUESTS.c.id.in_(bindparam("ids", expanding=True)))
)


class _Finished(Exception):
    pass


class _LeaseLost(Exception):
    """Another worker holds the message now; this run stops without touching anything."""


def _matches(flow: Flow, key: str, expected: Any, document: dict) -> bool:
    return any(match.value == expected for match in flow.conditions[key].find(document))


class InvalidStatus(MappingFailed):
    """``set_status: {from: ...}`` read something that is not a hub status: the answer mapping's
    table is wrong, a permanent error for the request (replayable once the mapping is fixed)."""

    code = "invalid_status"

    def __init__(self, flow: str, step: str, source: str, value: Any) -> None:
        super().__init__(flow, step, source, "not a hub status")
        # Masked like any mapped value: a wrong path could read personal data instead of a status.
        shown = "nothing" if value is MISSING else mask(value)
        self.args = (f"flow {flow}: step {step}: {source} gave {shown}, not one of {', '.join(SETTABLE)}",)

    def __str__(self) -> str:
        return str(self.args[0])


def _status(flow: Flow, step: Step, document: dict[str, Any]) -> str:
    if isinstance(step.set_status, str):
        return step.set_status
    path = flow.step_paths[step.id]
    value = path.get(document)
    if value not in SETTABLE:
        raise InvalidStatus(flow.name, step.id, path.text, value)
    return value


def _keyed(run: _Run, step: Step) -> CallContext:
    """The call's context with its idempotency key, request + step: a retried step makes its
    effect at the back-end once."""
    outbound = _outbound(step)
    keyed = replace(
        run.context,
        idempotency_key=f"{run.context.request_id}:{step.id}",
        # the row of the step's own call waits for the next checkpoint; an adapter's other
        # exchanges (an SFTP listing and reads behind one status call) are written at once
        held_operation=outbound[1] if outbound else None,
    )
    if step is run.interrupted_step:
        run.interrupted_step = None
        # the lost attempt comes after the earlier deliveries' attempts, this one after it
        keyed = replace(keyed, interrupted=True, previous_attempts=keyed.previous_attempts + 1)
    return keyed


def _outbound(step: Step) -> tuple[str, str] | None:
    """The system and operation a step sends to (as the journal names them), if it calls one."""
    if step.call is not None:
        return step.call.system, step.call.operation
    if step.wait_until is not None:
        return step.wait_until.system, step.wait_until.operation
    if step.file_document is not None:
        return step.file_document.system, FILE_OPERATION
    return None


def _document_bytes(flow: Flow, step: Step, spec: FileDocumentSpec, document: dict[str, Any]) -> bytes:
    """The bytes to file: a mapping's rendering (XML or a line as UTF-8 text, a dict as JSON) or
    base64 text the request carries (a failure names the path, never the value)."""
    if spec.content.mapping is not None:
        rendered = flow.mappings[spec.content.mapping].render(document)
        if isinstance(rendered, bytes):
            return rendered
        if isinstance(rendered, str):
            return rendered.encode("utf-8")
        return json.dumps(rendered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    path = flow.step_paths[step.id]
    value = path.get(document)
    if not isinstance(value, str) or not value:
        raise MappingFailed(flow.name, f"{step.id}.content", path.text, "no base64 document there")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MappingFailed(flow.name, f"{step.id}.content", path.text, "not valid base64") from None


def _snapshot(request: Row[Any]) -> dict[str, Any]:
    body = request.body
    return {
        "flow": request.flow,
        "status": request.status,
        "client": request.client,
        "correlation_id": request.correlation_id,
        "citizen_ref": request.citizen_ref,
        "golden_id": request.golden_id,
        "target_system": request.target_system,
        "steps": dict(request.context or {}),
        "citizen": body.get("citizen", {}),
        "data": body.get("data", {}),
        "request": {
            "id": request.id,
            "flow": request.flow,
            "client": request.client,
            "created_at": request.created_at.isoformat(),
        },
    }
