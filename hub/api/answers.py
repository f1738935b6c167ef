"""The JSON answers of the citizens, stewardship and journal routes, as the OpenAPI document types
them.

The routes build their answers as plain dicts (:mod:`hub.citizens`, :mod:`hub.journal_search`,
:func:`hub.journal.verify`); these models describe those dicts key by key and are published with
:func:`typed`, for the document only: the answer is not run through them, so the wire stays what
the services build (a model would turn an integer ``0`` into ``0.0``, reorder keys, and answer a
500 for a stored row of an older shape). tests/hub/test_openapi_answers.py holds each route's real
answer to the schema published here, so the two cannot drift apart.

Every model forbids keys it does not name (``additionalProperties: false``); a key a route sends
only sometimes is :func:`absent` (left out, never null), a key it always sends that may be null is
typed ``X | None``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.flows import STATUSES
from master_data.survivorship import Attribute, Rule

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
GoldenStatus = Literal["active", "merged"]


def typed(model: type[BaseModel], description: str) -> dict[int | str, Any]:
    """A route's 200 ``responses`` entry: ``model`` as its JSON answer (with ``response_model=None``
    on the route, so that FastAPI neither filters nor re-encodes what the route returns)."""
    return {200: {"model": model, "description": description}}


def absent(description: str, *, format: str | None = None) -> Any:
    """A key the answer leaves out when it has nothing to say (never sent as null): not required,
    and without the ``default: null`` it would never take."""

    def schema_of(schema: dict[str, Any]) -> None:
        schema.pop("default", None)
        if format is not None:
            schema["format"] = format

    return Field(default=None, description=description, json_schema_extra=schema_of)


class Answer(BaseModel):
    """An answer's object: closed, no key besides those it names (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- citizens (360° view)


class GoldenAddress(Answer):
    """The address survives as one block: a street from one system and a city from another
    would describe nowhere."""

    line: str | None
    postal_code: str | None
    city: str | None


GoldenValueOf = str | list[str] | GoldenAddress
VALUE_DOC = "given_names: the given names in civil order; address: one block; any other: a string"


class Lineage(Answer):
    """Where a golden value comes from."""

    source_record_id: int
    system: str
    local_id: str
    exchange_id: int | None = Field(description="the journal row of the exchange that brought it")
    observed_at: Timestamp = Field(description="when the hub received it")
    updated_at: Timestamp | None = Field(description="when the source itself last changed it, if it said")
    rule: Rule = Field(description="the survivorship rule that chose it")


class GoldenValue(Answer):
    value: GoldenValueOf = Field(description=VALUE_DOC)
    lineage: Lineage


class CrossReference(Answer):
    system: str
    local_id: str
    source_record_id: int
    link: str = Field(description="new, score, rule:<name>, steward or merge: how it was linked")
    probability: float | None
    linked_at: Timestamp


class StatedBy(Answer):
    """The record that states the identifier, and the exchange that brought it."""

    source_record_id: int
    system: str
    local_id: str
    exchange_id: int | None
    received_at: Timestamp
    updated_at: str | None = Field(description="the record's own updated_at, as its source gave it")


class StatedIdentifier(Answer):
    system: str
    local_id: str
    held_by: str | None = Field(description="the golden record holding it now (this one, another, or none)")
    stated_by: StatedBy


class CitizenView(Answer):
    """The 360° view of a golden record; a merged one answers with `status: merged`."""

    id: str
    status: GoldenStatus
    merged_into: str | None
    version: int
    created_at: Timestamp
    updated_at: Timestamp
    values: dict[Attribute, GoldenValue]
    cross_references: list[CrossReference]
    merged_from: list[str]
    stated_identifiers: list[StatedIdentifier]


class VersionLineage(Answer):
    """A value's lineage as its version recorded it: `updated_at` only when the source said."""

    source_record_id: int
    system: str
    local_id: str
    exchange_id: int | None
    observed_at: Timestamp
    rule: Rule
    updated_at: str = absent(
        "when the source itself last changed it (left out if it did not say)", format="date-time"
    )


class VersionValue(Answer):
    value: GoldenValueOf = Field(description=VALUE_DOC)
    lineage: VersionLineage


class GoldenVersion(Answer):
    version: int
    at: Timestamp
    cause: Literal["created", "source_linked", "source_updated", "merged", "unmerged"]
    actor: str
    status: GoldenStatus
    merged_into: str | None
    values: dict[Attribute, VersionValue]
    xrefs: list[tuple[str, str]] = Field(description="[system, local id] of each record it held")


class HistoryEvent(Answer):
    id: int
    kind: Literal["merge", "unmerge"]
    at: Timestamp
    actor: str
    golden_id: str = Field(description="the survivor")
    other_id: str = Field(description="the record absorbed, or restored")
    moved: list[tuple[str, str]] = Field(description="[system, local id] of each record moved")
    systems: list[str]
    reason: str | None
    undone_by: int | None = Field(description="the unmerge that split it back")
    notice_request_id: str | None


