"""The sandbox fault knobs, turned over HTTP as a test or an operator would."""

from __future__ import annotations

import time

import httpx

from sandbox.knobs import ADMIN_PATH


def test_knobs_admin_endpoint_sets_downtime_and_latency(sandbox):
    base = sandbox.urls["ecole"].rsplit("/api/v1", 1)[0]
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            answer = client.put(ADMIN_PATH, json={"down_for": 30})
            assert answer.status_code == 200 and answer.json()["down_until"] > time.time()
            assert client.get("/api/v1/families/1").status_code == 503
            refused = client.put(ADMIN_PATH, json={"explode": True})
            assert refused.status_code == 400 and "unknown knobs" in refused.json()["error"]
            client.put(ADMIN_PATH, json={"down_until": 0, "latency_ms": 200})
            started = time.perf_counter()
            client.get("/api/v1/families/1")
            assert time.perf_counter() - started >= 0.2
            assert client.get(ADMIN_PATH).json()["latency_ms"] == 200
    finally:
        sandbox.knobs["ecole"].update({"down_until": 0, "latency_ms": 0})
