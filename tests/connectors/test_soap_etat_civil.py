"""The SOAP adapter and the état-civil connector against the sandbox, over a real socket."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.errors import CallTimeoutError, CircuitOpenError, PermanentError, TransientError
from connectors.etat_civil import EtatCivilConnector
from connectors.exchange import CallContext, digest
from connectors.gateway import Gateway, SystemPolicy
from connectors.soap import SoapAdapter, is_under
from sandbox.etat_civil.registry import SEED_BIRTH_RECORDS
from sandbox.etat_civil.service import create_app
from tests.connectors.conftest import WSDL, EtatCivilSandbox, Wired
from tests.connectors.hostile import Answer, HostileServer, always, megabytes
from tests.connectors.live_server import closed_port, serve
from tests.connectors.recording import ListRecorder

Wire = Callable[..., Wired]
LEFEVRE = SEED_BIRTH_RECORDS[0]
SANTONI = next(r for r in SEED_BIRTH_RECORDS if r["birth_place_insee"] == "2A004")


def ctx(key: str | None = None) -> CallContext:
    return CallContext(
        correlation_id="corr-1",
        request_id="req-1",
        purpose="etat_civil_delivrance_actes",
        idempotency_key=key,
    )


def copy_kwargs(record: dict[str, str], copy_type: str = "EXTRAIT_AVEC_FILIATION") -> dict:
    return {
        "copy_type": copy_type,
        "birth_name": record["birth_name"].upper(),
        "given_names": record["given_names"],
        "birth_date": record["birth_date"],
        "birth_place_insee": record["birth_place_insee"],
        "sex": record["sex"],
    }


def test_search_found_returns_plain_json_ready_dict(wire: Wire) -> None:
    wired = wire()
    match = wired.connector.search_birth_record(
        ctx(), birth_name="LEFEVRE", given_names="Elodie", birth_date="1985-03-14"
    )
    assert match == {
        "found": True,
        "actNumber": LEFEVRE["act_number"],
        "birthName": "Lefèvre",
        "givenNames": "Élodie Marie",
        "birthDate": "1985-03-14",
        "birthPlaceInsee": "75056",
        "sex": "F",
    }
    json.dumps(match)  # nothing zeep-specific left
    [exchange] = wired.recorder.exchanges
    assert exchange.outcome == "ok" and exchange.operation == "SearchBirthRecord"
    assert exchange.response_digest == digest(match)


def test_search_not_found(wire: Wire) -> None:
    match = wire().connector.search_birth_record(
        ctx(), birth_name="Inconnu", given_names="Personne", birth_date="2000-01-01"
    )
    assert match["found"] is False and match["actNumber"] is None


@pytest.mark.parametrize("copy_type", ["COPIE_INTEGRALE", "EXTRAIT_AVEC_FILIATION", "EXTRAIT_SANS_FILIATION"])
def test_request_copy_for_each_copy_type(
    wire: Wire, etat_civil_sandbox: EtatCivilSandbox, copy_type: str
) -> None:
    created = wire().connector.request_act_copy(
        ctx(f"req-1:{copy_type}"),
        **copy_kwargs(SANTONI, copy_type),
        delivery_address={"line1": "2 cours Napoléon", "postalCode": "20000", "city": "AJACCIO"},
        requester_email="p.santoni@example.fr",
    )
    assert re.fullmatch(r"EC-\d{4}-\d{6}", created["requestNumber"])
    assert created["status"] == "PENDING" and created["actNumber"] == SANTONI["act_number"]
    [act_request] = etat_civil_sandbox.state.act_requests()
    assert act_request.copy_type == copy_type
    assert act_request.reference == "req-1"  # the hub's request id by default


def test_status_goes_from_pending_to_issued(wire: Wire) -> None:
    connector = wire().connector
    created = connector.request_act_copy(ctx("k-status"), **copy_kwargs(LEFEVRE))
    status = connector.get_act_request_status(ctx(), created["requestNumber"])
    assert status["status"] == "PENDING" and status["issuedAt"] is None
    time.sleep(0.35)
    status = connector.get_act_request_status(ctx(), created["requestNumber"])
    assert status["status"] == "ISSUED"
    assert status["issuedAt"].endswith("+00:00")


def test_same_idempotency_key_twice_creates_one_act_request(
    wire: Wire, etat_civil_sandbox: EtatCivilSandbox
) -> None:
    connector = wire().connector
    first = connector.request_act_copy(ctx("req-42:request-copy"), **copy_kwargs(LEFEVRE))
    again = connector.request_act_copy(ctx("req-42:request-copy"), **copy_kwargs(LEFEVRE))
    assert first == again
    assert etat_civil_sandbox.state.created_count == 1
    assert etat_civil_sandbox.state.act_requests()[0].idempotency_key == "req-42:request-copy"


def test_idempotency_key_is_per_thread(wire: Wire, etat_civil_sandbox: EtatCivilSandbox) -> None:
    connector = wire(max_concurrency=8).connector
    keys = [f"req-{n}:request-copy" for n in range(24)]

    def file(key: str) -> str:
        return connector.request_act_copy(ctx(key), **copy_kwargs(LEFEVRE))["requestNumber"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = dict(zip(keys, pool.map(file, keys + keys), strict=False))
    by_key = {r.idempotency_key: r.request_number for r in etat_civil_sandbox.state.act_requests()}
    assert by_key == numbers
    assert etat_civil_sandbox.state.created_count == len(keys)


def test_client_fault_is_a_permanent_error_with_codes(wire: Wire) -> None:
    wired = wire()
    with pytest.raises(PermanentError) as raised:
        wired.connector.request_act_copy(ctx("k"), **copy_kwargs({**LEFEVRE, "birth_place_insee": "69123"}))
    assert raised.value.code == "RECORD_NOT_FOUND"
    assert raised.value.details == {"fault_code": "soap:Client", "detail_code": "RECORD_NOT_FOUND"}
    [exchange] = wired.recorder.exchanges  # not retried
    assert exchange.outcome == "permanent_error" and exchange.error_code == "RECORD_NOT_FOUND"


def test_message_not_matching_the_wsdl_is_permanent(wire: Wire) -> None:
    wired = wire()
    with pytest.raises(PermanentError) as raised:
        wired.connector.call("SearchBirthRecord", {"birthName": "X", "nickname": "Y"}, ctx())
    assert raised.value.code == "INVALID_MESSAGE"
    with pytest.raises(PermanentError) as raised:
        wired.connector.call("DeleteBirthRecord", {}, ctx())
    assert raised.value.code == "UNKNOWN_OPERATION"
    assert len(wired.recorder.exchanges) == 1


def test_downtime_opens_the_breaker_then_recovery_closes_it(
    wire: Wire, etat_civil_sandbox: EtatCivilSandbox
) -> None:
    wired = wire(max_attempts=2, breaker_failures=4, breaker_reset_s=0.3)
    connector, knobs = wired.connector, etat_civil_sandbox.knobs
    knobs.down_for(60)
    for _ in range(2):
        with pytest.raises(TransientError) as raised:
            connector.search_birth_record(ctx(), birth_name="X", given_names="Y", birth_date="2000-01-01")
        assert raised.value.code == "HTTP_5XX" and raised.value.details == {"status": 503}
    assert wired.gateway.breaker_state == "open"
    calls_before = knobs.calls
    with pytest.raises(CircuitOpenError):
        connector.search_birth_record(ctx(), birth_name="X", given_names="Y", birth_date="2000-01-01")
    assert knobs.calls == calls_before  # failed fast: the back-end was left alone

    knobs.update({"down_until": 0})
    time.sleep(0.35)
    assert wired.gateway.breaker_state == "half_open"
    match = connector.search_birth_record(
        ctx(), birth_name="Santoni", given_names="Pierre-Paul", birth_date="1968-02-29"
    )
    assert match["found"] is True
    assert wired.gateway.breaker_state == "closed"
    assert wired.recorder.outcomes() == ["transient_error"] * 4 + ["rejected", "ok"]


def test_journal_gets_one_exchange_per_attempt_over_the_wire(
    wire: Wire, etat_civil_sandbox: EtatCivilSandbox
) -> None:
    wired = wire(max_attempts=50, backoff_initial_s=0.02, backoff_max_s=0.05, breaker_failures=100)
    etat_civil_sandbox.knobs.down_for(0.3)
    calls_before = etat_civil_sandbox.knobs.calls
    created = wired.connector.request_act_copy(ctx("req-7:request-copy"), **copy_kwargs(LEFEVRE))
    attempts = etat_civil_sandbox.knobs.calls - calls_before  # HTTP requests the back-end saw
    assert attempts > 1
    assert len(wired.recorder.exchanges) == attempts
    assert [e.attempt for e in wired.recorder.exchanges] == list(range(1, attempts + 1))
    assert wired.recorder.outcomes() == ["transient_error"] * (attempts - 1) + ["ok"]
    assert {e.payload_digest for e in wired.recorder.exchanges} == {
        wired.recorder.exchanges[0].payload_digest
    }
    assert all(c.idempotency_key == "req-7:request-copy" for c in wired.recorder.contexts)
    assert etat_civil_sandbox.state.created_count == 1
    assert created["status"] == "PENDING"


def test_no_in_process_retry_when_asked(wire: Wire, etat_civil_sandbox: EtatCivilSandbox) -> None:
    wired = wire()
    etat_civil_sandbox.knobs.down_for(60)
    with pytest.raises(TransientError):
        wired.connector.get_act_request_status(ctx(), "EC-2026-000001", retry=False)
    assert len(wired.recorder.exchanges) == 1


def test_slow_back_end_is_a_transient_timeout(wire: Wire, etat_civil_sandbox: EtatCivilSandbox) -> None:
    wired = wire(timeout_s=0.1, max_attempts=1)
    etat_civil_sandbox.knobs.update({"latency_ms": 400})
    with pytest.raises(CallTimeoutError) as raised:
        wired.connector.search_birth_record(ctx(), birth_name="X", given_names="Y", birth_date="2000-01-01")
    assert raised.value.code == "TIMEOUT" and raised.value.transient


def test_connection_refused_is_transient(wire: Wire) -> None:
    wired = wire(endpoint=f"http://127.0.0.1:{closed_port()}/etat-civil", max_attempts=1)
    with pytest.raises(TransientError) as raised:
        wired.connector.get_act_request_status(ctx(), "EC-2026-000001")
    assert raised.value.code == "CONNECTION_FAILED"


def test_ws_security_username_token() -> None:
    app, state = create_app(credentials=("portail-hub", "s3cret"))
    with serve(app) as base_url:
        for password, expected in (("s3cret", None), ("wrong", "AUTHENTICATION_FAILED")):
            gateway = Gateway("etat_civil", SystemPolicy(max_attempts=1), ListRecorder())
            adapter = SoapAdapter(
                "etat_civil",
                WSDL,
                base_url + "/etat-civil",
                gateway,
                5,
                username="portail-hub",
                password=password,
            )
            connector = EtatCivilConnector(adapter)
            if expected is None:
                connector.request_act_copy(ctx(), **copy_kwargs(LEFEVRE))
            else:
                with pytest.raises(PermanentError) as raised:
                    connector.request_act_copy(ctx(), **copy_kwargs(LEFEVRE))
                assert raised.value.code == expected
    assert state.created_count == 1


# --- hostile endpoints and documents -------------------------------------------------------------


class CountingServer:
    """A real HTTP server that counts requests and answers each with a fixed status and headers."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.hits += 1
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[CountingServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


def test_transport_refuses_urls_outside_the_configured_endpoint(wire: Wire) -> None:
    wired = wire(max_attempts=1)
    transport = wired.adapter.transport
    with CountingServer().running() as elsewhere:
        for url in (
            elsewhere.url + "/etat-civil",
            transport.endpoint + "-evil",
            transport.endpoint.replace("/etat-civil", "/admin"),
            transport.endpoint.replace("http://", "https://"),
            "file:///etc/passwd",
        ):
            with pytest.raises(PermanentError) as raised:
                wired.gateway.call(
                    "probe", {}, ctx("k"), lambda attempt, url=url: transport.post(url, b"<x/>", {})
                )
            assert raised.value.code == "ENDPOINT_REFUSED"
        assert elsewhere.hits == 0


def test_the_wire_is_unreachable_outside_a_gateway_attempt(wire: Wire, etat_civil_sandbox) -> None:
    """A connector author calling zeep's transport directly gets an error, not an unjournaled call."""
    transport = wire().adapter.transport
    with pytest.raises(PermanentError) as raised:
        transport.post(transport.endpoint, b"<x/>", {})
    assert raised.value.code == "GATEWAY_BYPASSED"
    assert etat_civil_sandbox.knobs.calls == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_a_50_mb_answer_is_refused_without_holding_it(declared: bool) -> None:
    headers = {"Content-Type": "text/xml"}
    if declared:
        headers["Content-Length"] = str(50 * 1024 * 1024)
    with HostileServer(always(Answer(200, headers, megabytes(50)))).running() as huge:
        gateway = Gateway("etat_civil", SystemPolicy(max_attempts=1), ListRecorder())
        connector = EtatCivilConnector(SoapAdapter("etat_civil", WSDL, huge.url + "/etat-civil", gateway, 5))
        tracemalloc.start()
        try:
            with pytest.raises(PermanentError) as raised:
                connector.get_act_request_status(ctx("k"), "R-1")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert raised.value.code == "RESPONSE_TOO_LARGE"
    assert peak < 24 * 1024 * 1024  # the 10 MB cap and its copies, never the 50 MB
    assert huge.bytes_sent < 50 * 1024 * 1024  # the hub hung up before the end


XML_BOMBS = {
    "billion-laughs": b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol4;</soap:Body></soap:Envelope>""",
    "xxe-file": b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&xxe;</soap:Body></soap:Envelope>""",
    "external-dtd": b"""<?xml version="1.0"?>
<!DOCTYPE x SYSTEM "http://127.0.0.1:{port}/evil.dtd">
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>""",
}


@pytest.mark.parametrize("bomb", sorted(XML_BOMBS))
def test_hostile_xml_answers_are_refused_without_outbound_connections(bomb: str) -> None:
    with HostileServer(always(Answer(200, {}, b"<!ELEMENT x ANY>"))).running() as elsewhere:
        port = elsewhere.url.rsplit(":", 1)[1]
        body = XML_BOMBS[bomb].replace(b"{port}", port.encode())
        answer = Answer(200, {"Content-Type": "text/xml; charset=utf-8"}, body)
        with HostileServer(always(answer)).running() as hostile:
            gateway = Gateway("etat_civil", SystemPolicy(max_attempts=1), ListRecorder())
            connector = EtatCivilConnector(
                SoapAdapter("etat_civil", WSDL, hostile.url + "/etat-civil", gateway, 5)
            )
            with pytest.raises(PermanentError) as raised:
                connector.get_act_request_status(ctx("k"), "R-1")
        assert elsewhere.hits == 0
    assert raised.value.code == "INVALID_RESPONSE"
    assert "passwd" not in raised.value.message and "root:" not in raised.value.message


def test_redirect_to_another_host_is_not_followed() -> None:
    with (
        CountingServer().running() as target,
        CountingServer(307, {"Location": target.url + "/steal"}).running() as hostile,
    ):
        recorder = ListRecorder()
        gateway = Gateway("etat_civil", SystemPolicy(max_attempts=1), recorder)
        connector = EtatCivilConnector(
            SoapAdapter("etat_civil", WSDL, hostile.url + "/etat-civil", gateway, 5)
        )
        with pytest.raises(PermanentError) as raised:
            connector.request_act_copy(ctx("k"), **copy_kwargs(LEFEVRE))
        assert raised.value.code == "HTTP_ERROR" and raised.value.details == {"status": 307}
        assert hostile.hits == 1 and target.hits == 0


@pytest.mark.parametrize(
    ("url", "base", "under"),
    [
        ("http://h:80/etat-civil", "http://h/etat-civil", True),
        ("http://h/etat-civil/v2", "http://h/etat-civil/", True),
        ("http://h/etat-civilx", "http://h/etat-civil", False),
        ("http://h:81/etat-civil", "http://h/etat-civil", False),
        ("http://u@h/etat-civil", "http://h/etat-civil", False),
        ("http://h.evil/etat-civil", "http://h/etat-civil", False),
        ("ftp://h/etat-civil", "ftp://h/etat-civil", False),
    ],
)
def test_is_under(url: str, base: str, under: bool) -> None:
    assert is_under(url, base) is under


@contextmanager
def network_attempts() -> Iterator[list[tuple]]:
    """Collect every socket connect/getaddrinfo this thread makes while the block runs."""
    events: list[tuple] = []
    active = threading.get_ident()

    def hook(event: str, args: tuple) -> None:
        if event in ("socket.connect", "socket.getaddrinfo") and threading.get_ident() == active:
            events.append((event, args))

    if not getattr(network_attempts, "installed", False):
        sys.addaudithook(lambda event, args: network_attempts.sink(event, args))  # type: ignore[attr-defined]
        network_attempts.installed = True  # type: ignore[attr-defined]
    network_attempts.sink = hook  # type: ignore[attr-defined]
    try:
        yield events
    finally:
        network_attempts.sink = lambda event, args: None  # type: ignore[attr-defined]


def test_wsdl_loading_touches_no_network() -> None:
    gateway = Gateway("etat_civil", SystemPolicy(), ListRecorder())
    with network_attempts() as events:
        adapter = SoapAdapter("etat_civil", WSDL, f"http://127.0.0.1:{closed_port()}/etat-civil", gateway, 5)
    assert events == []
    assert adapter.operations == {"SearchBirthRecord", "RequestActCopy", "GetActRequestStatus"}


def with_import(tmp_path: Path, location: str) -> Path:
    """A copy of the WSDL whose schema imports another document from ``location``."""
    text = WSDL.read_text(encoding="utf-8")
    text = text.replace(
        'elementFormDefault="qualified">',
        'elementFormDefault="qualified">\n'
        f'      <xs:import namespace="urn:other" schemaLocation="{location}"/>',
        1,
    )
    wsdl = tmp_path / "wsdl" / "hostile.wsdl"
    wsdl.parent.mkdir(parents=True)
    wsdl.write_text(text, encoding="utf-8")
    return wsdl


def test_remote_schema_import_is_refused_without_a_connection(tmp_path: Path) -> None:
    with CountingServer().running() as remote:
        wsdl = with_import(tmp_path, remote.url + "/evil.xsd")
        gateway = Gateway("etat_civil", SystemPolicy(), ListRecorder())
        with network_attempts() as events, pytest.raises(ValueError, match=r"hostile\.wsdl"):
            SoapAdapter("etat_civil", wsdl, remote.url + "/etat-civil", gateway, 5)
        assert remote.hits == 0 and events == []


def test_schema_import_outside_the_wsdl_directory_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xsd"
    secret.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>', encoding="utf-8")
    for location in ("../secret.xsd", secret.as_uri()):
        wsdl = with_import(tmp_path / location.replace("/", "_").replace(":", "_"), location)
        gateway = Gateway("etat_civil", SystemPolicy(), ListRecorder())
        # zeep itself refuses what looks remote; the transport refuses the rest.
        with pytest.raises(ValueError, match=r"ENDPOINT_REFUSED|ExternalReferenceForbidden"):
            SoapAdapter("etat_civil", wsdl, "http://127.0.0.1/etat-civil", gateway, 5)


def test_answers_fit_the_schema_flows_are_checked_against(wire: Wire) -> None:
    """hub.flow_paths checks ``until``/``$.steps`` paths and values against the WSDL's output
    messages: the adapter's real answers (absent optional elements aside) must fit them."""
    import jsonschema

    from hub.mapping.schemas import wsdl_message_schema

    adapter = wire().adapter
    message = {
        "copyType": "COPIE_INTEGRALE",
        "birthName": SANTONI["birth_name"],
        "givenNames": SANTONI["given_names"],
        "birthDate": SANTONI["birth_date"],
        "birthPlaceInsee": SANTONI["birth_place_insee"],
        "sex": SANTONI["sex"],
        "copies": 2,
    }
    created = adapter.call("RequestActCopy", message, ctx("schema-1"))
    answers = {
        "RequestActCopy": created,
        "GetActRequestStatus": adapter.call(
            "GetActRequestStatus", {"requestNumber": created["requestNumber"]}, ctx()
        ),
        "SearchBirthRecord": adapter.call(
            "SearchBirthRecord",
            {
                "birthName": SANTONI["birth_name"],
                "givenNames": "Pierre-Paul",
                "birthDate": SANTONI["birth_date"],
            },
            ctx(),
        ),
    }
    for operation, answer in answers.items():
        present = {key: value for key, value in answer.items() if value is not None}
        jsonschema.validate(present, wsdl_message_schema(WSDL, operation, "output"))
    assert answers["GetActRequestStatus"]["status"] in ("PENDING", "ISSUED")
    assert answers["RequestActCopy"]["copies"] == 2
