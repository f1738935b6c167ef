"""The école/enfance software as business operations: families, children, enrolments.

Written on :class:`~connectors.rest.RestAdapter` with the system's OpenAPI file, so every call
goes through the system's gateway (journal, retry, breaker) and carries the call's idempotency
key; the flow engine calls :meth:`EcoleConnector.call` with a mapped message, code may use the
typed methods. The personal-data categories of each operation are declared in the OpenAPI file
(``x-data-categories``) and read from there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, Literal

from connectors.exchange import CallContext
from connectors.rest import RestAdapter

EnrolmentKind = Literal["school", "periscolaire", "creche"]
REQUIRED_OPERATIONS = frozenset(
    {
        "SearchFamilies",
        "FindOrCreateFamily",
        "GetFamily",
        "FindOrCreateChild",
        "CreateEnrolment",
        "GetEnrolment",
        "CancelEnrolment",
        "LinkCitizenRecords",
        "GetCitizenRecords",
    }
)


def _iso(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


class EcoleConnector:
    """Operations of the école/enfance software (REST, ``/api/v1``)."""

    def __init__(self, adapter: RestAdapter) -> None:
        missing = REQUIRED_OPERATIONS - set(adapter.operations)
        if missing:
            raise ValueError(
                f"system {adapter.system}: the OpenAPI file lacks operations {sorted(missing)} "
                "of the école connector"
            )
        self.adapter = adapter

    def close(self) -> None:
        self.adapter.close()

    def data_categories(self, operation: str) -> tuple[str, ...]:
        return self.adapter.data_categories(operation)

    def call(
        self, operation: str, message: Mapping[str, Any], context: CallContext, *, retry: bool = True
    ) -> dict[str, Any]:
        return self.adapter.call(operation, message, context, retry=retry)

    def search_families(
        self,
        context: CallContext,
        *,
        birth_name: str,
        birth_date: date | str | None = None,
        first_names: str | None = None,
        page_size: int = 50,
    ) -> Iterator[dict[str, Any]]:
        """Every family whose responsible adult matches, page after page."""
        message = {
            "birth_name": birth_name,
            "birth_date": _iso(birth_date) if birth_date else None,
            "first_names": first_names,
            "limit": page_size,
        }
        return self.adapter.paginate("SearchFamilies", context, message)

    def find_or_create_family(
        self,
        context: CallContext,
        *,
        responsible: Mapping[str, Any],
        address: Mapping[str, Any] | None = None,
        quotient_familial: int | None = None,
    ) -> dict[str, Any]:
        """The family of the responsible adult, found again by identity or created."""
        message = {"responsible": dict(responsible), "address": dict(address) if address else None}
        if quotient_familial is not None:
            message["quotient_familial"] = quotient_familial
        return self.call("FindOrCreateFamily", message, context)

    def find_or_create_child(
        self,
        context: CallContext,
        family_id: str,
        *,
        birth_name: str,
        first_names: str,
        birth_date: date | str,
        sex: Literal["F", "M"] | None = None,
    ) -> dict[str, Any]:
        message = {
            "family_id": family_id,
            "birth_name": birth_name,
            "first_names": first_names,
            "birth_date": _iso(birth_date),
            "sex": sex,
        }
        return self.call("FindOrCreateChild", message, context)

    def enrol(
        self,
        context: CallContext,
        *,
        kind: EnrolmentKind,
        child_id: str,
        school_year: str,
        school: str,
        level: str | None = None,
    ) -> dict[str, Any]:
        """School or after-school enrolment, or nursery pre-enrolment (``kind="creche"``)."""
        message = {
            "child_id": child_id,
            "school_year": school_year,
            "kind": kind,
            "school": school,
            "level": level,
        }
        return self.call("CreateEnrolment", message, context)

    def enrol_school(self, context: CallContext, **fields: Any) -> dict[str, Any]:
        return self.enrol(context, kind="school", **fields)

    def enrol_after_school(self, context: CallContext, **fields: Any) -> dict[str, Any]:
        return self.enrol(context, kind="periscolaire", **fields)

    def pre_enrol_nursery(self, context: CallContext, **fields: Any) -> dict[str, Any]:
        return self.enrol(context, kind="creche", **fields)

    def enrolment(self, context: CallContext, enrolment_id: str) -> dict[str, Any]:
        return self.call("GetEnrolment", {"enrolment_id": enrolment_id}, context)

    def cancel_enrolment(
        self, context: CallContext, enrolment_id: str, *, reason: str | None = None
    ) -> dict[str, Any]:
        return self.call("CancelEnrolment", {"enrolment_id": enrolment_id, "reason": reason}, context)

    def link_citizen_records(
        self,
        context: CallContext,
        *,
        event: Literal["merged", "unmerged"],
        event_id: str,
        citizen_id: str,
        records: list[str],
        replaces: str | None = None,
        split_from: str | None = None,
    ) -> dict[str, Any]:
        """Tell the software that its ``records`` are the person ``citizen_id`` of the citizen
        repository: after a merge (``replaces`` the absorbed id) or a split (``split_from`` the
        person they no longer are). Identifiers only: the software keeps its own identities."""
        message = {
            "event": event,
            "event_id": event_id,
            "citizen_id": citizen_id,
            "records": list(records),
            "replaces": replaces,
            "split_from": split_from,
        }
        return self.call("LinkCitizenRecords", message, context)

    def citizen_records(self, context: CallContext, citizen_id: str) -> dict[str, Any]:
        """The software's records linked to one person of the citizen repository."""
        return self.call("GetCitizenRecords", {"citizen_id": citizen_id}, context)
