"""The HTTP wire shared by the REST and documents adapters: one guarded httpx client per system.

What it guarantees, whatever the configuration or the data say:

- requests go only to the hosts and ports of the system's allow-list (the endpoint's own, plus
  ``allow_hosts``), with the endpoint's scheme: a path parameter, a pagination ``next`` link or a
  redirect cannot send a citizen's data (or the system's credentials) anywhere else;
- redirects are not followed unless the system allows them, and then only inside the allow-list;
- the environment's proxy settings are ignored (``trust_env=False``);
- the wire is reachable only inside a gateway attempt (:func:`connectors.gateway.require_attempt`),
  so every request is timed, limited, retried, broken and journaled there;
- answers are read with a size cap: a 50 MB body is cut off after ``max_response_bytes``, never held.

Errors are classified once here: timeouts and network errors are transient, 5xx/408/429 are
transient, other statuses are permanent and carry the back-end's own error code when it gives one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from connectors.errors import CallTimeoutError, ConnectorError, PermanentError, TransientError
from connectors.exchange import CallContext, Received
from connectors.gateway import Gateway, require_attempt

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_BACKEND_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

AuthKind = Literal["bearer", "basic", "api_key"]


def is_under(url: str, base: str) -> bool:
    """True when ``url`` has the scheme, host, port and user of ``base`` and a path below it."""
    target, root = urlsplit(url), urlsplit(base)
    if target.scheme not in DEFAULT_PORTS or target.scheme != root.scheme:
        return False
    try:
        same_port = (target.port or DEFAULT_PORTS[target.scheme]) == (root.port or DEFAULT_PORTS[root.scheme])
    except ValueError:  # a port that is not a number
        return False
    if not same_port or target.hostname != root.hostname or target.username != root.username:
        return False
    root_path = root.path.rstrip("/")
    return target.path in (root.path, root_path) or target.path.startswith(root_path + "/")


@dataclass(frozen=True)
class HttpAuth:
    """Credentials of one system, already resolved from ``${env:...}`` by the configuration."""

    kind: AuthKind
    secret: str
    username: str | None = None
    header: str = "X-Api-Key"

    def headers(self) -> dict[str, str]:
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        if self.kind == "basic":
            raw = f"{self.username or ''}:{self.secret}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {self.header: self.secret}

    def __repr__(self) -> str:  # never print a secret
        return f"HttpAuth(kind={self.kind!r}, header={self.header!r})"


class AllowList:
    """The (scheme, host, port) triples a system may be reached at."""

    def __init__(self, endpoint: str, extra: Iterable[str] = ()) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"endpoint {endpoint!r} must be an absolute http(s) URL")
        self.scheme = parts.scheme
        self.allowed = {(parts.hostname.lower(), parts.port or DEFAULT_PORTS[parts.scheme])}
        for item in extra:
            try:
                extra_parts = urlsplit("//" + item)
                host, port = extra_parts.hostname, extra_parts.port
            except ValueError:
                host = port = None
            if not host or extra_parts.path or "@" in item:
                raise ValueError(f"allow_hosts entry {item!r} must be host or host:port")
            self.allowed.add((host.lower(), port or DEFAULT_PORTS[self.scheme]))

    def check(self, url: httpx.URL | str) -> None:
        if not isinstance(url, httpx.URL):
            url = httpx.URL(url)
        host = (url.host or "").lower()
        port = url.port or DEFAULT_PORTS.get(url.scheme, -1)
        if url.scheme != self.scheme or (host, port) not in self.allowed:
            raise PermanentError(
                "ENDPOINT_REFUSED",
                "refusing a URL outside the system's allowed hosts",
                details={"host": host, "port": port, "scheme": url.scheme},
            )


class GuardedTransport(httpx.HTTPTransport):
    """httpx transport that refuses a request outside a gateway attempt or the allow-list."""

    def __init__(self, system: str, allow: AllowList, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.system = system
        self.allow = allow

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        require_attempt(self.system)
        self.allow.check(request.url)
        return super().handle_request(request)


class GuardedClient(httpx.Client):
    """The httpx client of one system, with :meth:`open`: the adapters' one way to send.

    A system that follows no redirects (the default) has its requests handed straight to the
    guarded transport (which still checks the gateway attempt and the allow-list): what
    ``httpx.Client.send`` adds per request (merging the client's defaults through several
    intermediate objects, an auth flow, a redirect loop, a cookie jar, a log line) cost about a
    fifth of the bare library's own CPU per call against a fast back-end, for nothing the hub
    uses. It also means that no cookie a back-end sets is kept and sent with later calls, which
    may be another citizen's: the hub authenticates with the system's configured credentials,
    not with sessions. A system that allows redirects goes through ``send`` (which follows them
    inside the allow-list).
    """

    def open(self, method: str, url: str, headers: Mapping[str, str], **kwargs: Any) -> httpx.Response:
        """Send one request; the response comes back unread (read it, then close it)."""
        if self.follow_redirects:
            request = self.build_request(method, url, headers=headers, **kwargs)
            return self.send(request, stream=True)
        if self.is_closed:
            raise RuntimeError("the system's HTTP client is closed")
        raw = self.headers.raw
        raw.extend((name.encode(), value.encode()) for name, value in headers.items())
        request = httpx.Request(
            method, url, headers=raw, extensions={"timeout": self.timeout.as_dict()}, **kwargs
        )
        response = self._transport_for_url(request.url).handle_request(request)
        response.request = request
        return response


def guarded_client(
    system: str,
    endpoint: str,
    *,
    timeout_s: float,
    max_concurrency: int,
    auth: HttpAuth | None = None,
    allow_hosts: Iterable[str] = (),
    allow_redirects: bool = False,
    user_agent: str = "municipal-hub (httpx)",
) -> GuardedClient:
    """An httpx client confined to the system: allow-list, no proxy from the environment."""
    allow = AllowList(endpoint, allow_hosts)
    headers = {"User-Agent": user_agent, "Accept": "application/json"}
    if auth is not None:
        headers.update(auth.headers())
    limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    return GuardedClient(
        transport=GuardedTransport(system, allow, limits=limits, retries=0),
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=allow_redirects,
        max_redirects=5,
        trust_env=False,
        headers=headers,
    )


def gateway_client(
    system: str,
    endpoint: str,
    gateway: Gateway,
    *,
    auth: HttpAuth | None = None,
    allow_hosts: Iterable[str] = (),
    allow_redirects: bool = False,
    timeout_s: float | None = None,
) -> GuardedClient:
    """The guarded client of an HTTP adapter, sized by its system's gateway policy (timeout, one
    connection per concurrency slot); the gateway must be the same system's."""
    if gateway.system != system:
        raise ValueError(f"gateway is for system {gateway.system!r}, adapter for {system!r}")
    return guarded_client(
        system,
        endpoint,
        timeout_s=timeout_s if timeout_s is not None else gateway.policy.timeout_s,
        max_concurrency=gateway.policy.max_concurrency,
        auth=auth,
        allow_hosts=allow_hosts,
        allow_redirects=allow_redirects,
    )


