"""Accepting a request: validate it, then record it durably in one transaction.

The request row (status ``received``), its outbox message, the first timeline event and the
journal entry of the inbound exchange are committed together or not at all: once the portal has
its ``202``, the request cannot be lost, and the journal cannot miss it.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, Dialect, bindparam, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import OperationalError

from connectors.exchange import CallContext, digest
from hub.auth import Principal
from hub.db.models import EVENTS, JOURNAL, OUTBOX, REQUESTS, storable_time, utcnow
from hub.db.prebuilt import Direct, direct_insert
from hub.flows import Flow
from hub.ids import new_id
from hub.journal import inbound_row, row_mac
from hub.runtime import Hub
from master_data.identity import CitizenIdentity
from master_data.reference import citizen_reference
from master_data.sources import identifier_problems

log = logging.getLogger("hub.intake")


class RequestBody(BaseModel):
    """What the portal posts to ``/v1/requests``."""

    model_config = ConfigDict(extra="forbid")
    flow: str = Field(description="the démarche, e.g. birth-certificate", examples=["birth-certificate"])
    citizen: CitizenIdentity
    data: dict[str, Any] = Field(default_factory=dict, description="validated by the flow's input schema")


@dataclass(frozen=True)
class Concerned:
    """What a refused request is known to concern when it is refused, for its journal row: the
    flow's purpose once the flow is known, the citizen's reference once their identity validated,
    the request an Idempotency-Key points to. The DPO finds a refusal by these, like an exchange."""

    purpose: str | None = None
    citizen_ref: str | None = None
    request_id: str | None = None


class IntakeError(Exception):
    status = 422
    code = "invalid_request"

    def __init__(self, message: str, details: Any = None, concerned: Concerned | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details
        self.concerned = concerned or Concerned()


class UnknownFlow(IntakeError):
    status, code = 404, "unknown_flow"


class FlowNotRequestable(IntakeError):
    """The flow is the hub's own (the master-data event flow): a client filing it could make the
    hub tell the back-ends that two people are one."""

    status, code = 403, "flow_not_requestable"


class InputInvalid(IntakeError):
    status, code = 422, "validation_failed"


class IdempotencyKeyReused(IntakeError):
    status, code = 422, "idempotency_key_reused"


@dataclass(frozen=True)
class Accepted:
    request_id: str
    flow: str
    status: str
    created: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "flow": self.flow,
            "status": self.status,
            "status_url": f"/v1/requests/{self.request_id}",
        }


def journal_refused(
    hub: Hub,
    client: str,
    operation: str,
    code: str,
    raw: bytes = b"",
    started: float | None = None,
    concerned: Concerned | None = None,
) -> None:
    """Journal an inbound call the hub refused (a malformed, oversized or forbidden call from a
    known client), with the digest of what it sent and what it is known to concern. Calls without a
    valid key are not journaled, only logged: anyone could otherwise fill the journal."""
    latency_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    known = concerned or Concerned()
    row = hub.call_row(
        client,
        operation,
        "rejected",
        raw,
        latency_ms=latency_ms,
        error_code=code,
        purpose=known.purpose,
        citizen_ref=known.citizen_ref,
        request_id=known.request_id,
    )
    try:
        with hub.db.connection() as connection:
            connection.execute(insert(JOURNAL), row)
    except OperationalError:  # the database is down: the caller still learns what was wrong
        log.exception("could not journal a refused %s from %s (%s)", operation, client, code)
        return
    hub.metrics.exchanges.labels("inbound", "hub", "rejected").inc()


@dataclass(frozen=True)
class Prepared:
    """A validated request and the rows that record it, ready to be written."""

    request_row: dict[str, Any]
    journal_row: dict[str, Any]

    @property
    def request_id(self) -> str:
        return self.request_row["id"]


def identifier_errors(hub: Hub, citizen: CitizenIdentity) -> list[dict[str, Any]]:
    """The citizen's ``identifiers`` may only name systems the hub knows, other than the portal
    (whose identifier of the citizen is the request's pseudonymous reference)."""
    settings = hub.config
    portal = settings.master_data.portal_system
    known = {*settings.systems, portal}
    return [
        {"field": f"citizen.identifiers.{system}", "message": problem.split(": ", 1)[1]}
        for system in sorted(citizen.identifiers or {})
        for problem in identifier_problems([system], portal, known)
    ]


def _time_errors(citizen: CitizenIdentity) -> list[dict[str, Any]]:
    """A time the master data would store in UTC must convert to it: 0001-01-01T00:00+01:00 would
    be accepted (202) and then dead-letter in the worker."""
    if citizen.updated_at is None:
        return []
    try:
        storable_time(citizen.updated_at)
    except ValueError as exc:
        return [{"field": "citizen.updated_at", "message": str(exc)}]
    return []


def _requestable_flow(hub: Hub, name: str, concerned: Concerned) -> Flow:
    """The flow a client may file under ``name``: else 404 ``unknown_flow`` (checked before the
    rest of the body, so a client that names no flow learns that first), or 403 for the hub's own."""
    flow = hub.flows.get(name)
    internal = hub.config.master_data.merge_event_flow
    if flow is None:
        raise UnknownFlow(
            f"no flow named {name!r}",
            {"known_flows": sorted(known for known in hub.flows if known != internal)},
            concerned,
        )
    if flow.name == internal:
        raise FlowNotRequestable(
            f"flow {flow.name!r} is run by the hub itself for merges and unmerges of citizen records",
            {"flow": flow.name},
            Concerned(flow.spec.purpose, concerned.citizen_ref),
        )
    return flow


def invalid_body(hub: Hub, document: Any, details: list[dict[str, Any]]) -> IntakeError:
    """The refusal of a body its model refused (``details``): an unknown flow comes first (404),
    then the validation's 422, with what the body is known to concern (its flow's purpose, its
    citizen's reference when the identity alone is valid)."""
    fields = document if isinstance(document, dict) else {}
    citizen_ref = None
    try:
        identity = CitizenIdentity.model_validate(fields.get("citizen"))
        citizen_ref = citizen_reference(identity, hub.pseudonym_key)
    except ValidationError:
        pass
    name = fields.get("flow")
    if not isinstance(name, str):
        return InputInvalid("the request is invalid", details, Concerned(citizen_ref=citizen_ref))
    try:
        flow = _requestable_flow(hub, name, Concerned(citizen_ref=citizen_ref))
    except IntakeError as refused:
        return refused
    return InputInvalid("the request is invalid", details, Concerned(flow.spec.purpose, citizen_ref))


def prepare(
    hub: Hub, principal: Principal, body: RequestBody, idempotency_key: str | None, started: float
) -> Prepared:
    """Validate a request against its flow and build its rows; raise :class:`IntakeError` if invalid."""
    citizen_ref = citizen_reference(body.citizen, hub.pseudonym_key)
    flow = _requestable_flow(hub, body.flow, Concerned(citizen_ref=citizen_ref))
    concerned = Concerned(flow.spec.purpose, citizen_ref)
    unknown = identifier_errors(hub, body.citizen)
    if unknown:
        raise InputInvalid("the citizen's identifiers name systems the hub does not know", unknown, concerned)
    time_errors = _time_errors(body.citizen)
    if time_errors:
        raise InputInvalid("the citizen's updated_at cannot be stored", time_errors, concerned)
    errors = flow.input_errors(body.data)
    if errors:
        raise InputInvalid("the request data does not match the flow's input schema", errors, concerned)
    stored = body.model_dump(mode="json")
    body_digest = digest(stored, hub.digest_key)
    purpose = hub.config.purposes[flow.spec.purpose]
    request_id = new_id()
    context = CallContext(
        correlation_id=request_id,
        request_id=request_id,
        client=principal.name,
        purpose=flow.spec.purpose,
        legal_basis=purpose.legal_basis,
        citizen_ref=citizen_ref,
    )
    now = utcnow()
    request_row = {
        "id": request_id,
        "flow": flow.name,
        "client": principal.name,
        "idempotency_key": idempotency_key,
        "body_digest": body_digest,
        "body": stored,
        "status": "received",
        "citizen_ref": context.citizen_ref,
        "correlation_id": context.correlation_id,
        "context": {},
        "created_at": now,
        "updated_at": now,
    }
    journal_row = inbound_row(
        key=hub.journal_key,
        context=context,
        operation=f"POST /v1/requests ({flow.name})",
        outcome="accepted",
        latency_ms=(time.perf_counter() - started) * 1000,
        payload_digest=body_digest,
    )
    return Prepared(request_row, journal_row)


def record(connection: Connection, prepared: Prepared) -> Accepted:
    """Write a prepared request in the caller's transaction, or answer as the earlier request with
    the same client and Idempotency-Key (concurrent duplicates meet at the unique index)."""
    [outcome] = record_many(connection, [prepared])
    if isinstance(outcome, IntakeError):
        raise outcome
    return outcome


def record_many(connection: Connection, batch: list[Prepared]) -> list[Accepted | IntakeError]:
    """:func:`record` for several requests in the caller's transaction (group commit)."""
    if connection.dialect.name == "postgresql":
        created = _record_postgresql(connection, batch)
    else:
        created = [_record_sqlite(connection, p.request_row, p.journal_row) for p in batch]
    outcomes: list[Accepted | IntakeError] = []
    for prepared, was_created in zip(batch, created, strict=True):
        row = prepared.request_row
        if was_created:
            outcomes.append(Accepted(row["id"], row["flow"], "received", created=True))
            continue
        existing = connection.execute(
            select(REQUESTS.c.id, REQUESTS.c.flow, REQUESTS.c.body_digest).where(
                REQUESTS.c.client == row["client"], REQUESTS.c.idempotency_key == row["idempotency_key"]
            )
        ).one()
        try:
            outcomes.append(_replay(existing.id, existing.flow, existing.body_digest, prepared))
        except IntakeError as error:
            outcomes.append(error)
    return outcomes


def journal_replayed(hub: Hub, prepared: Prepared, request_id: str) -> None:
    """Journal a duplicate the Idempotency-Key answered with the earlier request: it carried the
    citizen's identity into the hub too, so it is an exchange (outcome ``replayed``, the digest of
    its body, the request it was answered with). Written after the answer's own commit, apart from
    the intake's batched path; a database that fails here only costs the row (logged)."""
    row = {**prepared.journal_row, "request_id": request_id, "outcome": "replayed"}
    row["mac"] = row_mac(row, hub.journal_key)
    try:
        with hub.db.connection(single_statement=True) as connection:
            connection.execute(insert(JOURNAL), row)
    except OperationalError:
        log.exception("could not journal a replayed request %s", request_id)
        return
    hub.metrics.exchanges.labels("inbound", "hub", "replayed").inc()


def recorded(hub: Hub, accepted: Accepted) -> None:
    """After the commit: count the exchange and wake the workers."""
    if accepted.created:
        hub.metrics.exchanges.labels("inbound", "hub", "accepted").inc()
        hub.wake_workers()


def submit(
    hub: Hub, principal: Principal, body: RequestBody, idempotency_key: str | None, started: float
) -> Accepted:
    """Validate and durably record one request (the API batches instead: :mod:`hub.group_commit`)."""
    prepared = prepare(hub, principal, body, idempotency_key, started)
    # On PostgreSQL the writes are one statement, atomic by itself: no BEGIN/COMMIT round trips.
    with hub.db.connection(single_statement=True) as connection:
        accepted = record(connection, prepared)
    recorded(hub, accepted)
    return accepted


@functools.cache
def _sqlite_insert_request(columns: tuple[str, ...]) -> Direct:
    """Built once per column set: a duplicate (client, Idempotency-Key) inserts nothing and returns
    no row."""
    return Direct(
        sqlite.insert(REQUESTS)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["client", "idempotency_key"])
        .returning(REQUESTS.c.id)
    )


