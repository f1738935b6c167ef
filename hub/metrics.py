"""Prometheus metrics: what an operator watches to know the hub is keeping up.

Request and queue figures are read from the database at scrape time, so every process reports
the same truth; exchange counters and breaker states are per process, as Prometheus expects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, not_, select

from hub.db.engine import Database
from hub.db.models import OutboxMessage, Request, utcnow
from hub.outbox import ready, unleased

BREAKER_STATES = ("closed", "half_open", "open")


class _DatabaseCollector(Collector):
    def __init__(
        self,
        db: Database,
        breakers: Callable[[], dict[str, str]],
        gateways: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.db = db
        self.breakers = breakers
        self.gateways = gateways or dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        requests = GaugeMetricFamily("hub_requests", "Requests by flow and status", labels=["flow", "status"])
        depth = GaugeMetricFamily(
            "hub_queue_depth", "Outbox messages ready to run that no worker has taken yet"
        )
        oldest = GaugeMetricFamily(
            "hub_queue_oldest_pending_seconds",
            "How long the oldest ready message has waited for a worker (since it became ready)",
        )
        waiting = GaugeMetricFamily(
            "hub_queue_waiting",
            "Messages scheduled for later: polling a back-end (wait_until) or backing off a failure",
        )
        running = GaugeMetricFamily("hub_queue_in_flight", "Messages a worker holds under a live lease")
        dead = GaugeMetricFamily("hub_dead_letters", "Dead-lettered messages awaiting an operator")
        now = utcnow()
        free, due = unleased(now), ready(now)  # the claim's own conditions (hub.outbox)
        with self.db.sessions() as session:
            for flow, status, count in session.execute(
                select(Request.flow, Request.status, func.count()).group_by(Request.flow, Request.status)
            ):
                requests.add_metric([flow, status], count)
            ready_count, first, later, held = session.execute(
                select(
                    func.count().filter(due),
                    func.min(OutboxMessage.available_at).filter(due),
                    func.count().filter(and_(OutboxMessage.available_at > now, free)),
                    func.count().filter(not_(free)),
                ).where(OutboxMessage.state == "pending")
            ).one()
            dead_count = session.scalar(select(func.count()).where(OutboxMessage.state == "dead"))
        depth.add_metric([], ready_count or 0)
        age = 0.0
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            age = max(0.0, (now - first).total_seconds())
        oldest.add_metric([], age)
        waiting.add_metric([], later or 0)
        running.add_metric([], held or 0)
        dead.add_metric([], dead_count or 0)
        breaker = GaugeMetricFamily(
            "hub_breaker_state",
            "Circuit breaker state per system (1 for the current state)",
            labels=["system", "state"],
        )
        for system, state in sorted(self.breakers().items()):
            for candidate in BREAKER_STATES:
                breaker.add_metric([system, candidate], 1.0 if candidate == state else 0.0)
        yield from (requests, depth, oldest, waiting, running, dead, breaker)
        yield from self._gateway_metrics()

    def _gateway_metrics(self) -> Iterator[GaugeMetricFamily]:
        """Per system, from this process's gateways: breaker openings, failures in a row, and the
        latency of the recent attempts (the window ``hub systems status`` also reads)."""
        opened = GaugeMetricFamily(
            "hub_breaker_opened", "Times the system's circuit opened in this process", labels=["system"]
        )
        failing = GaugeMetricFamily(
            "hub_breaker_consecutive_failures", "Transient failures in a row per system", labels=["system"]
        )
        latency = GaugeMetricFamily(
            "hub_exchange_latency_ms",
            "Latency of the system's last 200 attempts, by quantile",
            labels=["system", "quantile"],
        )
        for system, gateway in sorted(self.gateways().items()):
            opened.add_metric([system], gateway.breaker.opened_count)
            failing.add_metric([system], gateway.breaker.consecutive_failures)
            for quantile in (0.5, 0.99):
                value = gateway.stats.percentile(quantile)
                if value is not None:
                    latency.add_metric([system, str(quantile)], value)
        yield from (opened, failing, latency)


class Metrics:
    def __init__(
        self,
        db: Database,
        breakers: Callable[[], dict[str, str]],
        gateways: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.exchanges = Counter(
            "hub_exchanges",
            "Exchanges journaled, by system and outcome",
            ["direction", "system", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(db, breakers, gateways))

    def render(self) -> bytes:
        return generate_latest(self.registry)
