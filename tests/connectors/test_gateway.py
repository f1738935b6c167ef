"""The gateway's policy: retry classification, backoff, breaker, concurrency, one record per attempt."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.errors import (
    CircuitOpenError,
    ConnectorError,
    PermanentError,
    TransientError,
)
from connectors.exchange import CallContext, digest
from connectors.gateway import CircuitBreaker, Gateway, SystemPolicy
from tests.connectors.live_server import closed_port
from tests.connectors.recording import ListRecorder, ManualClock

CONTEXT = CallContext(correlation_id="corr-1", request_id="req-1", idempotency_key="req-1:s1")


def make_gateway(
    clock: ManualClock | None = None, **policy: float
) -> tuple[Gateway, ListRecorder, list[float]]:
    recorder = ListRecorder()
    sleeps: list[float] = []
    values = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, **policy}
    gateway = Gateway(
        "etat_civil",
        SystemPolicy(**values),
        recorder,
        clock=clock or ManualClock(),
        sleep=sleeps.append,
    )
    return gateway, recorder, sleeps


def scripted(*steps: object) -> tuple[Callable[[int], object], list[int]]:
    """A send() that raises or returns each step in turn, and the attempt numbers it received."""
    seen: list[int] = []

    def send(attempt: int) -> object:
        seen.append(attempt)
        step = steps[len(seen) - 1]
        if isinstance(step, BaseException):
            raise step
        return step

    return send, seen


def transient() -> TransientError:
    return TransientError("HTTP_5XX", "503", details={"status": 503})


def test_success_records_one_exchange_with_digests() -> None:
    gateway, recorder, _ = make_gateway()
    send, seen = scripted({"found": True})
    assert gateway.call("SearchBirthRecord", {"birthName": "X"}, CONTEXT, send) == {"found": True}
    assert seen == [1]
    [exchange] = recorder.exchanges
    assert exchange.outcome == "ok" and exchange.attempt == 1
    assert exchange.payload_digest == digest({"birthName": "X"})
    assert exchange.response_digest == digest({"found": True})
    assert recorder.contexts == [CONTEXT]


def test_a_call_whose_earlier_delivery_was_lost_journals_that_attempt_first() -> None:
    """The hub's worker died during this call in an earlier delivery: that attempt may have reached
    the system and has no row. It is journaled before the new one, with the same message digest,
    and counts neither as a failure for the breaker nor in the latency statistics."""
    gateway, recorder, _ = make_gateway(breaker_failures=1)
    send, seen = scripted({"found": True})
    resumed = replace(CONTEXT, previous_attempts=3, interrupted=True)
    assert gateway.call("SearchBirthRecord", {"birthName": "X"}, resumed, send) == {"found": True}
    assert seen == [1]
    lost, made = recorder.exchanges
    assert (lost.outcome, lost.attempt, lost.error_code) == ("interrupted", 3, "WORKER_LOST")
    assert (made.outcome, made.attempt) == ("ok", 4)
    assert lost.payload_digest == made.payload_digest == digest({"birthName": "X"})
    assert gateway.breaker_state == "closed" and gateway.stats.failures == 0 and gateway.stats.calls == 1


def test_transient_errors_are_retried_with_bounded_jittered_backoff() -> None:
    gateway, recorder, sleeps = make_gateway(backoff_initial_s=0.1, backoff_max_s=0.15)
    send, seen = scripted(transient(), transient(), transient(), "ok")
    assert gateway.call("op", {}, CONTEXT, send) == "ok"
    assert seen == [1, 2, 3, 4]
    assert recorder.outcomes() == ["transient_error"] * 3 + ["ok"]
    assert [e.attempt for e in recorder.exchanges] == [1, 2, 3, 4]
    assert len(sleeps) == 3
    for retry, waited in enumerate(sleeps, start=1):
        assert 0 <= waited <= min(0.15, 0.1 * 2 ** (retry - 1))


def test_permanent_error_is_not_retried() -> None:
    gateway, recorder, sleeps = make_gateway()
    send, seen = scripted(PermanentError("RECORD_NOT_FOUND", "no act"))
    with pytest.raises(PermanentError) as raised:
        gateway.call("RequestActCopy", {}, CONTEXT, send)
    assert raised.value.code == "RECORD_NOT_FOUND"
    assert seen == [1] and sleeps == []
    assert recorder.exchanges[0].error_code == "RECORD_NOT_FOUND"
    assert recorder.outcomes() == ["permanent_error"]


def test_exhausted_retries_raise_the_last_error() -> None:
    gateway, recorder, _ = make_gateway(max_attempts=3, breaker_failures=10)
    last = TransientError("TIMEOUT", "third")
    send, seen = scripted(transient(), transient(), last)
    with pytest.raises(TransientError) as raised:
        gateway.call("op", {}, CONTEXT, send)
    assert raised.value is last
    assert seen == [1, 2, 3]
    assert len(recorder.exchanges) == 3


def test_retry_false_makes_a_single_attempt() -> None:
    gateway, recorder, sleeps = make_gateway()
    send, seen = scripted(transient(), "never")
    with pytest.raises(TransientError):
        gateway.call("op", {}, CONTEXT, send, retry=False)
    assert seen == [1] and sleeps == [] and len(recorder.exchanges) == 1


def test_max_elapsed_stops_retrying() -> None:
    recorder = ListRecorder()
    gateway = Gateway(
        "s",
        SystemPolicy(
            max_attempts=100,
            backoff_initial_s=0.05,
            backoff_max_s=0.05,
            max_elapsed_s=0.2,
            breaker_failures=1000,
        ),
        recorder,
    )
    calls = 0

    def send(attempt: int) -> None:
        nonlocal calls
        calls += 1
        raise TransientError("HTTP_5XX", "down")

    started = time.monotonic()
    with pytest.raises(TransientError):
        gateway.call("op", {}, CONTEXT, send)
    assert time.monotonic() - started < 1.0
    assert 1 < calls < 100 and len(recorder.exchanges) == calls


def test_real_network_exceptions_are_classified_transient() -> None:
    gateway, recorder, _ = make_gateway(max_attempts=1)
    port = closed_port()
    listener = socket.create_server(("127.0.0.1", 0))  # accepts in the backlog, never answers

    def refused(attempt: int) -> None:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    def silent(attempt: int) -> bytes:
        with socket.create_connection(listener.getsockname(), timeout=0.05) as conn:
            return conn.recv(1)

    try:
        with pytest.raises(TransientError) as raised:
            gateway.call("op", {}, CONTEXT, refused)
        assert raised.value.code == "CONNECTION_FAILED"
        assert isinstance(raised.value.__cause__, ConnectionRefusedError)
        with pytest.raises(TransientError) as raised:
            gateway.call("op", {}, CONTEXT, silent)
        assert raised.value.code == "TIMEOUT"
    finally:
        listener.close()
    assert [e.error_code for e in recorder.exchanges] == ["CONNECTION_FAILED", "TIMEOUT"]


def test_unclassified_exception_is_permanent_and_names_no_data() -> None:
    gateway, recorder, _ = make_gateway()

    def buggy(attempt: int) -> None:
        {"birthName": "Lefèvre"}["missing"]

    with pytest.raises(PermanentError) as raised:
        gateway.call("op", {}, CONTEXT, buggy)
    assert raised.value.code == "UNEXPECTED_ERROR"
    assert isinstance(raised.value.__cause__, KeyError)
    assert "missing" not in raised.value.message
    assert len(recorder.exchanges) == 1


def test_breaker_opens_after_consecutive_failures_then_probes_and_closes() -> None:
    clock = ManualClock()
    gateway, recorder, _ = make_gateway(clock, max_attempts=1, breaker_failures=3, breaker_reset_s=30)
    failing, _ = scripted(*[transient()] * 3)
    for _ in range(3):
        assert gateway.breaker_state == "closed"
        with pytest.raises(TransientError):
            gateway.call("op", {}, CONTEXT, failing)
    assert gateway.breaker_state == "open"

    never, seen = scripted()
    with pytest.raises(CircuitOpenError) as raised:
        gateway.call("op", {}, CONTEXT, never)
    assert raised.value.transient and raised.value.code == "CIRCUIT_OPEN"
    assert raised.value.retry_after_s == pytest.approx(30)
    assert seen == []
    assert recorder.outcomes()[-1] == "rejected"

    clock.advance(30)
    assert gateway.breaker_state == "half_open"
    probe_fails, _ = scripted(transient())
    with pytest.raises(TransientError):
        gateway.call("op", {}, CONTEXT, probe_fails)
    assert gateway.breaker_state == "open"  # one failed probe is enough to open again

    clock.advance(30)
    probe_ok, _ = scripted("ok")
    assert gateway.call("op", {}, CONTEXT, probe_ok) == "ok"
    assert gateway.breaker_state == "closed"


def test_circuit_open_is_not_retried_in_process() -> None:
    clock = ManualClock()
    gateway, recorder, sleeps = make_gateway(clock, max_attempts=10, breaker_failures=2)
    send, seen = scripted(transient(), transient(), "never")
    with pytest.raises(CircuitOpenError):
        gateway.call("op", {}, CONTEXT, send)
    assert seen == [1, 2]
    assert recorder.outcomes() == ["transient_error", "transient_error", "rejected"]
    assert len(sleeps) == 2


def test_permanent_errors_do_not_trip_the_breaker() -> None:
    gateway, _, _ = make_gateway(breaker_failures=2)
    for _ in range(5):
        send, _ = scripted(PermanentError("RECORD_NOT_FOUND", "no"))
        with pytest.raises(PermanentError):
            gateway.call("op", {}, CONTEXT, send)
    assert gateway.breaker_state == "closed"


def test_half_open_lets_a_single_probe_through() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("s", failures=1, reset_s=5, clock=clock)
    breaker.on_failure()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.advance(5)
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    breaker.on_success()
    breaker.before_call()
    assert breaker.state == "closed"


def test_concurrency_is_limited_per_system() -> None:
    gateway, _, _ = make_gateway(max_concurrency=2, timeout_s=5)
    lock = threading.Lock()
    in_flight = peak = 0

    def send(attempt: int) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1

    threads = [threading.Thread(target=gateway.call, args=("op", {}, CONTEXT, send)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2


def test_waiting_too_long_for_a_slot_is_a_rejected_transient_attempt() -> None:
    gateway, recorder, _ = make_gateway(max_concurrency=1, timeout_s=0.05, max_attempts=1)
    release = threading.Event()
    holder = threading.Thread(target=gateway.call, args=("op", {}, CONTEXT, lambda attempt: release.wait(5)))
    holder.start()
    time.sleep(0.02)
    try:
        with pytest.raises(TransientError) as raised:
            gateway.call("op", {}, CONTEXT, lambda attempt: None)
        assert raised.value.code == "CONCURRENCY_LIMIT"
    finally:
        release.set()
        holder.join()
    assert sorted(recorder.outcomes()) == ["ok", "rejected"]


def test_policy_rejects_unknown_keys_and_inverted_backoff() -> None:
    with pytest.raises(ValidationError):
        SystemPolicy(timeout=3)
    with pytest.raises(ValidationError):
        SystemPolicy(backoff_initial_s=5, backoff_max_s=1)
    assert SystemPolicy().model_dump() == {
        "timeout_s": 10.0,
        "max_attempts": 5,
        "backoff_initial_s": 0.2,
        "backoff_max_s": 10.0,
        "max_elapsed_s": 60.0,
        "breaker_failures": 5,
        "breaker_reset_s": 30.0,
        "breaker_failure_rate": None,
        "breaker_window": 20,
        "max_concurrency": 8,
    }


STEP = st.sampled_from(["ok", "transient", "permanent", "oserror"])


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=8), max_attempts=st.integers(1, 6), retry=st.booleans())
def test_attempts_recorded_equal_attempts_made(steps: list[str], max_attempts: int, retry: bool) -> None:
    gateway, recorder, _ = make_gateway(max_attempts=max_attempts, breaker_failures=100)
    made: list[int] = []

    def send(attempt: int) -> str:
        made.append(attempt)
        step = steps[min(len(made), len(steps)) - 1]
        if step == "transient":
            raise TransientError("HTTP_5XX", "down")
        if step == "permanent":
            raise PermanentError("SOAP_CLIENT_FAULT", "no")
        if step == "oserror":
            raise ConnectionResetError("reset by peer")
        return step

    try:
        gateway.call("op", {"n": 1}, CONTEXT, send, retry=retry)
        succeeded = True
    except ConnectorError:
        succeeded = False

    assert [e.attempt for e in recorder.exchanges] == made == list(range(1, len(made) + 1))
    limit = max_attempts if retry else 1
    expected = [steps[min(i, len(steps) - 1)] for i in range(limit)]
    stop = next((i for i, s in enumerate(expected) if s in ("ok", "permanent")), limit - 1)
    assert len(made) == stop + 1
    assert succeeded == (expected[stop] == "ok")
    assert (
        recorder.outcomes()[-1]
        == {
            "ok": "ok",
            "permanent": "permanent_error",
            "transient": "transient_error",
            "oserror": "transient_error",
        }[expected[stop]]
    )


def test_failure_rate_opens_the_breaker_then_a_probe_closes_it_with_a_fresh_window() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("ecole", failures=100, reset_s=10, clock=clock, failure_rate=0.5, window=4)
    for fail in (True, False, True, False):
        if fail:
            breaker.on_failure()
        else:
            breaker.on_success()
    assert breaker.state == "closed"  # never two failures in a row, and no failure since it filled
    breaker.on_failure()  # the last four: success, failure, success, failure -> 2/4 = 0.5
    assert breaker.state == "open" and breaker.opened_count == 1
    clock.advance(10)
    breaker.before_call()  # the half-open probe
    breaker.on_success()
    assert breaker.state == "closed"
    breaker.on_failure()  # one failure in a fresh window does not reopen it
    assert breaker.state == "closed"
