"""The API documentation pages in a real browser: ``hub serve`` as an operator starts it, Debian's
Chromium driven by Playwright (headless; Playwright's own browser builds are never downloaded).

Over HTTP (tests/hub/test_openapi.py) the pages name only the hub's assets; here the scripts run:
Swagger UI must render the operations and schemas from /openapi.json and "Try it out" must reach
the hub, ReDoc must render, and no request may leave the loopback, whatever the scripts attempt
(ReDoc's sidebar asks Redocly's CDN for a logo: the hub's Content-Security-Policy refuses it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import CONFIG, require_peer, serve_process

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (apt-get install chromium)
WAIT_MS = 30_000  # a loaded 2-core machine renders Swagger UI's 1 MB bundle slowly


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """A headless Chromium; a visible skip when it or Playwright is missing (a failure in CI)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require_peer(sync_playwright is not None, "playwright is not installed (pip install -e '.[dev]')")
    require_peer(CHROMIUM.exists(), f"Debian's chromium is not at {CHROMIUM} (apt-get install chromium)")
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-proxy-server"],  # loopback straight, whatever proxy the machine sets
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def served(sandbox, database_url: str) -> Iterator[str]:
    """``hub serve`` in its own process on a free loopback port; its base URL."""
    with serve_process({**os.environ, "HUB_DATABASE_URL": database_url, "HUB_CONFIG": str(CONFIG)}) as hub:
        yield hub.base_url


def operation(page, method: str, path: str):
    """Swagger UI's block of one operation (collapsed until its summary is clicked)."""
    return page.locator(f".opblock-{method}", has=page.locator(f'.opblock-summary-path[data-path="{path}"]'))


def test_swagger_ui_and_redoc_render_and_stay_on_the_hub(chromium, served):
    from playwright.sync_api import Request, Route, expect

    hub_host = urlsplit(served).hostname
    left: list[str] = []  # off-host requests that reached the network layer (aborted here)
    attempted: list[Request] = []  # every off-host request a page made, refused or not

    def off_host(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme not in ("data", "blob") and parts.hostname != hub_host

    def guard(route: Route) -> None:
        if off_host(route.request.url):
            left.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context = chromium.new_context()
    try:
        context.route("**/*", guard)
        context.on("request", lambda request: attempted.append(request) if off_host(request.url) else None)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))

        page.goto(f"{served}/docs")
        expect(page).to_have_title("Municipal integration hub - Swagger UI")
        filing = operation(page, "post", "/v1/requests")
        expect(filing).to_be_visible(timeout=WAIT_MS)
        expect(filing.locator(".opblock-summary-description")).to_contain_text("File a request")
        schemas = page.locator(".models .json-schema-2020-12__title")
        expect(schemas.get_by_text("Error", exact=True)).to_be_visible(timeout=WAIT_MS)

        health = operation(page, "get", "/health")
        health.locator(".opblock-summary-control").click()
        health.get_by_role("button", name="Try it out").click()
        health.get_by_role("button", name="Execute").click()
        answer = health.locator(".live-responses-table tbody .response-col_status")
        expect(answer).to_have_text("200", timeout=WAIT_MS)
        expect(health.locator(".live-responses-table .microlight").first).to_contain_text('"database": "ok"')

        page.goto(f"{served}/redoc")
        expect(page).to_have_title("Municipal integration hub - ReDoc")
        expect(page.locator("h1").first).to_have_text("Municipal integration hub (0.1.0)", timeout=WAIT_MS)
        expect(page.get_by_role("heading", name="File a request (démarche) for a citizen")).to_be_visible()
    finally:
        context.close()

    assert left == []
    # What the scripts attempted elsewhere, the browser refused under the hub's policy before
    # sending anything.
    refused = [(request.url, request.failure) for request in attempted]
    assert all(failure == "csp" for _url, failure in refused), refused
    assert page_errors == []