def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The streamed body, refused as soon as it exceeds ``max_bytes`` (declared or received)."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PermanentError(
            "RESPONSE_TOO_LARGE",
            f"answer of {declared} bytes exceeds the limit of {max_bytes}",
            details={"limit": max_bytes},
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise PermanentError(
                "RESPONSE_TOO_LARGE",
                f"answer exceeds the limit of {max_bytes} bytes",
                details={"limit": max_bytes},
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes, response: httpx.Response) -> Any:
    """JSON or a permanent ``INVALID_RESPONSE``; empty bodies (204) read as ``{}``."""
    if not body.strip():
        return {}
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise PermanentError(
            "INVALID_RESPONSE",
            f"expected JSON, got {content_type or 'no content type'}",
            details={"status": response.status_code},
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PermanentError(
            "INVALID_RESPONSE", f"the answer is not valid JSON ({type(exc).__name__})"
        ) from None


UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def call_headers(context: CallContext, method: str) -> dict[str, str]:
    """What every call carries: the correlation id, and the idempotency key on methods that act
    (a retried POST must not act twice)."""
    headers = {}
    if context.correlation_id:
        headers["X-Correlation-Id"] = context.correlation_id
    if context.idempotency_key and method in UNSAFE_METHODS:
        headers["Idempotency-Key"] = context.idempotency_key
    return headers


def send_json(
    client: GuardedClient,
    method: str,
    url: str,
    context: CallContext,
    max_bytes: int,
    *,
    body: bytes | None = None,
    **kwargs: Any,
) -> Received[Any]:
    """One request and its JSON answer read within ``max_bytes``, with the bytes received (the
    journal digests those); any failure as a typed :class:`ConnectorError` (a redirect or a
    status >= 300 carries the back-end's error code). ``body``: JSON bytes to send."""
    try:
        # No params argument when there are none: httpx would re-parse the URL to merge them.
        if not kwargs.get("params"):
            kwargs.pop("params", None)
        headers = call_headers(context, method)
        if body is not None:  # JSON already encoded by the caller (who digested these bytes)
            headers["Content-Type"] = "application/json"
            kwargs["content"] = body
        response = client.open(method, url, headers, **kwargs)
        try:
            if response.status_code >= 300:  # redirects included: followed only by ``open``
                raise status_error(response, error_body(response))
            body = read_capped(response, max_bytes)
            return Received(parse_json(body, response), body)
        finally:
            response.close()
    except ConnectorError:
        raise
    except Exception as exc:
        raise classify(exc) from exc


def error_body(response: httpx.Response) -> bytes:
    """Up to 64 KiB of an error answer, to read the back-end's error code; more is not read."""
    if response.status_code < 400:
        return b""
    try:
        return read_capped(response, 65536)
    except ConnectorError:
        return b""


def status_error(response: httpx.Response, body: bytes) -> ConnectorError:
    """The typed error of a non-2xx answer; the back-end's code when its body names one."""
    status = response.status_code
    details: dict[str, Any] = {"status": status}
    backend = _backend_code(body)
    if backend:
        details["backend_code"] = backend
    if status >= 500:
        return TransientError("HTTP_5XX", f"HTTP {status}", details=details)
    if status in (408, 429):
        retry_after = response.headers.get("retry-after")
        if retry_after and retry_after.isdigit():
            details["retry_after_s"] = int(retry_after)
        return TransientError("HTTP_THROTTLED", f"HTTP {status}", details=details)
    if 300 <= status < 400:
        return PermanentError(
            "HTTP_REDIRECT_REFUSED", f"HTTP {status}: redirects are not followed", details=details
        )
    code = backend.upper().replace(".", "_").replace("-", "_") if backend else "HTTP_ERROR"
    return PermanentError(code, f"HTTP {status}", details=details)


def _backend_code(body: bytes) -> str | None:
    if not body or len(body) > 65536:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = data.get("error") if isinstance(data, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    if isinstance(code, str) and _BACKEND_CODE.match(code):
        return code
    return None


def classify(exc: Exception) -> ConnectorError:
    """What httpx raises, as transient or permanent; messages name no values."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return CallTimeoutError(f"no answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.TooManyRedirects):
        return PermanentError("HTTP_REDIRECT_REFUSED", "too many redirects")
    if isinstance(exc, httpx.TransportError):
        return TransientError("CONNECTION_FAILED", f"network error ({type(exc).__name__})")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return PermanentError("ENDPOINT_REFUSED", f"invalid URL ({type(exc).__name__})")
    return PermanentError("UNEXPECTED_ERROR", f"unclassified {type(exc).__name__} in the HTTP adapter")