_OUTBOX_COLUMNS = ("request_id", "state", "step", "available_at", "attempts", "created_at")
_EVENT_COLUMNS = ("request_id", "at", "step", "outcome")


def _record_sqlite(connection: Connection, request_row: dict[str, Any], journal_row: dict[str, Any]) -> bool:
    """Write the request, its outbox message, first event and journal row; False on a duplicate key.

    Sent with ``exec_driver_sql`` (:mod:`hub.db.prebuilt`): the intake writes four rows per request
    and Core's per-execution work was most of their cost."""
    if _sqlite_insert_request(tuple(request_row)).execute(connection, request_row).first() is None:
        return False
    request_id, now = request_row["id"], request_row["created_at"]
    direct_insert(OUTBOX, _OUTBOX_COLUMNS).execute(
        connection,
        {
            "request_id": request_id,
            "state": "pending",
            "step": 0,
            "available_at": now,
            "attempts": 0,
            "created_at": now,
        },
    )
    direct_insert(EVENTS, _EVENT_COLUMNS).execute(
        connection, {"request_id": request_id, "at": now, "step": "received", "outcome": "ok"}
    )
    journal = {**journal_row, "request_id": request_id}
    direct_insert(JOURNAL, tuple(journal)).execute(connection, journal)
    return True


