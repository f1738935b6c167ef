"""École over REST against the sandbox on a real socket, and the REST adapter against hostile peers."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.ecole import EcoleConnector
from connectors.errors import CircuitOpenError, ConnectorError, PermanentError, TransientError
from connectors.exchange import CallContext, digest
from connectors.gateway import Gateway, SystemPolicy
from connectors.httpguard import HttpAuth
from connectors.rest import RestAdapter, load_openapi
from sandbox.ecole import EcoleState, create_app
from sandbox.knobs import Knobs
from tests.connectors.hostile import Answer, HostileServer, always, megabytes
from tests.connectors.live_server import closed_port, serve
from tests.connectors.recording import ListRecorder

OPENAPI = Path(__file__).resolve().parents[2] / "config" / "openapi" / "ecole.yaml"
OPERATIONS = load_openapi(OPENAPI)
TOKEN = "test-ecole-token"
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0}
PARENT = {"birth_name": "Martin", "first_names": "Élise", "birth_date": "1988-04-12"}


def ctx(key: str | None = None) -> CallContext:
    return CallContext(correlation_id="corr-ecole", request_id="req-1", idempotency_key=key)


@dataclass
class Ecole:
    base_url: str
    state: EcoleState
    knobs: Knobs

    @property
    def endpoint(self) -> str:
        return self.base_url + "/api/v1"


@pytest.fixture
def ecole() -> Iterator[Ecole]:
    knobs = Knobs()
    app, state = create_app(knobs, token=TOKEN)
    with serve(app) as base_url:
        yield Ecole(base_url, state, knobs)


def wire(
    endpoint: str, token: str = TOKEN, recorder: ListRecorder | None = None, **policy: float
) -> tuple[EcoleConnector, Gateway, ListRecorder]:
    recorder = recorder or ListRecorder()
    gateway = Gateway("ecole", SystemPolicy(**{**FAST, **policy}), recorder)
    adapter = RestAdapter("ecole", endpoint, gateway, operations=OPERATIONS, auth=HttpAuth("bearer", token))
    return EcoleConnector(adapter), gateway, recorder


def test_family_child_and_the_three_enrolments_then_cancel(ecole: Ecole) -> None:
    connector, _, recorder = wire(ecole.endpoint)
    family = connector.find_or_create_family(
        ctx("f-1"),
        responsible=PARENT,
        address={"line1": "1 rue Haute", "postal_code": "33000", "city": "Bordeaux"},
    )
    again = connector.find_or_create_family(ctx("f-2"), responsible={**PARENT, "birth_name": "MARTIN"})
    assert again["id"] == family["id"]
    child = connector.find_or_create_child(
        ctx("c-1"), family["id"], birth_name="Martin", first_names="Noé", birth_date="2020-09-01"
    )
    school = connector.enrol_school(
        ctx("e-1"), child_id=child["id"], school_year="2026-2027", school="École Jean Jaurès", level="CP"
    )
    after = connector.enrol_after_school(
        ctx("e-2"), child_id=child["id"], school_year="2026-2027", school="Accueil Jean Jaurès"
    )
    nursery = connector.pre_enrol_nursery(
        ctx("e-3"), child_id=child["id"], school_year="2026-2027", school="Crèche des Lilas"
    )
    assert {school["kind"], after["kind"], nursery["kind"]} == {"school", "periscolaire", "creche"}
    cancelled = connector.cancel_enrolment(ctx("x-1"), school["id"], reason="déménagement")
    assert cancelled["status"] == "cancelled"
    assert connector.enrolment(ctx(), school["id"])["status"] == "cancelled"
    assert all(e.outcome == "ok" for e in recorder.exchanges)
    # The journal holds digests, never the names sent.
    assert "Martin" not in repr(recorder.exchanges)


def test_same_idempotency_key_makes_one_enrolment(ecole: Ecole) -> None:
    connector, _, _ = wire(ecole.endpoint)
    family = connector.find_or_create_family(ctx("f"), responsible=PARENT)
    child = connector.find_or_create_child(
        ctx("c"), family["id"], birth_name="Martin", first_names="Noé", birth_date="2020-09-01"
    )
    fields = {"child_id": child["id"], "school_year": "2026-2027", "school": "École A", "level": "CP"}
    first = connector.enrol_school(ctx("req-9:enrol"), **fields)
    second = connector.enrol_school(ctx("req-9:enrol"), **fields)
    assert first["id"] == second["id"] and ecole.state.enrolments_created == 1


def test_link_citizen_records_over_rest_once_per_idempotency_key_and_unknown_records_permanent(
    ecole: Ecole,
) -> None:
    """The hub tells the école that two family files are one person: over the real API, journaled
    as LinkCitizenRecords (identite), a retry with the same key making one link."""
    connector, _, recorder = wire(ecole.endpoint)
    first = connector.find_or_create_family(ctx("f-1"), responsible=PARENT)["id"]
    second = connector.find_or_create_family(ctx("f-2"), responsible={**PARENT, "first_names": "Elise Anne"})[
        "id"
    ]
    fields = {"event": "merged", "event_id": "7", "citizen_id": "G-1", "replaces": "G-2"}
    linked = connector.link_citizen_records(ctx("req-7:link"), records=[first, second], **fields)
    again = connector.link_citizen_records(ctx("req-7:link"), records=[first, second], **fields)
    assert linked == again and ecole.state.counters["citizen_links_received"] == 1
    assert {r["id"] for r in connector.citizen_records(ctx(), "G-1")["records"]} == {first, second}
    assert connector.data_categories("LinkCitizenRecords") == ("identite",)
    with pytest.raises(PermanentError) as raised:
        connector.link_citizen_records(ctx("req-8:link"), records=["FAM-404"], **fields)
    assert raised.value.code == "UNKNOWN_RECORD" and raised.value.details["status"] == 422
    assert recorder.outcomes()[-1] == "permanent_error"


def test_pagination_follows_next_links_one_journaled_call_per_page(ecole: Ecole) -> None:
    connector, _, recorder = wire(ecole.endpoint)
    for day in range(1, 8):
        connector.find_or_create_family(
            ctx(f"f{day}"), responsible={**PARENT, "birth_date": f"1988-04-{day:02d}"}
        )
    recorder.exchanges.clear()
    found = list(connector.search_families(ctx(), birth_name="martin", page_size=3))
    assert len(found) == 7 and len({f["id"] for f in found}) == 7
    assert [e.operation for e in recorder.exchanges] == ["SearchFamilies"] * 3


def test_wrong_token_is_a_permanent_error_with_the_back_end_code(ecole: Ecole) -> None:
    connector, _, recorder = wire(ecole.endpoint, token="wrong")
    with pytest.raises(PermanentError) as raised:
        connector.find_or_create_family(ctx("f"), responsible=PARENT)
    assert raised.value.code == "UNAUTHORIZED" and raised.value.details["status"] == 401
    assert recorder.outcomes() == ["permanent_error"]


def test_invalid_body_is_permanent_and_not_retried(ecole: Ecole) -> None:
    connector, _, recorder = wire(ecole.endpoint)
    with pytest.raises(PermanentError) as raised:
        connector.find_or_create_family(ctx("f"), responsible={"birth_name": "X"})
    assert raised.value.code == "INVALID_REQUEST" and recorder.outcomes() == ["permanent_error"]


@pytest.mark.parametrize("value", ["..", ".", "a/../../admin", "x\nHost: evil"])
def test_path_parameters_cannot_leave_the_resource(ecole: Ecole, value: str) -> None:
    connector, _, _ = wire(ecole.endpoint)
    try:
        connector.enrolment(ctx(), value)
    except PermanentError as exc:
        # refused before sending, or sent as one opaque segment the back-end does not know
        assert exc.code == "INVALID_MESSAGE" or exc.details["status"] == 404
    else:
        pytest.fail("a hostile path parameter reached a resource")


def test_down_for_a_while_then_back_every_request_delivered_once(ecole: Ecole) -> None:
    """Five enrolment requests during a 0.6 s outage: each retried with its key, none lost or doubled."""
    connector, _, recorder = wire(
        ecole.endpoint, max_attempts=50, backoff_initial_s=0.05, backoff_max_s=0.2, breaker_failures=1000
    )
    family = connector.find_or_create_family(ctx("f"), responsible=PARENT)
    child = connector.find_or_create_child(
        ctx("c"), family["id"], birth_name="Martin", first_names="Noé", birth_date="2020-09-01"
    )
    ecole.knobs.down_for(0.6)
    results: dict[int, dict] = {}

    def enrol(number: int) -> None:
        results[number] = connector.enrol_school(
            ctx(f"req-{number}:enrol"),
            child_id=child["id"],
            school_year=f"20{30 + number}-20{31 + number}",
            school="A",
            level="CP",
        )

    threads = [threading.Thread(target=enrol, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5 and ecole.state.enrolments_created == 5
    assert "transient_error" in recorder.outcomes()
    attempts = [e.attempt for e in recorder.exchanges if e.operation == "CreateEnrolment"]
    assert max(attempts) > 1


def test_slow_back_end_beyond_the_timeout_is_a_transient_timeout(ecole: Ecole) -> None:
    connector, _, recorder = wire(ecole.endpoint, timeout_s=0.2, max_attempts=1)
    ecole.knobs.update({"latency_ms": 1000})
    with pytest.raises(TransientError) as raised:
        connector.enrolment(ctx(), "E-1")
    assert raised.value.code == "TIMEOUT" and recorder.outcomes() == ["transient_error"]


def test_5xx_storm_opens_this_breaker_and_leaves_other_systems_alone(ecole: Ecole) -> None:
    app, _other_state = create_app(Knobs(), token=TOKEN)
    with serve(app) as other_base:
        storm, storm_gateway, _ = wire(ecole.endpoint, max_attempts=1, breaker_failures=3)
        calm, calm_gateway, _ = wire(other_base + "/api/v1", max_attempts=1, breaker_failures=3)
        ecole.knobs.update({"error_rate": 1.0})
        for _ in range(3):
            with pytest.raises(TransientError):
                storm.enrolment(ctx(), "E-1")
        assert storm_gateway.breaker_state == "open"
        calls_before = ecole.knobs.calls
        with pytest.raises(CircuitOpenError):
            storm.enrolment(ctx(), "E-1")
        assert ecole.knobs.calls == calls_before  # failing fast, not hammering the back-end
        family = calm.find_or_create_family(ctx("f"), responsible=PARENT)
        assert family["id"] and calm_gateway.breaker_state == "closed"


def test_failure_rate_opens_the_breaker_when_failures_are_never_consecutive(ecole: Ecole) -> None:
    connector, gateway, _ = wire(
        ecole.endpoint, max_attempts=1, breaker_failures=100, breaker_failure_rate=0.5, breaker_window=6
    )
    pattern = [True, False] * 3 + [True]
    for fail in pattern:
        ecole.knobs.update({"error_rate": 1.0 if fail else 0.0})
        with contextlib.suppress(TransientError):
            connector.call("Health", {}, ctx())
    assert gateway.breaker_state == "open"


def test_connection_refused_is_transient() -> None:
    connector, _, recorder = wire(f"http://127.0.0.1:{closed_port()}/api/v1", max_attempts=2)
    with pytest.raises(TransientError) as raised:
        connector.enrolment(ctx(), "E-1")
    assert raised.value.code == "CONNECTION_FAILED" and [e.attempt for e in recorder.exchanges] == [1, 2]


def test_the_wire_is_unreachable_outside_a_gateway_attempt(ecole: Ecole) -> None:
    connector, _, _ = wire(ecole.endpoint)
    with pytest.raises(PermanentError) as raised:
        connector.adapter._client.get(ecole.endpoint + "/health")
    assert raised.value.code == "GATEWAY_BYPASSED" and ecole.knobs.calls == 0


# ---------------------------------------------------------------------------- hostile peers


def rest_on(url: str, **kwargs: object) -> tuple[RestAdapter, ListRecorder]:
    recorder = ListRecorder()
    gateway = Gateway("ecole", SystemPolicy(max_attempts=1, timeout_s=5), recorder)
    return RestAdapter("ecole", url, gateway, operations=OPERATIONS, **kwargs), recorder  # type: ignore[arg-type]


def test_redirects_are_not_followed_and_never_leave_the_allow_list() -> None:
    with HostileServer(always(Answer(200, {"Content-Type": "application/json"}, b"{}"))).running() as target:
        redirect = Answer(307, {"Location": target.url + "/steal"})
        with HostileServer(always(redirect)).running() as hostile:
            adapter, _ = rest_on(hostile.url + "/api/v1", auth=HttpAuth("bearer", "secret"))
            with pytest.raises(PermanentError) as raised:
                adapter.call("Health", {}, ctx())
            assert raised.value.code == "HTTP_REDIRECT_REFUSED"
            allowed, _ = rest_on(hostile.url + "/api/v1", allow_redirects=True)
            with pytest.raises(PermanentError) as raised:
                allowed.call("Health", {}, ctx())
            assert raised.value.code == "ENDPOINT_REFUSED"
        assert target.hits == 0


def test_pagination_link_to_another_host_is_refused() -> None:
    with HostileServer(always(Answer(200, {"Content-Type": "application/json"}, b"{}"))).running() as target:
        page = f'{{"items": [1], "next": "{target.url}/api/v1/families?offset=1"}}'.encode()
        with HostileServer(
            always(Answer(200, {"Content-Type": "application/json"}, page))
        ).running() as hostile:
            adapter, _ = rest_on(hostile.url + "/api/v1")
            with pytest.raises(PermanentError) as raised:
                list(adapter.paginate("SearchFamilies", ctx(), {"birth_name": "x"}))
            assert raised.value.code == "ENDPOINT_REFUSED"
        assert target.hits == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_a_50_mb_json_answer_is_refused_without_holding_it(declared: bool) -> None:
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(50 * 1024 * 1024)
    with HostileServer(always(Answer(200, headers, megabytes(50, b"[" * 1024 * 1024)))).running() as huge:
        adapter, recorder = rest_on(huge.url + "/api/v1", max_response_bytes=1024 * 1024)
        tracemalloc.start()
        try:
            with pytest.raises(PermanentError) as raised:
                adapter.call("Health", {}, ctx())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert raised.value.code == "RESPONSE_TOO_LARGE" and recorder.outcomes() == ["permanent_error"]
    assert peak < 8 * 1024 * 1024
    assert huge.bytes_sent < 50 * 1024 * 1024


def test_deeply_nested_or_non_json_answers_are_invalid_responses() -> None:
    for answer in (
        Answer(200, {"Content-Type": "application/json"}, b"[" * 200_000),
        Answer(200, {"Content-Type": "text/html"}, b"<html>login</html>"),
    ):
        with HostileServer(always(answer)).running() as hostile:
            adapter, _ = rest_on(hostile.url + "/api/v1")
            with pytest.raises(ConnectorError) as raised:
                adapter.call("Health", {}, ctx())
            assert raised.value.code == "INVALID_RESPONSE"


def test_allow_hosts_entries_are_validated() -> None:
    with pytest.raises(ValueError):
        rest_on("http://127.0.0.1:1/api/v1", allow_hosts=["user@evil:80"])


def test_openapi_without_data_categories_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text("openapi: 3.1.0\npaths:\n  /x:\n    get: {operationId: GetX, responses: {}}\n")
    with pytest.raises(ValueError, match="x-data-categories"):
        load_openapi(spec)
    spec.write_text(
        "openapi: 3.1.0\npaths:\n  /x/{id}:\n    parameters: [{$ref: 'http://evil/p.yaml'}]\n"
        "    get: {operationId: GetX, x-data-categories: [], responses: {}}\n"
    )
    with pytest.raises(ValueError, match="only local references"):
        load_openapi(spec)


def test_elapsed_is_bounded_by_the_timeout_not_the_body_trickle() -> None:
    """A peer trickling its body byte by byte is cut at the read timeout between bytes."""

    def trickle():
        for _ in range(100):
            time.sleep(0.5)
            yield b" "

    with HostileServer(always(Answer(200, {"Content-Type": "application/json"}, trickle))).running() as slow:
        recorder = ListRecorder()
        gateway = Gateway("ecole", SystemPolicy(max_attempts=1, timeout_s=0.2), recorder)
        adapter = RestAdapter("ecole", slow.url + "/api/v1", gateway, operations=OPERATIONS)
        with pytest.raises(TransientError) as raised:
            adapter.call("Health", {}, ctx())
    assert raised.value.code == "TIMEOUT"


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (HttpAuth("bearer", "t0k"), "authorization", "Bearer t0k"),
        (HttpAuth("basic", "s3cret", username="hub"), "authorization", "Basic aHViOnMzY3JldA=="),
        (HttpAuth("api_key", "k3y", header="X-Api-Key"), "x-api-key", "k3y"),
    ],
    ids=["bearer", "basic", "api-key"],
)
def test_auth_kinds_and_idempotency_key_reach_the_wire(auth: HttpAuth, header: str, value: str) -> None:
    ok = Answer(201, {"Content-Type": "application/json"}, b'{"id": "E-1"}')
    with HostileServer(always(ok)).running() as peer:
        adapter, recorder = rest_on(peer.url + "/api/v1", auth=auth)
        adapter.call("CreateEnrolment", {"child_id": "C-1", "kind": "creche"}, ctx("req-5:enrol"))
    [seen] = peer.headers
    assert seen[header] == value and seen["idempotency-key"] == "req-5:enrol"
    assert peer.paths == ["/api/v1/enrolments"]
    assert "t0k" not in repr(auth) and "s3cret" not in repr(auth) and "k3y" not in repr(auth)
    assert recorder.outcomes() == ["ok"]


def test_a_cookie_set_by_the_back_end_is_never_sent_with_a_later_call() -> None:
    """A session cookie from one citizen's call must not ride along with the next one's."""
    answer = Answer(
        200, {"Content-Type": "application/json", "Set-Cookie": "session=citizen-1; Path=/"}, b"{}"
    )
    with HostileServer(always(answer)).running() as peer:
        adapter, _ = rest_on(peer.url + "/api/v1")
        adapter.call("Health", {}, ctx())
        adapter.call("Health", {}, ctx())
    assert [seen.get("cookie") for seen in peer.headers] == [None, None]


def test_the_journal_digests_the_bytes_received_keyed() -> None:
    body = b'{"status":  "ok", "b": 1}'  # not canonical JSON: the digest is of these exact bytes
    with HostileServer(always(Answer(200, {"Content-Type": "application/json"}, body))).running() as peer:
        recorder = ListRecorder()
        gateway = Gateway("ecole", SystemPolicy(max_attempts=1), recorder, digest_key=b"k" * 32)
        adapter = RestAdapter("ecole", peer.url + "/api/v1", gateway, operations=OPERATIONS)
        assert adapter.call("Health", {}, ctx()) == {"status": "ok", "b": 1}
    [exchange] = recorder.exchanges
    assert exchange.response_digest == digest(body, b"k" * 32)
    assert exchange.response_digest.startswith("hmac-sha256:")


def test_the_journal_digests_the_request_as_sent_body_encoded_once() -> None:
    ok = Answer(201, {"Content-Type": "application/json"}, b'{"id": "E-1"}')
    with HostileServer(always(ok)).running() as peer:
        recorder = ListRecorder()
        gateway = Gateway("ecole", SystemPolicy(max_attempts=1), recorder, digest_key=b"k" * 32)
        adapter = RestAdapter("ecole", peer.url + "/api/v1", gateway, operations=OPERATIONS)
        adapter.call("CreateEnrolment", {"child_id": "C-1", "kind": "creche", "note": "Léa"}, ctx("k"))
    [sent] = peer.bodies
    assert json.loads(sent) == {"child_id": "C-1", "kind": "creche", "note": "Léa"}
    assert peer.headers[0]["content-type"] == "application/json"
    [exchange] = recorder.exchanges
    assert exchange.payload_digest == digest(b"POST /enrolments\n" + sent, b"k" * 32)


def test_a_body_that_is_not_json_is_refused_before_the_wire() -> None:
    with HostileServer(always(Answer(201))).running() as peer:
        adapter, _ = rest_on(peer.url + "/api/v1")
        with pytest.raises(PermanentError) as raised:
            adapter.call("CreateEnrolment", {"child_id": "C-1", "kind": float("nan")}, ctx("k"))
    assert raised.value.code == "INVALID_MESSAGE" and peer.hits == 0
