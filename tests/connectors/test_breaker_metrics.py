"""A 5xx storm on one system opens its breaker, visible in /metrics, while the others stay closed."""

from __future__ import annotations

import pytest

from connectors.errors import CircuitOpenError, TransientError
from connectors.exchange import CallContext


def test_breaker_state_and_latency_in_metrics(live_api, sandbox) -> None:
    hub = live_api.hub
    context = CallContext(correlation_id="corr-metrics")
    sandbox.knobs["ecole"].down_for(30)
    failures = hub.config.systems["ecole"].breaker.failures
    for _ in range(failures):
        with pytest.raises(TransientError):
            hub.adapter("ecole").call("Health", {}, context)
    with pytest.raises(CircuitOpenError):
        hub.adapter("ecole").call("Health", {}, context)
    hub.adapter("ged").call("Health", {}, context)
    with live_api.client() as client:
        text = client.get("/metrics").text
    assert 'hub_breaker_state{state="open",system="ecole"} 1.0' in text
    assert 'hub_breaker_state{state="closed",system="ged"} 1.0' in text
    assert 'hub_breaker_opened{system="ecole"} 1.0' in text
    assert f'hub_breaker_consecutive_failures{{system="ecole"}} {failures}.0' in text
    assert 'hub_exchange_latency_ms{quantile="0.5",system="ged"}' in text
    assert 'hub_exchanges_total{direction="outbound",outcome="rejected",system="ecole"} 1.0' in text