class CitizenHistory(Answer):
    id: str
    versions: list[GoldenVersion]
    events: list[HistoryEvent]


class CitizenRequest(Answer):
    id: str
    flow: str
    status: str = Field(json_schema_extra={"enum": list(STATUSES)})
    client: str
    target_system: str | None
    golden_id: str = Field(description="this record, or a record merged into it")
    created_at: Timestamp
    completed_at: Timestamp | None


class CitizenRequests(Answer):
    id: str
    requests: list[CitizenRequest]


class MovedRecord(Answer):
    system: str
    local_id: str


class MergeEvent(Answer):
    """What a merge or an unmerge did."""

    event_id: int
    kind: Literal["merge", "unmerge"]
    golden_id: str
    other_id: str
    moved: list[MovedRecord]
    systems: list[str] = Field(description="the systems that know either golden record")
    notice_request_id: str | None = Field(
        description="the request of master_data.merge_event_flow filed to tell them, or null"
    )


# ---------------------------------------------------------------------- stewardship


class FieldComparison(Answer):
    field: str
    level: str
    weight: float


class Explanation(Answer):
    rule: str | None = Field(description="a deterministic rule that fired, or a conflict (conflict:…)")
    comparisons: list[FieldComparison]
    total: float
    probability: float


class SourceRecord(Answer):
    """A source record as stored: a system's own values, never normalised."""

    system: str
    local_id: str
    birth_name: str | None
    used_name: str | None
    given_names: list[str]
    birth_date: str | None
    sex: str | None
    birth_place: str | None
    address: str | None
    postal_code: str | None
    city: str | None
    email: str | None
    phone: str | None
    nir: str | None
    identifiers: dict[str, str] = absent("other systems' identifiers it states (left out if none)")
    updated_at: str = absent("when the source last changed it, as it gave it (left out if it did not)")


class ReviewTask(Answer):
    id: int
    status: Literal["open", "linked", "not_same"]
    created_at: Timestamp
    golden_id: str
    candidate_golden_id: str
    probability: float
    total: float
    rule: str | None = Field(description="why the task was made; null: the score's review band")
    why: str = Field(description="the rule, in words")
    explanation: Explanation
    decided_at: Timestamp | None
    decided_by: str | None
    reason: str | None


class QueuedTask(ReviewTask):
    record: SourceRecord
    candidate: SourceRecord


class TaskPage(Answer):
    tasks: list[QueuedTask]
    next_after: int | None = Field(description="the after of the next page; null after the last")


class DecidedTask(ReviewTask):
    merge: MergeEvent | None = Field(description="what link merged; null for not_same")


class ExplainedSides(Answer):
    a: str = absent("the golden record a lives in now, when a is a merged golden id")
    b: str = absent("the golden record b lives in now, when b is a merged golden id")


class ExplainedPair(Answer):
    a: str
    b: str
    golden_ids: list[str] = Field(description="the one person, or the two people, compared")
    merged_into: ExplainedSides
    outcome: Literal["link", "review", "new"] = Field(description="what the matcher itself decides")
    rule: str | None
    comparisons: list[FieldComparison]
    total: float
    probability: float


class Thresholds(Answer):
    upper: float
    lower: float


class SuggestedThresholds(Answer):
    upper: float | None
    lower: float | None


class ThresholdBand(Answer):
    from_: float = Field(alias="from")
    to: float
    decided: int
    linked: int
    not_same: int
    linked_share: float | None


class RuleDecisions(Answer):
    rule: str
    decided: int
    linked: int
    not_same: int


class ThresholdsReport(Answer):
    thresholds: Thresholds
    decided: int = Field(description="every steward decision")
    scored: int = Field(description="decisions on tasks the score's review band made (no rule)")
    pending: int = Field(description="the open tasks the queue lists")
    bands: list[ThresholdBand]
    suggested: SuggestedThresholds
    by_rule: list[RuleDecisions]


# ---------------------------------------------------------------------- journal


class JournalEntry(Answer):
    """One exchange: references and digests, never the data exchanged."""

    id: int
    at: Timestamp
    correlation_id: str
    request_id: str | None
    client: str | None
    direction: Literal["inbound", "outbound"]
    system: str
    operation: str
    purpose: str | None
    legal_basis: str | None
    citizen_ref: str | None
    outcome: str
    attempt: int
    latency_ms: float
    payload_digest: str
    response_digest: str | None
    error_code: str | None
    seq: int | None = Field(description="its position in the hash chain; null until sealed")
    hash: str | None
    sealed: bool


class JournalPage(Answer):
    entries: list[JournalEntry]
    next_after: int | None = Field(description="the after of the next page; null after the last")


class Verification(Answer):
    ok: bool
    checked: int
    unsealed: int
    head_seq: int
    first_bad_seq: int | None
    first_bad_id: int | None
    problem: str | None = Field(description="the first problem found; null when ok")
    checkpoints: int = Field(description="the checkpoints given that the journal still holds")
    at_head: bool = Field(description="the problem is the head itself: what it says cannot be trusted")
    summary: str