_JOURNAL_COLUMNS = [c.name for c in JOURNAL.columns if c.name not in ("id", "seq", "prev_hash", "hash")]
_REQUEST_COLUMNS = [
    "id",
    "flow",
    "client",
    "idempotency_key",
    "body_digest",
    "body",
    "status",
    "citizen_ref",
    "correlation_id",
    "context",
    "created_at",
    "updated_at",
]
# PostgreSQL: the same four writes as one statement (data-modifying CTEs), one round trip instead of
# six; the outbox, event and journal rows exist only if the request row was inserted.
_POSTGRESQL_RECORD = text(
    f"""
    WITH r AS (
        INSERT INTO requests ({", ".join(_REQUEST_COLUMNS)})
        VALUES ({", ".join(":" + c for c in _REQUEST_COLUMNS)})
        ON CONFLICT (client, idempotency_key) DO NOTHING
        RETURNING id, created_at
    ), o AS (
        INSERT INTO outbox (request_id, state, step, available_at, attempts, created_at)
        SELECT id, 'pending', 0, created_at, 0, created_at FROM r
    ), e AS (
        INSERT INTO request_events (request_id, at, step, outcome)
        SELECT id, created_at, 'received', 'ok' FROM r
    ), j AS (
        INSERT INTO journal ({", ".join(_JOURNAL_COLUMNS)})
        SELECT {", ".join(":j_" + c for c in _JOURNAL_COLUMNS)} FROM r
    )
    SELECT id FROM r
    """
).bindparams(
    *(bindparam(c, type_=REQUESTS.c[c].type) for c in _REQUEST_COLUMNS),
    *(bindparam("j_" + c, type_=JOURNAL.c[c].type) for c in _JOURNAL_COLUMNS),
)


