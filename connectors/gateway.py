"""The cut every outbound call goes through: concurrency limit, circuit breaker, retry, journal.

A protocol adapter (SOAP, REST, SFTP, documents) hands the gateway a ``send(attempt)`` callable
that performs one attempt on the wire and raises a :class:`~connectors.errors.ConnectorError`
when it fails; the gateway decides everything else, once, for every system:

- at most ``max_concurrency`` attempts in flight per system (a semaphore; waiting longer than
  ``timeout_s`` for a slot is a transient ``CONCURRENCY_LIMIT``);
- a circuit breaker: after ``breaker_failures`` consecutive transient failures, or when the share
  of transient failures among the last ``breaker_window`` calls reaches ``breaker_failure_rate``
  (once the window is full), the circuit opens and calls fail fast with
  :class:`~connectors.errors.CircuitOpenError`; after ``breaker_reset_s`` one probe goes through
  (half-open), whose success closes the circuit and whose failure opens it again. A permanent
  error (the back-end answered "no") counts as a sign of life, not a failure;
- retries of transient errors only, with exponential backoff and full jitter (the formula of
  tenacity's ``wait_random_exponential``; tenacity drives the attempts after the first, which runs
  without it), bounded by ``max_attempts`` and ``max_elapsed_s``. The caller may ask for a single
  attempt (``retry=False``) when it prefers to reschedule than to sleep;
- one :class:`~connectors.exchange.Exchange` recorded per attempt, including attempts the breaker
  or the concurrency limit refused (outcome ``rejected``), with digests instead of data;
- the wire only inside an attempt: adapters' transports call :func:`require_attempt`, so a
  connector method that skipped the gateway fails (``GATEWAY_BYPASSED``) instead of sending
  unjournaled.

``timeout_s`` is applied on the wire by the adapter (it owns the socket); the gateway cannot
interrupt a blocking call and does not pretend to.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from connectors.errors import (
    CallTimeoutError,
    CircuitOpenError,
    ConnectorError,
    PermanentError,
    TransientError,
)
from connectors.exchange import CallContext, Exchange, ExchangeRecorder, Outcome, Received, digest

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]
log = logging.getLogger("connectors.gateway")


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """A breaker entered ``state``: ``open`` (calls refused for ``retry_after_s``), ``half_open``
    (one probe goes through) or ``closed``."""

    system: str
    state: BreakerState
    consecutive_failures: int
    opened_count: int
    retry_after_s: float | None = None


class BreakerListener(Protocol):
    """Told of every state change of a breaker (the hub persists them, so that ``hub systems
    status`` shows the real state of every process's breaker). Called outside the breaker's
    lock, in the thread of the call that caused the change; it must not raise."""

    def breaker_changed(self, change: BreakerChange) -> None: ...


# The system whose attempt is running in this thread (or task): set by the gateway around
# ``send``, checked by every adapter's wire transport. An adapter method that reached the wire
# without going through :meth:`Gateway.call` fails instead of escaping the journal.
_ATTEMPT: ContextVar[str | None] = ContextVar("gateway_attempt", default=None)


def require_attempt(system: str) -> None:
    """Raise unless a gateway attempt for ``system`` is running: the wire is reachable only there."""
    running = _ATTEMPT.get()
    if running != system:
        raise PermanentError(
            "GATEWAY_BYPASSED",
            f"a call to system {system} tried to reach the wire outside its gateway "
            f"(attempt running for: {running or 'none'})",
        )


@dataclass
class GatewayStats:
    """What ``hub systems status`` shows for this process: last outcome, last error, latencies."""

    calls: int = 0
    failures: int = 0
    last_outcome: str | None = None
    last_at: float | None = None  # time.time()
    last_error: str | None = None
    last_error_at: float | None = None
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class SystemPolicy(BaseModel):
    """How the hub treats one back-end system; built from the system's block of ``hub.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(10.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_initial_s: float = Field(0.2, ge=0)
    backoff_max_s: float = Field(10.0, ge=0)
    max_elapsed_s: float = Field(60.0, gt=0)
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, ge=0)
    breaker_failure_rate: float | None = Field(None, gt=0, le=1)
    breaker_window: int = Field(20, ge=2)
    max_concurrency: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _backoff_bounds(self) -> Self:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s "
                f"({self.backoff_initial_s})"
            )
        return self


