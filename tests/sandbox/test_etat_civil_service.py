"""The état-civil sandbox over a real socket, spoken to in raw SOAP 1.1 (no client library)."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from lxml import etree

from sandbox.etat_civil.registry import (
    REJECTED_ACTS,
    SEED_BIRTH_RECORDS,
    EtatCivilState,
    normalise_name,
)
from sandbox.etat_civil.service import WSDL_PATH, create_app
from sandbox.knobs import Knobs
from tests.connectors.live_server import serve

ROOT = Path(__file__).resolve().parents[2]
TNS = "urn:collectivite:etat-civil:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = {"soap": SOAP_ENV, "ec": TNS}


@dataclass
class Sandbox:
    url: str
    state: EtatCivilState
    http: httpx.Client

    def soap(
        self, body: str, headers: dict[str, str] | None = None, header: str = ""
    ) -> tuple[int, etree._Element]:
        envelope = (
            f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:ec="{TNS}">'
            f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
        )
        response = self.http.post(
            self.url + "/etat-civil",
            content=envelope.encode(),
            headers={"content-type": "text/xml; charset=utf-8", **(headers or {})},
        )
        return response.status_code, etree.fromstring(response.content)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    app, state = create_app(issue_delay_s=0.3)
    with serve(app) as url, httpx.Client(timeout=5) as http:
        yield Sandbox(url, state, http)


def fault_code(doc: etree._Element) -> tuple[str, str]:
    return (
        doc.findtext("soap:Body/soap:Fault/faultcode", namespaces=NS),
        doc.findtext("soap:Body/soap:Fault/detail/ec:EtatCivilFault/ec:code", namespaces=NS),
    )


def request_copy_body(
    record: dict[str, str], copy_type: str = "EXTRAIT_AVEC_FILIATION", extra: str = ""
) -> str:
    return (
        f"<ec:RequestActCopy><ec:copyType>{copy_type}</ec:copyType>"
        f"<ec:birthName>{record['birth_name']}</ec:birthName>"
        f"<ec:givenNames>{record['given_names']}</ec:givenNames>"
        f"<ec:birthDate>{record['birth_date']}</ec:birthDate>"
        f"<ec:birthPlaceInsee>{record['birth_place_insee']}</ec:birthPlaceInsee>"
        f"<ec:sex>{record['sex']}</ec:sex>{extra}</ec:RequestActCopy>"
    )


def test_config_copy_of_the_wsdl_is_byte_identical() -> None:
    assert (ROOT / "config" / "wsdl" / "etat-civil.wsdl").read_bytes() == WSDL_PATH.read_bytes()


def test_seed_records_cover_the_hard_cases() -> None:
    keys = {"birth_name", "given_names", "birth_date", "birth_place_insee", "sex", "act_number"}
    assert len(SEED_BIRTH_RECORDS) >= 8
    assert all(set(record) == keys for record in SEED_BIRTH_RECORDS)
    places = {record["birth_place_insee"] for record in SEED_BIRTH_RECORDS}
    assert "2A004" in places
    assert any(place.startswith("99") for place in places)
    names = [record["birth_name"] for record in SEED_BIRTH_RECORDS]
    assert any(" " in name and name[0].islower() for name in names)  # a particle: "de La ..."
    assert any(normalise_name(name) != name.casefold() for name in names)  # accents
    assert any("-" in record["given_names"] for record in SEED_BIRTH_RECORDS)
    assert len({record["act_number"] for record in SEED_BIRTH_RECORDS}) == len(SEED_BIRTH_RECORDS)
    assert set(REJECTED_ACTS) <= {record["act_number"] for record in SEED_BIRTH_RECORDS}


def test_wsdl_is_served(sandbox: Sandbox) -> None:
    response = sandbox.http.get(sandbox.url + "/etat-civil?wsdl")
    assert response.status_code == 200
    assert response.content == WSDL_PATH.read_bytes()


@pytest.mark.parametrize("record", SEED_BIRTH_RECORDS, ids=lambda r: r["act_number"])
def test_search_finds_every_seed_record_without_accents_or_case(
    sandbox: Sandbox, record: dict[str, str]
) -> None:
    plain = "".join(
        ch
        for ch in unicodedata.normalize("NFKD", record["birth_name"].upper())
        if not unicodedata.combining(ch)
    )
    first_given = record["given_names"].split()[0].lower()
    status, doc = sandbox.soap(
        f"<ec:SearchBirthRecord><ec:birthName>{plain}</ec:birthName>"
        f"<ec:givenNames>{first_given}</ec:givenNames>"
        f"<ec:birthDate>{record['birth_date']}</ec:birthDate></ec:SearchBirthRecord>"
    )
    assert status == 200
    answer = doc.find("soap:Body/ec:SearchBirthRecordResponse", NS)
    assert answer.findtext("ec:found", namespaces=NS) == "true"
    assert answer.findtext("ec:actNumber", namespaces=NS) == record["act_number"]
    assert answer.findtext("ec:birthName", namespaces=NS) == record["birth_name"]
    assert answer.findtext("ec:sex", namespaces=NS) == record["sex"]


def test_search_with_wrong_place_or_given_name_finds_nothing(sandbox: Sandbox) -> None:
    for given, place in (("Élodie", "69123"), ("Marie", "75056")):
        _, doc = sandbox.soap(
            "<ec:SearchBirthRecord><ec:birthName>Lefèvre</ec:birthName>"
            f"<ec:givenNames>{given}</ec:givenNames><ec:birthDate>1985-03-14</ec:birthDate>"
            f"<ec:birthPlaceInsee>{place}</ec:birthPlaceInsee></ec:SearchBirthRecord>"
        )
        answer = doc.find("soap:Body/ec:SearchBirthRecordResponse", NS)
        assert answer.findtext("ec:found", namespaces=NS) == "false"
        assert answer.find("ec:actNumber", NS) is None


def test_request_then_status_pending_then_issued(sandbox: Sandbox) -> None:
    status, doc = sandbox.soap(request_copy_body(SEED_BIRTH_RECORDS[3], "COPIE_INTEGRALE"))
    assert status == 200
    number = doc.findtext("soap:Body/ec:RequestActCopyResponse/ec:requestNumber", namespaces=NS)
    assert number.startswith("EC-") and len(number) == len("EC-2026-000001")
    body = f"<ec:GetActRequestStatus><ec:requestNumber>{number}</ec:requestNumber>"
    body += "</ec:GetActRequestStatus>"
    _, doc = sandbox.soap(body)
    assert doc.findtext(".//ec:status", namespaces=NS) == "PENDING"
    time.sleep(0.35)
    _, doc = sandbox.soap(body)
    assert doc.findtext(".//ec:status", namespaces=NS) == "ISSUED"
    assert doc.findtext(".//ec:issuedAt", namespaces=NS).endswith("Z")


def test_copies_and_reason_are_kept_and_the_copies_echoed(sandbox: Sandbox) -> None:
    extra = "<ec:reference>req-7</ec:reference><ec:copies>2</ec:copies><ec:reason>Passeport</ec:reason>"
    status, doc = sandbox.soap(request_copy_body(SEED_BIRTH_RECORDS[0], extra=extra))
    assert status == 200
    assert doc.findtext(".//ec:copies", namespaces=NS) == "2"
    [act] = sandbox.state.act_requests()
    assert (act.copies, act.reason) == (2, "Passeport")
    number = doc.findtext(".//ec:requestNumber", namespaces=NS)
    _, doc = sandbox.soap(
        f"<ec:GetActRequestStatus><ec:requestNumber>{number}</ec:requestNumber></ec:GetActRequestStatus>"
    )
    assert doc.findtext(".//ec:copies", namespaces=NS) == "2"


def test_one_copy_when_the_request_does_not_say(sandbox: Sandbox) -> None:
    _, doc = sandbox.soap(request_copy_body(SEED_BIRTH_RECORDS[0]))
    assert doc.findtext(".//ec:copies", namespaces=NS) == "1"
    [act] = sandbox.state.act_requests()
    assert (act.copies, act.reason) == (1, None)


@pytest.mark.parametrize("copies", ["0", "11", "deux"])
def test_a_number_of_copies_out_of_the_registrys_range_is_a_schema_fault(sandbox: Sandbox, copies) -> None:
    body = request_copy_body(SEED_BIRTH_RECORDS[0], extra=f"<ec:copies>{copies}</ec:copies>")
    status, doc = sandbox.soap(body)
    assert (status, fault_code(doc)) == (500, ("soap:Client", "SCHEMA_INVALID"))
    assert sandbox.state.created_count == 0


def test_act_under_rectification_is_rejected() -> None:
    app, state = create_app(issue_delay_s=0)
    record = next(r for r in SEED_BIRTH_RECORDS if r["act_number"] in REJECTED_ACTS)
    with serve(app) as url, httpx.Client(timeout=5) as http:
        box = Sandbox(url, state, http)
        _, doc = box.soap(request_copy_body(record))
        number = doc.findtext(".//ec:requestNumber", namespaces=NS)
        _, doc = box.soap(
            f"<ec:GetActRequestStatus><ec:requestNumber>{number}</ec:requestNumber></ec:GetActRequestStatus>"
        )
    assert doc.findtext(".//ec:status", namespaces=NS) == "REJECTED"
    assert doc.findtext(".//ec:rejectionReason", namespaces=NS).startswith("ACTE_EN_RECTIFICATION")


def test_idempotency_key_creates_one_act_request(sandbox: Sandbox) -> None:
    body = request_copy_body(SEED_BIRTH_RECORDS[0])
    numbers = set()
    for _ in range(3):
        status, doc = sandbox.soap(body, headers={"Idempotency-Key": "req-1:step-1"})
        assert status == 200
        numbers.add(doc.findtext(".//ec:requestNumber", namespaces=NS))
    assert len(numbers) == 1
    assert sandbox.state.created_count == 1
    assert sandbox.state.act_requests()[0].idempotency_key == "req-1:step-1"
    # Without a key every call is a new request, as a real registry would do.
    sandbox.soap(body)
    sandbox.soap(body)
    assert sandbox.state.created_count == 3


def test_idempotency_key_reused_for_another_request_is_refused(sandbox: Sandbox) -> None:
    sandbox.soap(request_copy_body(SEED_BIRTH_RECORDS[0]), headers={"Idempotency-Key": "k"})
    status, doc = sandbox.soap(request_copy_body(SEED_BIRTH_RECORDS[1]), headers={"Idempotency-Key": "k"})
    assert status == 500
    assert fault_code(doc) == ("soap:Client", "IDEMPOTENCY_KEY_REUSED")
    assert sandbox.state.created_count == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (request_copy_body({**SEED_BIRTH_RECORDS[0], "birth_place_insee": "69123"}), "RECORD_NOT_FOUND"),
        (request_copy_body(SEED_BIRTH_RECORDS[0], "COPIE_CERTIFIEE"), "SCHEMA_INVALID"),
        (
            "<ec:GetActRequestStatus><ec:requestNumber>EC-2026-999999</ec:requestNumber>"
            "</ec:GetActRequestStatus>",
            "REQUEST_NOT_FOUND",
        ),
        ("<ec:Unknown/>", "UNKNOWN_OPERATION"),
        ("", "MALFORMED_ENVELOPE"),
    ],
)
def test_client_faults(sandbox: Sandbox, body: str, code: str) -> None:
    status, doc = sandbox.soap(body)
    assert status == 500
    assert fault_code(doc) == ("soap:Client", code)
    assert sandbox.state.created_count == 0


def test_schema_fault_does_not_echo_the_value(sandbox: Sandbox) -> None:
    record = {**SEED_BIRTH_RECORDS[0], "birth_name": "X" * 101 + "secret"}
    _, doc = sandbox.soap(request_copy_body(record))
    assert fault_code(doc) == ("soap:Client", "SCHEMA_INVALID")
    assert "secret" not in etree.tostring(doc).decode()


@pytest.mark.parametrize(
    "payload",
    [
        b"not xml at all",
        b"<root/>",
        # An external entity must never be resolved (XXE), nor a DTD loaded.
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<ec:GetActRequestStatus xmlns:ec="urn:collectivite:etat-civil:v1">'
        b"<ec:requestNumber>&x;</ec:requestNumber></ec:GetActRequestStatus>"
        b"</soap:Body></soap:Envelope>",
    ],
)
def test_hostile_or_malformed_bodies_are_client_faults(sandbox: Sandbox, payload: bytes) -> None:
    response = sandbox.http.post(sandbox.url + "/etat-civil", content=payload)
    assert response.status_code == 500
    doc = etree.fromstring(response.content)
    assert fault_code(doc)[0] == "soap:Client"
    assert b"root:" not in response.content


def test_downtime_knob_answers_503_then_recovers() -> None:
    knobs = Knobs()
    app, state = create_app(knobs=knobs)
    assert state.knobs is knobs
    with serve(app) as url, httpx.Client(timeout=5) as http:
        box = Sandbox(url, state, http)
        http.put(url + "/_sandbox/knobs", json={"down_for": 30})
        response = http.post(url + "/etat-civil", content=b"<x/>")
        assert response.status_code == 503
        http.put(url + "/_sandbox/knobs", json={"down_until": 0})
        status, _ = box.soap(request_copy_body(SEED_BIRTH_RECORDS[2]))
        assert status == 200


def test_username_token_is_required_when_credentials_are_set() -> None:
    app, state = create_app(credentials=("portail", "s3cret"))
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

    def token(password: str) -> str:
        return (
            f'<wsse:Security xmlns:wsse="{wsse}"><wsse:UsernameToken>'
            f"<wsse:Username>portail</wsse:Username><wsse:Password>{password}</wsse:Password>"
            "</wsse:UsernameToken></wsse:Security>"
        )

    body = request_copy_body(SEED_BIRTH_RECORDS[0])
    with serve(app) as url, httpx.Client(timeout=5) as http:
        box = Sandbox(url, state, http)
        assert fault_code(box.soap(body)[1]) == ("soap:Client", "AUTHENTICATION_FAILED")
        assert fault_code(box.soap(body, header=token("nope"))[1])[1] == "AUTHENTICATION_FAILED"
        assert box.soap(body, header=token("s3cret"))[0] == 200
    assert state.created_count == 1
