"""Workers: claim outbox messages, run their flows, seal the journal.

``hub serve`` runs one worker inside the API process (embedded default); ``hub worker`` runs them
alone, several processes sharing a PostgreSQL database. Each worker runs up to ``concurrency``
flows at once in threads, since most of a flow's time is spent waiting on back-ends.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from hub import journal
from hub.outbox import Claim, claim, extend
from hub.runner import FlowRunner
from hub.runtime import Hub

log = logging.getLogger("hub.worker")
SEAL_EVERY_S = 0.5


class Worker:
    def __init__(self, hub: Hub, *, name: str | None = None, concurrency: int | None = None) -> None:
        self.hub = hub
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.concurrency = concurrency or hub.config.worker.concurrency
        self.runner = FlowRunner(hub)
        self._in_flight = 0
        # Claimed ahead and not started yet: their leases are kept alive while they wait for a
        # slot (see _keep_waiting_leases), by message id.
        self._waiting: dict[int, Claim] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hub-flow")
        self._last_seal = 0.0
        self._head_refused: str | None = None  # the head problem last logged by the seal
        self.processed = 0

    def run_once(self) -> int:
        """Claim what is ready (up to the free slots), run it, wait for it; return how many ran."""
        claims = self._read(claim(self.hub.db, self.name, self.concurrency, self.hub.config.worker.lease_s))
        for future in [self._pool.submit(self._process, c) for c in claims]:
            future.result()
        self.seal_if_due(force=True)
        return len(claims)

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set: keep every slot busy, sleep when the queue is empty."""
        settings = self.hub.config.worker
        log.info("worker %s started (%d slots)", self.name, self.concurrency)
        while not stop.is_set():
            with self._lock:
                idle = self._in_flight < self.concurrency
                # Claim ahead, up to a batch beyond the slots: one claim statement then feeds several
                # flows (the claimed-ahead ones wait in the pool; their lease is renewed if needed).
                room = self.concurrency + settings.batch - self._in_flight
            claims: list[Claim] = []
            if idle:
                try:
                    claims = claim(self.hub.db, self.name, min(room, settings.batch), settings.lease_s)
                except Exception:
                    log.exception("claiming failed; retrying shortly")
                    stop.wait(1.0)
                    continue
                claims = self._read(claims)
            with self._lock:
                self._in_flight += len(claims)
                self._waiting.update((item.message_id, item) for item in claims)
            for item in claims:
                self._pool.submit(self._process_and_release, item.message_id)
            self._keep_waiting_leases()
            self.seal_if_due()
            if not claims:
                self.hub.work_available.wait(settings.poll_interval_s)
                self.hub.work_available.clear()
        self._pool.shutdown(wait=True)
        self.seal_if_due(force=True)
        log.info("worker %s stopped after %d messages", self.name, self.processed)

    def _read(self, claims: list[Claim]) -> list[Claim]:
        """The claims with their requests, read together; if that read fails, each run reads its
        own (the claims are kept: dropped, they would pass for interrupted when their leases end)."""
        try:
            return self.runner.read(claims)
        except Exception:
            log.exception(
                "reading the requests of %d claimed messages failed; each run reads its own", len(claims)
            )
            return claims

    def _keep_waiting_leases(self) -> None:
        """Renew the lease of a claimed-ahead message before it runs out while it waits for a slot.

        Otherwise a slow back-end holding every slot lets the queued leases expire, another claim
        takes the message, and reports its untouched step as interrupted (a call that may have
        left, journaled as such): a false trail for auditors, and the citizen resolved twice."""
        lease_s = self.hub.config.worker.lease_s
        with self._lock:
            due = [c for c in self._waiting.values() if c.leased_until - time.monotonic() < lease_s / 3]
        for waiting in due:
            renewed_at = time.monotonic()
            try:
                held = extend(self.hub.db, waiting, lease_s)
            except Exception:  # the database is away: the next turn of the loop tries again
                log.exception("renewing the lease of waiting message %s failed", waiting.message_id)
                continue
            with self._lock:
                if waiting.message_id not in self._waiting:
                    continue  # started meanwhile: the runner keeps its own lease from here
                if held:
                    self._waiting[waiting.message_id] = replace(waiting, leased_until=renewed_at + lease_s)
                else:
                    log.warning("message %s was taken over while it waited for a slot", waiting.message_id)

    def _process_and_release(self, message_id: int) -> None:
        with self._lock:
            item = self._waiting.pop(message_id)
        try:
            self._process(item)
        finally:
            with self._lock:
                self._in_flight -= 1
            self.hub.wake_workers()  # a slot is free: claim more without waiting for the poll

    def _process(self, item: Claim) -> None:
        try:
            outcome = self.runner.process(item)
            with self._lock:
                self.processed += 1
            if outcome == "lost":
                log.info("message %s was taken over by another worker", item.message_id)
        except Exception:
            log.exception("message %s crashed the runner; it will be reclaimed", item.message_id)

    def seal_if_due(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_seal >= SEAL_EVERY_S:
            self._last_seal = now
            try:
                journal.seal(self.hub.db, self.hub.journal_key)
            except journal.HeadNotAuthentic as exc:
                # Rows keep being written (each with its MAC) but stay unsealed until an operator
                # looks: said once per problem, not every half second.
                if exc.problem != self._head_refused:
                    self._head_refused = exc.problem
                    log.error("the journal is not sealed: %s (see `hub audit verify`)", exc.problem)
            except Exception:
                log.exception("sealing the journal failed; will retry")
            else:
                self._head_refused = None


def run_in_thread(hub: Hub, *, concurrency: int | None = None) -> tuple[threading.Thread, threading.Event]:
    """Start a worker in a daemon thread (``hub serve``, demo, tests); set the event to stop it."""
    stop = threading.Event()
    worker = Worker(hub, concurrency=concurrency)
    thread = threading.Thread(target=worker.run, args=(stop,), name="hub-worker", daemon=True)
    thread.start()
    return thread, stop
