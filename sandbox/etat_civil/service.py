"""The simulated état-civil back-end as a SOAP 1.1 service (document/literal wrapped).

``create_app(knobs=None, issue_delay_s=0.5, *, credentials=None) -> (app, state)``:

- ``app`` is the ASGI application, wrapped in :class:`~sandbox.knobs.KnobsMiddleware`;
  ``GET /etat-civil?wsdl`` serves ``etat-civil.wsdl``, ``POST /etat-civil`` takes SOAP envelopes,
  ``PUT /_sandbox/knobs`` turns the fault knobs.
- ``state`` is the :class:`~sandbox.etat_civil.registry.EtatCivilState` behind it, so a test can
  count back-end effects (``state.created_count``, ``state.act_requests()``); ``state.knobs`` is
  the :class:`~sandbox.knobs.Knobs` in use (the one passed in, or a fresh one).
- ``credentials=(username, password)`` makes the service demand a WS-Security UsernameToken
  (PasswordText); without it the service ignores the SOAP header.

Faults are SOAP 1.1 faults (HTTP 500) whose ``detail`` holds ``tns:EtatCivilFault`` with a stable
``code``: ``soap:Client`` for what the caller must fix (MALFORMED_ENVELOPE, SCHEMA_INVALID,
UNKNOWN_OPERATION, RECORD_NOT_FOUND, REQUEST_NOT_FOUND, IDEMPOTENCY_KEY_REUSED,
AUTHENTICATION_FAILED), ``soap:Server`` for the service's own failures (INTERNAL_ERROR). Fault
messages never echo personal data, since callers journal them.

The WSDL is read and its schema compiled once per app, never per request: the end-to-end bench
pushes a few hundred requests per second through here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from sandbox.etat_civil.registry import EtatCivilState, RegistryError
from sandbox.knobs import Knobs, KnobsMiddleware

WSDL_PATH = Path(__file__).with_name("etat-civil.wsdl")
SERVICE_PATH = "/etat-civil"
TNS = "urn:collectivite:etat-civil:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XSD = "http://www.w3.org/2001/XMLSchema"
MAX_BODY_BYTES = 1 << 20

_XML = "text/xml; charset=utf-8"
_log = logging.getLogger(__name__)


class SoapFault(Exception):
    def __init__(self, fault_code: str, code: str, message: str) -> None:
        super().__init__(message)
        self.fault_code = fault_code
        self.code = code
        self.message = message


def _client_fault(code: str, message: str) -> SoapFault:
    return SoapFault("soap:Client", code, message)


def _parser() -> etree.XMLParser:
    # No DTD, no entities, no network: the envelope is untrusted input.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _compile_schema(wsdl: bytes) -> etree.XMLSchema:
    root = etree.fromstring(wsdl, _parser())
    schema = root.find(f"{{http://schemas.xmlsoap.org/wsdl/}}types/{{{XSD}}}schema")
    if schema is None:
        raise ValueError(f"{WSDL_PATH}: no inline xs:schema under wsdl:types")
    return etree.XMLSchema(etree.ElementTree(etree.fromstring(etree.tostring(schema), _parser())))


def _q(name: str) -> str:
    return f"{{{TNS}}}{name}"


def _text(element: etree._Element, name: str) -> str | None:
    child = element.find(_q(name))
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _required(element: etree._Element, name: str) -> str:
    value = _text(element, name)
    if value is None:  # the schema already demands it; this guards a schema edit
        raise _client_fault("SCHEMA_INVALID", f"element {name} is required")
    return value


def _date(element: etree._Element, name: str) -> date:
    value = _required(element, name)
    try:
        # xs:date may carry a timezone; the registry compares calendar days.
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise _client_fault("SCHEMA_INVALID", f"element {name} is not an xs:date") from exc


def _response(name: str, fields: list[tuple[str, str | None]]) -> etree._Element:
    wrapper = etree.Element(_q(name), nsmap={"ec": TNS})
    for field, value in fields:
        if value is not None:
            etree.SubElement(wrapper, _q(field)).text = value
    return wrapper


def _envelope(body_child: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(body_child)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _fault_body(fault: SoapFault) -> bytes:
    node = etree.Element(f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(node, "faultcode").text = fault.fault_code
    etree.SubElement(node, "faultstring").text = fault.message
    detail = etree.SubElement(node, "detail")
    ec_fault = etree.SubElement(detail, _q("EtatCivilFault"), nsmap={"ec": TNS})
    etree.SubElement(ec_fault, _q("code")).text = fault.code
    etree.SubElement(ec_fault, _q("message")).text = fault.message
    return _envelope(node)


_ELEMENT_IN_ERROR = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'(?:[^\[]*\[([^\]]+)\])?")


def _schema_error(error: etree._LogEntry | None) -> str:
    """Name the element and the rule it breaks, never the value (it may be personal data)."""
    match = _ELEMENT_IN_ERROR.search(error.message) if error is not None else None
    if match is None:
        return "request does not match the schema"
    rule = f" ({match.group(2)})" if match.group(2) else ""
    return f"element {match.group(1)} does not match the schema{rule}"


class _EtatCivilSoap:
    """Dispatches one SOAP envelope to the registry; one instance per app, built once."""

    def __init__(self, state: EtatCivilState, wsdl: bytes, credentials: tuple[str, str] | None) -> None:
        self.state = state
        self.wsdl = wsdl
        self.schema = _compile_schema(wsdl)
        self.credentials = credentials
        self.operations: dict[str, Callable[[etree._Element, Request], etree._Element]] = {
            _q("SearchBirthRecord"): self.search_birth_record,
            _q("RequestActCopy"): self.request_act_copy,
            _q("GetActRequestStatus"): self.get_act_request_status,
        }

    async def endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            if "wsdl" in request.query_params:
                return Response(self.wsdl, media_type=_XML)
            return Response("append ?wsdl to get the service description\n", status_code=400)
        try:
            body = await self._read_body(request)
            result = self.dispatch(body, request)
        except SoapFault as fault:
            return Response(_fault_body(fault), status_code=500, media_type=_XML)
        except Exception:  # the service's own bug: a Server fault, as a real stack would answer
            _log.exception("etat-civil sandbox: unexpected error")
            fault = SoapFault("soap:Server", "INTERNAL_ERROR", "internal error")
            return Response(_fault_body(fault), status_code=500, media_type=_XML)
        return Response(_envelope(result), media_type=_XML)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _client_fault("MALFORMED_ENVELOPE", f"body larger than {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise _client_fault("MALFORMED_ENVELOPE", f"body larger than {MAX_BODY_BYTES} bytes")
        return body

    def dispatch(self, body: bytes, request: Request) -> etree._Element:
        try:
            envelope = etree.fromstring(body, _parser())
        except etree.XMLSyntaxError as exc:
            raise _client_fault("MALFORMED_ENVELOPE", "body is not well-formed XML") from exc
        if envelope.getroottree().docinfo.doctype:
            raise _client_fault("MALFORMED_ENVELOPE", "a SOAP message must not contain a DTD")
        if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
            raise _client_fault("MALFORMED_ENVELOPE", "root element is not a SOAP 1.1 Envelope")
        soap_body = envelope.find(f"{{{SOAP_ENV}}}Body")
        payload = None if soap_body is None else next(iter(soap_body.iterchildren("*")), None)
        if payload is None:
            raise _client_fault("MALFORMED_ENVELOPE", "SOAP Body holds no request element")
        self._authenticate(envelope)
        operation = self.operations.get(payload.tag)
        if operation is None:
            raise _client_fault("UNKNOWN_OPERATION", f"unknown request element {payload.tag}")
        try:
            valid = self.schema.validate(payload)
        except etree.XMLSchemaValidateError as exc:
            raise _client_fault("SCHEMA_INVALID", "request cannot be validated") from exc
        if not valid:
            raise _client_fault("SCHEMA_INVALID", _schema_error(self.schema.error_log.last_error))
        try:
            return operation(payload, request)
        except RegistryError as exc:
            raise _client_fault(exc.code, exc.message) from exc

    def _authenticate(self, envelope: etree._Element) -> None:
        if self.credentials is None:
            return
        token = envelope.find(f"{{{SOAP_ENV}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        username = None if token is None else token.findtext(f"{{{WSSE}}}Username")
        password = None if token is None else token.findtext(f"{{{WSSE}}}Password")
        expected_user, expected_password = self.credentials
        if (
            username is None
            or password is None
            or not hmac.compare_digest(username.encode(), expected_user.encode())
            or not hmac.compare_digest(password.encode(), expected_password.encode())
        ):
            raise _client_fault("AUTHENTICATION_FAILED", "missing or wrong UsernameToken")

    def search_birth_record(self, payload: etree._Element, request: Request) -> etree._Element:
        record = self.state.search(
            _required(payload, "birthName"),
            _required(payload, "givenNames"),
            _date(payload, "birthDate"),
            _text(payload, "birthPlaceInsee"),
        )
        if record is None:
            return _response("SearchBirthRecordResponse", [("found", "false")])
        return _response(
            "SearchBirthRecordResponse",
            [
                ("found", "true"),
                ("actNumber", record.act_number),
                ("birthName", record.birth_name),
                ("givenNames", record.given_names),
                ("birthDate", record.birth_date.isoformat()),
                ("birthPlaceInsee", record.birth_place_insee),
                ("sex", record.sex),
            ],
        )

    def request_act_copy(self, payload: etree._Element, request: Request) -> etree._Element:
        record = self.state.find_act(
            _required(payload, "birthName"),
            _date(payload, "birthDate"),
            _required(payload, "birthPlaceInsee"),
        )
        fingerprint = hashlib.sha256(etree.tostring(payload, method="c14n")).hexdigest()
        act_request = self.state.request_copy(
            record,
            _required(payload, "copyType"),
            reference=_text(payload, "reference"),
            idempotency_key=request.headers.get("idempotency-key") or None,
            fingerprint=fingerprint,
            copies=int(_text(payload, "copies") or 1),  # the schema checked it is 1..10
            reason=_text(payload, "reason"),
        )
        return _response(
            "RequestActCopyResponse",
            [
                ("requestNumber", act_request.request_number),
                ("status", "PENDING"),
                ("actNumber", act_request.act_number),
                ("copies", str(act_request.copies)),
            ],
        )

    def get_act_request_status(self, payload: etree._Element, request: Request) -> etree._Element:
        state = self.state.status(_required(payload, "requestNumber"))
        issued_at = None
        if state.issued_at is not None:
            issued_at = state.issued_at.isoformat().replace("+00:00", "Z")
        return _response(
            "GetActRequestStatusResponse",
            [
                ("requestNumber", state.request_number),
                ("status", state.status),
                ("issuedAt", issued_at),
                ("rejectionReason", state.rejection_reason),
                ("copies", str(state.copies)),
            ],
        )


def create_app(
    knobs: Knobs | None = None,
    issue_delay_s: float = 0.5,
    *,
    credentials: tuple[str, str] | None = None,
) -> tuple[ASGIApp, EtatCivilState]:
    """Build the état-civil sandbox: ``(asgi_app, state)``; see the module docstring."""
    knobs = knobs if knobs is not None else Knobs()
    state = EtatCivilState(issue_delay_s=issue_delay_s, knobs=knobs)
    soap = _EtatCivilSoap(state, WSDL_PATH.read_bytes(), credentials)
    inner = Starlette(routes=[Route(SERVICE_PATH, soap.endpoint, methods=["GET", "POST"])])
    return KnobsMiddleware(inner, knobs), state
