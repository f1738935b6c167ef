"""The état-civil registry as business operations: find a birth act, ask for a copy, follow it.

Written on :class:`~connectors.soap.SoapAdapter`, so every call goes through the system's gateway
(journal, retry, breaker) and carries the call's idempotency key. The flow engine may call
:meth:`EtatCivilConnector.call` with a mapped message; code may use the typed methods.

``DATA_CATEGORIES`` declares, per operation, the categories of personal data the message carries,
named as in ``config/hub.yaml``'s register of processing (``purposes.*.data_categories``), so the
hub can check that a flow's purpose covers what its calls send.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

from connectors.errors import declared_categories
from connectors.exchange import CallContext
from connectors.soap import SoapAdapter

CopyType = Literal["COPIE_INTEGRALE", "EXTRAIT_AVEC_FILIATION", "EXTRAIT_SANS_FILIATION"]
Sex = Literal["M", "F"]


class DeliveryAddress(TypedDict):
    line1: str
    postalCode: str
    city: str
    country: NotRequired[str | None]


class BirthRecordMatch(TypedDict):
    found: bool
    actNumber: str | None
    birthName: str | None
    givenNames: str | None
    birthDate: str | None  # ISO 8601
    birthPlaceInsee: str | None
    sex: Sex | None


class ActRequestCreated(TypedDict):
    requestNumber: str
    status: Literal["PENDING"]
    actNumber: str


class ActRequestStatus(TypedDict):
    requestNumber: str
    status: Literal["PENDING", "ISSUED", "REJECTED"]
    issuedAt: str | None  # ISO 8601 with offset
    rejectionReason: str | None


def _iso(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


class EtatCivilConnector:
    """Operations of the état-civil registry (SOAP, ``urn:collectivite:etat-civil:v1``)."""

    DATA_CATEGORIES: ClassVar[dict[str, tuple[str, ...]]] = {
        "SearchBirthRecord": ("identite", "etat_civil"),
        "RequestActCopy": ("identite", "etat_civil", "coordonnees", "adresse"),
        "GetActRequestStatus": (),  # the registry's request number only
    }

    def __init__(self, adapter: SoapAdapter) -> None:
        missing = set(self.DATA_CATEGORIES) - adapter.operations
        if missing:
            raise ValueError(
                f"system {adapter.system}: the WSDL lacks operations {sorted(missing)} "
                "of the état-civil connector"
            )
        self.adapter = adapter

    @classmethod
    def data_categories(cls, operation: str) -> tuple[str, ...]:
        return declared_categories(cls.DATA_CATEGORIES, operation, "état-civil")

    def call(
        self, operation: str, message: Mapping[str, Any], context: CallContext, *, retry: bool = True
    ) -> dict[str, Any]:
        """Call an operation with an already mapped message (what the flow engine does)."""
        self.data_categories(operation)
        return self.adapter.call(operation, message, context, retry=retry)

    def search_birth_record(
        self,
        context: CallContext,
        *,
        birth_name: str,
        given_names: str,
        birth_date: date | str,
        birth_place_insee: str | None = None,
        retry: bool = True,
    ) -> BirthRecordMatch:
        message = {
            "birthName": birth_name,
            "givenNames": given_names,
            "birthDate": _iso(birth_date),
            "birthPlaceInsee": birth_place_insee,
        }
        return self.call("SearchBirthRecord", message, context, retry=retry)  # type: ignore[return-value]

    def request_act_copy(
        self,
        context: CallContext,
        *,
        copy_type: CopyType,
        birth_name: str,
        given_names: str,
        birth_date: date | str,
        birth_place_insee: str,
        sex: Sex,
        used_name: str | None = None,
        requester_email: str | None = None,
        delivery_address: DeliveryAddress | None = None,
        reference: str | None = None,
        retry: bool = True,
    ) -> ActRequestCreated:
        """File a request; the registry answers PENDING. ``reference`` defaults to the hub's
        request id, so the registry's agents can trace the request back to the portal."""
        message = {
            "copyType": copy_type,
            "birthName": birth_name,
            "usedName": used_name,
            "givenNames": given_names,
            "birthDate": _iso(birth_date),
            "birthPlaceInsee": birth_place_insee,
            "sex": sex,
            "requesterEmail": requester_email,
            "deliveryAddress": dict(delivery_address) if delivery_address else None,
            "reference": reference if reference is not None else context.request_id,
        }
        return self.call("RequestActCopy", message, context, retry=retry)  # type: ignore[return-value]

    def get_act_request_status(
        self, context: CallContext, request_number: str, *, retry: bool = True
    ) -> ActRequestStatus:
        message = {"requestNumber": request_number}
        return self.call("GetActRequestStatus", message, context, retry=retry)  # type: ignore[return-value]
