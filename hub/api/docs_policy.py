"""What the API documentation pages (``/docs``, ``/redoc``) may load: the hub's own origin only.

fastapi-offline serves their scripts from the hub, but the scripts themselves can still reach out:
ReDoc 2's sidebar shows "API docs by Redocly" with an image from Redocly's CDN, which no option
turns off. An agent reading the documentation on the municipal network would then tell a third
party that it did (or, offline, wait on a request that never ends). A Content-Security-Policy on
the two pages makes the browser refuse any other origin before a packet is sent; ReDoc hides the
refused image, and everything else the pages do stays on the hub.

The inline script and styles are allowed: Swagger UI's page starts it with an inline script and
ReDoc injects its styles at run time. ReDoc's search runs in a worker made from a ``blob:`` URL.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


class DocsPolicy:
    """ASGI middleware: the policy header on the answers of ``paths`` (the two HTML pages), and
    nothing else touched (the API's own answers are JSON, read by programs, not browsers)."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = ("/docs", "/redoc")) -> None:
        self.app, self.paths = app, frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"content-security-policy", POLICY.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)
