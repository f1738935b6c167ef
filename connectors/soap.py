"""SOAP protocol adapter: zeep on the wire, the :class:`~connectors.gateway.Gateway` around it.

One :class:`SoapAdapter` per back-end system. The WSDL is a local file shipped in ``config/wsdl/``
and parsed once, when the adapter is built; the hub never fetches a WSDL or a schema at run time.
The adapter's transport talks to the configured endpoint and nothing else:

- documents (the WSDL and what it imports) load only from the WSDL's own directory; a remote or
  out-of-directory import is refused (``forbid_external`` in zeep's settings, then the transport);
- HTTP goes only to URLs under the configured endpoint, redirects are not followed, and the
  environment's proxy settings are ignored (``trust_env=False``): proxies, if any, are config;
- the service address in the WSDL is replaced by the configured endpoint.

``call(operation, message, context)`` returns a plain ``dict`` ready for JSONPath mapping: nested
dicts and lists, absent optional elements as ``None``, ``xs:date``/``xs:dateTime``/``xs:time`` as
ISO 8601 strings (``"1985-03-14"``, ``"2026-01-05T10:00:00+00:00"``), ``xs:decimal`` as a string
(no precision lost) and ``xs:base64Binary`` as base64 text, so the result digests and serialises as
JSON without help.

The HTTP header ``Idempotency-Key`` carries ``context.idempotency_key`` on every attempt. zeep
has no per-call HTTP headers and its ``settings()`` context manager is shared by all threads, so the
key travels in a :class:`~contextvars.ContextVar` the transport reads: each worker thread sees only
its own.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import url2pathname

import urllib3
import zeep
import zeep.exceptions
from lxml import etree
from zeep.helpers import serialize_object
from zeep.wsse.username import UsernameToken

from connectors.errors import CallTimeoutError, ConnectorError, PermanentError, TransientError
from connectors.exchange import CallContext
from connectors.gateway import Gateway, require_attempt
from connectors.httpguard import DEFAULT_MAX_RESPONSE_BYTES
from connectors.httpguard import is_under as is_under

_IDEMPOTENCY_KEY: ContextVar[str | None] = ContextVar("soap_idempotency_key", default=None)
_CLIENT_FAULTS = ("Client", "VersionMismatch", "MustUnderstand")


class _Answer:
    """The part of a ``requests.Response`` that zeep's ``process_reply`` reads."""

    __slots__ = ("content", "encoding", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers  # urllib3's HTTPHeaderDict: case-insensitive, as zeep expects
        self.content = content
        self.encoding = _charset(headers.get("Content-Type", ""))


class GuardedTransport(zeep.Transport):
    """A zeep transport confined to one endpoint and one directory, adding ``Idempotency-Key``.

    With ``system`` set, it sends only inside a gateway attempt for that system; answers are
    streamed and refused beyond ``max_response_bytes`` before zeep parses anything.

    HTTP goes through a urllib3 connection pool for the endpoint's host, not a ``requests``
    session: zeep only needs status, headers and body, and requests' per-call preparation (merging
    session settings, hooks, cookie jar) cost as much client CPU as zeep's own XML work.
    """

    def __init__(
        self,
        endpoint: str,
        document_root: Path,
        timeout_s: float,
        pool_size: int,
        *,
        system: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        # zeep.Transport.__init__ would build a requests session this transport never uses.
        self.cache = None
        self.load_timeout = timeout_s
        self.operation_timeout = timeout_s
        self.logger = logging.getLogger("connectors.soap")
        self._close_session = False  # read by zeep.Transport.__del__
        self.endpoint = endpoint
        self.document_root = document_root.resolve()
        self.system = system
        self.max_response_bytes = max_response_bytes
        # Proxies from the environment are ignored (urllib3 reads none); redirects and retries are
        # off per call; the pool keeps up to ``pool_size`` idle connections to the one host.
        self.pool = urllib3.connection_from_url(
            endpoint,
            maxsize=pool_size,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            headers={"User-Agent": "municipal-hub (zeep)"},
        )

    def _check(self, address: str) -> str:
        """The path and query to send, once ``address`` is known to be under the endpoint."""
        if self.system is not None:
            require_attempt(self.system)
        if not is_under(address, self.endpoint):
            raise PermanentError(
                "ENDPOINT_REFUSED",
                "refusing a URL outside the configured endpoint",
                details={"url": address, "endpoint": self.endpoint},
            )
        parts = urlsplit(address)
        return f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"

    def get(self, address: str, params: Any, headers: dict[str, str]) -> _Answer:
        target = self._check(address)
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params)
        return self._send("GET", target, None, headers)

    def post(self, address: str, message: bytes | str, headers: dict[str, str]) -> _Answer:
        target = self._check(address)
        body = message.encode() if isinstance(message, str) else message
        return self._send("POST", target, body, headers)

    def _send(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str] | None
    ) -> _Answer:
        response = self.pool.urlopen(
            method,
            target,
            body=body,
            headers={**self.pool.headers, **self._with_key(headers)},
            redirect=False,
            retries=False,
            preload_content=False,
        )
        return _Answer(response.status, response.headers, self._capped(response))

    def _capped(self, response: urllib3.BaseHTTPResponse) -> bytes:
        """Read the streamed body, up to the limit; a larger answer is refused, not held."""
        limit = self.max_response_bytes
        complete = False
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PermanentError(
                    "RESPONSE_TOO_LARGE",
                    f"answer of {declared} bytes exceeds {limit}",
                    details={"limit": limit},
                )
            chunks, size = [], 0
            for chunk in response.stream(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise PermanentError(
                        "RESPONSE_TOO_LARGE", f"answer exceeds {limit} bytes", details={"limit": limit}
                    )
                chunks.append(chunk)
            complete = True
            return b"".join(chunks)
        finally:
            if not complete:  # never hand a connection with unread bytes back to the pool
                response.close()
            response.release_conn()

    def close(self) -> None:
        self.pool.close()

    def load(self, url: str) -> bytes:
        """Read a WSDL or schema document, only from the WSDL's directory, never from the network."""
        parts = urlsplit(url)
        if parts.scheme not in ("", "file"):
            raise PermanentError(
                "ENDPOINT_REFUSED", "refusing to load a remote document", details={"url": url}
            )
        path = Path(url2pathname(parts.path) if parts.scheme == "file" else url).resolve()
        if not path.is_relative_to(self.document_root):
            raise PermanentError(
                "ENDPOINT_REFUSED",
                "refusing to load a document outside the WSDL directory",
                details={"url": url, "root": str(self.document_root)},
            )
        return path.read_bytes()

    @staticmethod
    def _with_key(headers: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(headers or {})
        key = _IDEMPOTENCY_KEY.get()
        if key:
            merged["Idempotency-Key"] = key
        return merged


@contextmanager
def _idempotency_key(key: str | None) -> Iterator[None]:
    token = _IDEMPOTENCY_KEY.set(key)
    try:
        yield
    finally:
        _IDEMPOTENCY_KEY.reset(token)


class SoapAdapter:
    """Calls the operations of one SOAP service through its system's gateway."""

    def __init__(
        self,
        system: str,
        wsdl_path: Path,
        endpoint: str,
        gateway: Gateway,
        timeout_s: float | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        binding: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if gateway.system != system:
            raise ValueError(f"gateway is for system {gateway.system!r}, adapter for {system!r}")
        if (username is None) != (password is None):
            raise ValueError(f"system {system}: give both username and password, or neither")
        self.system = system
        self.endpoint = endpoint
        self._gateway = gateway
        wsdl_path = Path(wsdl_path).resolve()
        self.transport = GuardedTransport(
            endpoint,
            wsdl_path.parent,
            timeout_s if timeout_s is not None else gateway.policy.timeout_s,
            gateway.policy.max_concurrency,
            system=system,
            max_response_bytes=max_response_bytes,
        )
        settings = zeep.Settings(
            strict=True,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
            xml_huge_tree=False,
        )
        wsse = UsernameToken(username, password) if username is not None else None
        try:
            client = zeep.Client(str(wsdl_path), transport=self.transport, settings=settings, wsse=wsse)
        except (zeep.exceptions.Error, ConnectorError, etree.LxmlError, OSError) as exc:
            raise ValueError(f"{wsdl_path}: cannot load the WSDL of system {system}: {exc}") from exc
        binding_name = binding or _single_soap_binding(client, wsdl_path)
        self._client = client
        self._service = client.create_service(binding_name, endpoint)
        self.operations = frozenset(client.wsdl.bindings[binding_name].all())

    def call(
        self, operation: str, message: Mapping[str, Any], context: CallContext, *, retry: bool = True
    ) -> dict[str, Any]:
        """Call ``operation`` with ``message`` (its wrapper's fields) and return the answer as a dict.

        Raises :class:`~connectors.errors.ConnectorError`; ``retry=False`` makes a single attempt.
        """
        if operation not in self.operations:
            raise PermanentError(
                "UNKNOWN_OPERATION",
                f"system {self.system} has no operation {operation!r}; "
                f"valid: {', '.join(sorted(self.operations))}",
            )
        proxy = getattr(self._service, operation)
        fields = dict(message)

        def send(attempt: int) -> dict[str, Any]:
            with _idempotency_key(context.idempotency_key):
                try:
                    result = proxy(**fields)
                except ConnectorError:
                    raise
                except Exception as exc:
                    raise _classify(exc) from exc
            return to_plain(result)

        return self._gateway.call(operation, fields, context, send, retry=retry)

    def close(self) -> None:
        self.transport.close()

    def check(self, context: CallContext) -> dict[str, Any]:
        """A harmless call for ``hub systems check``: fetch the service's WSDL (``?wsdl``) through
        the gateway; the local copy stays the one used."""

        def send(attempt: int) -> dict[str, Any]:
            try:
                response = self.transport.get(self.endpoint + "?wsdl", None, {})
            except ConnectorError:
                raise
            except Exception as exc:
                raise _classify(exc) from exc
            status = response.status_code
            if status >= 500:
                raise TransientError("HTTP_5XX", f"HTTP {status}", details={"status": status})
            if status != 200:
                raise PermanentError("HTTP_ERROR", f"HTTP {status}", details={"status": status})
            return {"status": "ok", "wsdl_bytes": len(response.content)}

        return self._gateway.call("CheckWsdl", {"endpoint": self.endpoint}, context, send, retry=False)


def wsdl_operations(wsdl_path: Path) -> frozenset[str]:
    """The operation names a local WSDL declares, read without zeep or any network access, so
    configuration checks can name an unknown operation at load time."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    root = etree.parse(str(wsdl_path), parser).getroot()
    names = root.xpath(
        "//*[local-name()='portType']/*[local-name()='operation']/@name",
    )
    return frozenset(str(name) for name in names)


def _single_soap_binding(client: zeep.Client, wsdl_path: Path) -> str:
    names = [str(name) for name in client.wsdl.bindings]
    if len(names) != 1:
        raise ValueError(f"{wsdl_path}: {len(names)} bindings {names}; name the one to use")
    return names[0]


def _fault_error(fault: zeep.exceptions.Fault) -> ConnectorError:
    code = fault.code or ""
    local = code.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
    detail_code = None
    if isinstance(fault.detail, etree._Element):
        found = fault.detail.xpath(".//*[local-name()='code']/text()")
        detail_code = str(found[0]).strip() if found else None
    details = {"fault_code": fault.code, "detail_code": detail_code}
    message = fault.message or f"SOAP {local or 'unknown'} fault"
    if local.split(".")[0] in _CLIENT_FAULTS:
        return PermanentError(detail_code or "SOAP_CLIENT_FAULT", message, details=details)
    return TransientError(detail_code or "SOAP_SERVER_FAULT", message, details=details)


def _classify(exc: Exception) -> ConnectorError:
    """Class what zeep and urllib3 raise as transient or permanent; messages name no values."""
    if isinstance(exc, zeep.exceptions.Fault):
        return _fault_error(exc)
    if isinstance(exc, zeep.exceptions.TransportError):
        status = exc.status_code
        if status >= 500:
            return TransientError("HTTP_5XX", f"HTTP {status}", details={"status": status})
        if status in (408, 429):
            return TransientError("HTTP_THROTTLED", f"HTTP {status}", details={"status": status})
        if status and status != 200:
            return PermanentError("HTTP_ERROR", f"HTTP {status}", details={"status": status})
        return PermanentError("INVALID_RESPONSE", "the answer is not a SOAP envelope")
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError subclass
        return TransientError("CONNECTION_FAILED", f"network error ({type(exc).__name__})")
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return CallTimeoutError(f"no answer in time ({type(exc).__name__})")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return TransientError("CONNECTION_FAILED", f"network error ({type(exc).__name__})")
    if isinstance(exc, zeep.exceptions.ValidationError | TypeError):
        return PermanentError("INVALID_MESSAGE", f"message does not match the WSDL: {exc}")
    if isinstance(exc, zeep.exceptions.Error):
        return PermanentError("INVALID_RESPONSE", f"cannot read the answer ({type(exc).__name__})")
    return PermanentError("UNEXPECTED_ERROR", f"unclassified {type(exc).__name__} in the SOAP adapter")


def to_plain(value: Any) -> Any:
    """zeep objects to JSON-ready data: dicts, lists, str/int/float/bool/None, ISO dates."""
    value = serialize_object(value, dict)
    if value is None:
        return {}
    plain = _plain(value)
    return plain if isinstance(plain, dict) else {"value": plain}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):  # xs:base64Binary / xs:hexBinary, decoded by zeep
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, etree._Element):
        return etree.tostring(value, encoding="unicode")
    return value


def _charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None