def _record_postgresql(connection: Connection, batch: list[Prepared]) -> list[bool]:
    """One statement per request, sent together in psycopg's pipeline mode: one network round trip
    for the whole batch instead of one per request."""
    driver = connection.connection.driver_connection
    sql = _postgresql_sql(connection.dialect)
    with driver.pipeline():
        cursors = []
        for prepared in batch:
            cursor = driver.cursor()
            cursor.execute(sql, _postgresql_params(prepared))
            cursors.append(cursor)
    return [cursor.fetchone() is not None for cursor in cursors]


@functools.cache
def _postgresql_sql(dialect: Dialect) -> str:
    """The statement in the driver's own placeholder syntax, compiled once."""
    return str(_POSTGRESQL_RECORD.compile(dialect=dialect))


def _postgresql_params(prepared: Prepared) -> dict[str, Any]:
    # Imported here: psycopg is the `postgres` extra, absent from an embedded (SQLite) install.
    from psycopg.types.json import Json

    params = {**prepared.request_row, **{f"j_{k}": v for k, v in prepared.journal_row.items()}}
    params["j_request_id"] = prepared.request_row["id"]
    params["body"] = Json(params["body"])
    params["context"] = Json(params["context"])
    return params


def _replay(request_id: str, flow: str, stored_digest: str, prepared: Prepared) -> Accepted:
    if stored_digest != prepared.request_row["body_digest"]:
        journal_row = prepared.journal_row
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different body",
            {"request_id": request_id},
            # the body refused is about its own citizen and flow; the key points to request_id
            Concerned(journal_row["purpose"], journal_row["citizen_ref"], request_id),
        )
    # The same answer as the first time: the request as it was accepted (its status URL says more).
    return Accepted(request_id, flow, "received", created=False)
