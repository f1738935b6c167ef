"""Test doubles the connectors define as protocols (not library mocks): a recorder and a clock."""

from __future__ import annotations

import threading

from connectors.exchange import CallContext, Exchange


class ListRecorder:
    """An :class:`~connectors.exchange.ExchangeRecorder` that keeps every exchange in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self.contexts: list[CallContext] = []

    def record(self, exchange: Exchange, context: CallContext) -> None:
        with self._lock:
            self.exchanges.append(exchange)
            self.contexts.append(context)

    def outcomes(self) -> list[str]:
        return [exchange.outcome for exchange in self.exchanges]


class ManualClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