class CircuitBreaker:
    """Consecutive-failure (and optional failure-rate) breaker with a single half-open probe.

    The failure rate catches a back-end that fails one call in two: never N in a row, yet
    worth leaving alone. The clock is injectable.
    """

    def __init__(
        self,
        system: str,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        failure_rate: float | None = None,
        window: int = 20,
        listener: BreakerListener | None = None,
    ) -> None:
        self.system = system
        self.failures_to_open = failures
        self.reset_s = reset_s
        self.failure_rate = failure_rate
        self._clock = clock
        self._listener = listener
        self._reported: BreakerState = "closed"  # the last state the listener was told
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self._recent: deque[bool] = deque(maxlen=window)  # True = failure
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._consecutive_failures

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probe_in_flight or self._clock() - self._opened_at >= self.reset_s:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Let the call through, or raise :class:`CircuitOpenError`."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state != "half_open" or self._probe_in_flight:
                assert self._opened_at is not None
                remaining = max(0.0, self._opened_at + self.reset_s - self._clock())
                raise CircuitOpenError(self.system, remaining)
            self._probe_in_flight = True  # this call is the probe
            change = self._change("half_open")
        if change is not None:
            self._tell(change)

    def on_success(self) -> None:
        with self._lock:
            self._consecutive_failures = 0
            change = None
            if self._opened_at is not None:
                self._recent.clear()  # a successful probe starts a fresh window
                self._opened_at = None
                change = self._change("closed")
            self._probe_in_flight = False
            self._recent.append(False)
        if change is not None:
            self._tell(change)

    def on_failure(self) -> None:
        change = None
        with self._lock:
            self._consecutive_failures += 1
            self._recent.append(True)
            if (
                self._probe_in_flight
                or self._consecutive_failures >= self.failures_to_open
                or self._rate_hit()
            ):
                if self._opened_at is None or self._probe_in_flight:
                    self.opened_count += 1
                self._opened_at = self._clock()
                change = self._change("open")
            self._probe_in_flight = False
        if change is not None:
            self._tell(change)

    def _change(self, state: BreakerState) -> BreakerChange | None:
        """The change to report (under the lock), or None when the listener already knows."""
        if self._listener is None or state == self._reported:
            return None
        self._reported = state
        return BreakerChange(
            self.system,
            state,
            self._consecutive_failures,
            self.opened_count,
            self.reset_s if state == "open" else None,
        )

    def _tell(self, change: BreakerChange) -> None:
        assert self._listener is not None
        try:
            self._listener.breaker_changed(change)
        except Exception:  # the breaker's own decision stands whatever the listener does
            log.exception("breaker listener failed for system %s", self.system)

    def _rate_hit(self) -> bool:
        if self.failure_rate is None or len(self._recent) < (self._recent.maxlen or 0):
            return False
        return sum(self._recent) / len(self._recent) >= self.failure_rate


def _backoff(policy: SystemPolicy, failed_attempt: int) -> float:
    """Exponential backoff with full jitter after the ``failed_attempt``-th failure (as tenacity's
    ``wait_random_exponential``): uniform between 0 and ``initial * 2**(n-1)``, capped."""
    ceiling = min(policy.backoff_max_s, policy.backoff_initial_s * 2 ** (failed_attempt - 1))
    return random.uniform(0, ceiling)


def _retryable(exc: BaseException) -> bool:
    # An open circuit would refuse again at once: let the hub reschedule instead.
    return isinstance(exc, ConnectorError) and exc.transient and not isinstance(exc, CircuitOpenError)


def _classify(exc: Exception) -> ConnectorError:
    """Turn an exception an adapter let through into a typed error; the message names no data."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, TimeoutError):
        return CallTimeoutError(f"timed out ({type(exc).__name__})")
    if isinstance(exc, OSError):
        return TransientError("CONNECTION_FAILED", f"network error ({type(exc).__name__})")
    return PermanentError("UNEXPECTED_ERROR", f"unclassified {type(exc).__name__} in the adapter")


class Gateway:
    """The one instrumented path to a back-end system; share one instance per system."""

    def __init__(
        self,
        system: str,
        policy: SystemPolicy,
        recorder: ExchangeRecorder,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        digest_key: bytes | None = None,
        breaker_listener: BreakerListener | None = None,
    ) -> None:
        self.system = system
        self.policy = policy
        self._recorder = recorder
        self._digest_key = digest_key  # keyed digests in the journal (see connectors.exchange.digest)
        self._sleep = sleep
        # The concurrency slots as tokens in a C-level queue: taking and giving back one costs a
        # tenth of a threading.BoundedSemaphore's (pure Python, with a Condition) per call.
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(policy.max_concurrency):
            self._slots.put(None)
        self.stats = GatewayStats()
        self._stats_lock = threading.Lock()
        self.breaker = CircuitBreaker(
            system,
            policy.breaker_failures,
            policy.breaker_reset_s,
            clock,
            failure_rate=policy.breaker_failure_rate,
            window=policy.breaker_window,
            listener=breaker_listener,
        )

    @property
    def breaker_state(self) -> BreakerState:
        return self.breaker.state

    def call(
        self,
        operation: str,
        payload: Any,
        context: CallContext,
        send: Callable[[int], T | Received[T]],
        *,
        retry: bool = True,
    ) -> T:
        """Run ``send(attempt)`` under the system's policy; return its result or raise
        :class:`ConnectorError` (the last attempt's, when retries are exhausted). ``send`` may
        return :class:`~connectors.exchange.Received` to have the answer's raw bytes journaled
        (digested) instead of its value."""
        payload_digest = digest(payload, self._digest_key)
        if context.interrupted:
            self._record_interrupted(operation, payload_digest, context)
        max_attempts = self.policy.max_attempts if retry else 1
        started = time.monotonic()
        # The first attempt runs without tenacity (most calls need no other): its machinery costs
        # tens of microseconds per call, a measurable share of a fast back-end's answer time.
        try:
            return self._attempt(operation, payload_digest, context, send, 1)
        except ConnectorError as exc:
            if max_attempts == 1 or not _retryable(exc):
                raise
            first_wait = _backoff(self.policy, 1)
            remaining = self.policy.max_elapsed_s - (time.monotonic() - started) - first_wait
            if remaining <= 0:
                raise
        self._sleep(first_wait)
        policy = self.policy
        retrying = Retrying(
            stop=stop_after_attempt(max_attempts - 1) | stop_before_delay(remaining),
            # tenacity numbers from the second attempt: its n-th failure is the call's (n+1)-th
            wait=lambda state: _backoff(policy, state.attempt_number + 1),
            retry=retry_if_exception(_retryable),
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number + 1
                result = self._attempt(operation, payload_digest, context, send, number)
        return result

    def _attempt(
        self,
        operation: str,
        payload_digest: str,
        context: CallContext,
        send: Callable[[int], T | Received[T]],
        number: int,
    ) -> T:
        started = time.perf_counter()
        try:
            self._slots.get(timeout=self.policy.timeout_s)
        except queue.Empty:
            error = TransientError(
                "CONCURRENCY_LIMIT",
                f"no free slot among {self.policy.max_concurrency} for system {self.system}",
            )
            self._record(operation, number, "rejected", started, payload_digest, context, error=error)
            raise error from None
        try:
            try:
                self.breaker.before_call()
            except CircuitOpenError as exc:
                self._record(operation, number, "rejected", started, payload_digest, context, error=exc)
                raise
            token = _ATTEMPT.set(self.system)
            try:
                result = send(number)
            except Exception as exc:
                error = _classify(exc)
                if error.transient:
                    self.breaker.on_failure()
                else:
                    self.breaker.on_success()
                outcome: Outcome = "transient_error" if error.transient else "permanent_error"
                self._record(operation, number, outcome, started, payload_digest, context, error=error)
                if error is exc:
                    raise
                raise error from exc
            except BaseException:
                self.breaker.on_failure()  # interrupted mid-call: assume the worst
                raise
            finally:
                _ATTEMPT.reset(token)
        finally:
            self._slots.put(None)
        self.breaker.on_success()
        if isinstance(result, Received):  # the adapter kept the answer's bytes: digest those
            response_digest = digest(result.raw, self._digest_key)
            result = result.value
        else:
            response_digest = digest(result, self._digest_key)
        self._record(
            operation, number, "ok", started, payload_digest, context, response_digest=response_digest
        )
        return result

    def _record_interrupted(self, operation: str, payload_digest: str, context: CallContext) -> None:
        """Journal the attempt of a delivery whose worker was lost mid-step: it may have reached the
        system, with this very message (mappings are deterministic and the idempotency key is the
        request's and step's), and no row says so. Its latency is unknown; it is not a failure of
        the system, so the breaker and the statistics ignore it."""
        self._recorder.record(
            Exchange(
                system=self.system,
                operation=operation,
                attempt=context.previous_attempts,
                outcome="interrupted",
                latency_ms=0.0,
                payload_digest=payload_digest,
                error_code="WORKER_LOST",
                error_message="the worker holding the request stopped during this call; the call may "
                "have reached the system and is made again with the same idempotency key",
            ),
            context,
        )

    def _record(
        self,
        operation: str,
        attempt: int,
        outcome: Outcome,
        started: float,
        payload_digest: str,
        context: CallContext,
        *,
        response_digest: str | None = None,
        error: ConnectorError | None = None,
    ) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        with self._stats_lock:
            stats = self.stats
            stats.calls += 1
            stats.last_outcome = outcome
            stats.last_at = time.time()
            if outcome != "rejected":
                stats.latencies_ms.append(latency_ms)
            if error is not None:
                stats.failures += 1
                stats.last_error = f"{error.code}: {error.message}"
                stats.last_error_at = stats.last_at
        self._recorder.record(
            Exchange(
                system=self.system,
                operation=operation,
                attempt=context.previous_attempts + attempt,
                outcome=outcome,
                latency_ms=latency_ms,
                payload_digest=payload_digest,
                response_digest=response_digest,
                error_code=error.code if error else None,
                error_message=error.message if error else None,
                details=dict(error.details) if error else {},
            ),
            context,
        )
