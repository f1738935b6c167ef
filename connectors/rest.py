"""REST protocol adapter: httpx on the wire, the :class:`~connectors.gateway.Gateway` around it.

One :class:`RestAdapter` per back-end system, JSON in and out. Its operations come from the
system's OpenAPI file (shipped locally in ``config/openapi/``, never fetched): each
``operationId`` becomes an operation a flow can call by name, with the personal-data categories
its message carries declared beside it (``x-data-categories``). ``call(operation, message, ...)``
fills the path parameters from the message's keys of the same name, the declared query
parameters likewise, and sends every other key as the JSON body (a message whose only key is
``body`` sends that value, e.g. a list), so a mapping file builds the whole request and no Python
is needed to connect a new REST system. A non-object JSON answer comes back as ``{"items": [...]}``
(a list) or ``{"value": ...}``.

Path parameters are percent-encoded whole (``/`` included) and ``.``/``..`` are refused, so a
value from a citizen's request cannot move the call to another resource; the host is fixed by
the allow-list (:mod:`connectors.httpguard`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from json import JSONEncoder
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from connectors.errors import PermanentError
from connectors.exchange import CallContext, Received
from connectors.gateway import Gateway
from connectors.httpguard import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpAuth,
    gateway_client,
    is_under,
    send_json,
)

METHODS = ("get", "post", "put", "patch", "delete")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")  # RFC 3986 unreserved: never percent-encoded
# httpx's own JSON encoding of a request body (json=...), done once per call by the adapter.
_JSON = JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class RestOperation:
    """One operation of an OpenAPI file: how to build its request from a flat message."""

    name: str
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    has_body: bool
    data_categories: tuple[str, ...]


def load_openapi(path: Path) -> dict[str, RestOperation]:
    """Operations by ``operationId``; raise ``ValueError`` naming the file and the problem."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the OpenAPI file: {exc}") from exc
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        raise ValueError(f"{path}: not an OpenAPI 3 document (no 'openapi: 3.x' key)")
    operations: dict[str, RestOperation] = {}
    for template, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = [_resolve(document, p, path) for p in item.get("parameters", [])]
        for method in METHODS:
            spec = item.get(method)
            if not isinstance(spec, dict):
                continue
            name = spec.get("operationId")
            if not name:
                raise ValueError(f"{path}: {method.upper()} {template} has no operationId")
            if name in operations:
                raise ValueError(f"{path}: operationId {name!r} is declared twice")
            params = shared + [_resolve(document, p, path) for p in spec.get("parameters", [])]
            in_path = tuple(_PARAM.findall(template))
            declared_path = {p["name"] for p in params if p.get("in") == "path"}
            if set(in_path) != declared_path:
                raise ValueError(
                    f"{path}: {name}: path parameters {sorted(in_path)} of {template} "
                    f"differ from the declared ones {sorted(declared_path)}"
                )
            categories = spec.get("x-data-categories")
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise ValueError(
                    f"{path}: {name}: declare x-data-categories (a list, [] when the call carries "
                    "no personal data) so the journal and the register of processing know what it sends"
                )
            operations[name] = RestOperation(
                name=name,
                method=method.upper(),
                path=template,
                path_params=in_path,
                query_params=tuple(p["name"] for p in params if p.get("in") == "query"),
                has_body="requestBody" in spec,
                data_categories=tuple(categories),
            )
    if not operations:
        raise ValueError(f"{path}: the OpenAPI file declares no operation")
    return operations


def _resolve(document: dict[str, Any], node: Any, path: Path) -> dict[str, Any]:
    """A parameter object, following one local ``$ref``; remote references are refused."""
    if isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise ValueError(f"{path}: only local references (#/...) are allowed, not {ref!r}")
        target: Any = document
        for part in ref[2:].split("/"):
            target = (
                target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
            )
        if not isinstance(target, dict):
            raise ValueError(f"{path}: {ref} points to nothing")
        return target
    if not isinstance(node, dict) or "name" not in node:
        raise ValueError(f"{path}: a parameter needs a name")
    return node


class RestAdapter:
    """Calls one REST system through its gateway; share one instance per system."""

    def __init__(
        self,
        system: str,
        endpoint: str,
        gateway: Gateway,
        *,
        operations: Mapping[str, RestOperation] | None = None,
        auth: HttpAuth | None = None,
        allow_hosts: Iterable[str] = (),
        allow_redirects: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        timeout_s: float | None = None,
    ) -> None:
        self.system = system
        self.endpoint = endpoint.rstrip("/")
        self.operations: dict[str, RestOperation] = dict(operations or {})
        self.max_response_bytes = max_response_bytes
        self._gateway = gateway
        self._client = gateway_client(
            system,
            self.endpoint,
            gateway,
            auth=auth,
            allow_hosts=allow_hosts,
            allow_redirects=allow_redirects,
            timeout_s=timeout_s,
        )

    def close(self) -> None:
        self._client.close()

    def data_categories(self, operation: str) -> tuple[str, ...]:
        return self._operation(operation).data_categories

    def call(
        self, operation: str, message: Mapping[str, Any], context: CallContext, *, retry: bool = True
    ) -> dict[str, Any]:
        """Call an OpenAPI operation with a flat message (see the module docstring)."""
        spec = self._operation(operation)
        fields = dict(message)
        values = {}
        for name in spec.path_params:
            value = fields.pop(name, None)
            if value is None or value == "":
                raise PermanentError(
                    "INVALID_MESSAGE",
                    f"{operation}: path parameter {name!r} is missing",
                    details={"field": name},
                )
            values[name] = path_segment(value, name)
        path = _PARAM.sub(lambda m: values[m.group(1)], spec.path)
        params = {name: fields.pop(name) for name in spec.query_params if fields.get(name) is not None}
        for name in spec.query_params:
            fields.pop(name, None)
        body: Any = None
        if spec.has_body:
            body = fields.pop("body") if set(fields) == {"body"} else fields
        elif fields:
            raise PermanentError(
                "INVALID_MESSAGE",
                f"{operation}: unexpected fields {sorted(fields)} (the operation takes no body)",
            )
        return self.request(operation, spec.method, path, context, params=params, json=body, retry=retry)

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        context: CallContext,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        """One JSON request (``path`` relative to the endpoint) through the gateway.

        The query string and the body are encoded once, here: those bytes go on the wire and
        their digest (with the method and path) into the journal."""
        target = path.lstrip("/")
        if params:
            target += "?" + str(httpx.QueryParams(params))
        body = None
        if json is not None:
            try:
                body = _JSON.encode(json).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise PermanentError(
                    "INVALID_MESSAGE", f"{operation}: the body is not JSON ({type(exc).__name__})"
                ) from None
        url = self._url(target)
        sent = f"{method} /{target}\n".encode() + (body or b"")
        return self._gateway.call(
            operation,
            sent,
            context,
            lambda attempt: self._send(method, url, context, body=body),
            retry=retry,
        )

    def paginate(
        self,
        operation: str,
        context: CallContext,
        message: Mapping[str, Any] | None = None,
        *,
        items_key: str = "items",
        max_pages: int = 100,
    ) -> Iterator[Any]:
        """Yield the items of every page of a GET operation, following the ``next`` link the
        answer gives (a ``next`` field in the body or an RFC 8288 ``Link`` header). Each page is
        one gateway call; a ``next`` pointing outside the system's endpoint is refused."""
        page = self.call(operation, message or {}, context)
        for number in range(1, max_pages + 1):
            yield from page.get(items_key) or []
            link = page.get("next")
            if not link:
                return
            url = str(httpx.URL(self._url("")).join(str(link)))
            if not is_under(url, self.endpoint):
                raise PermanentError(
                    "ENDPOINT_REFUSED",
                    "a pagination link points outside the system's endpoint",
                    details={"page": number},
                )
            page = self._gateway.call(
                operation,
                {"method": "GET", "page": number + 1, "url": url},
                context,
                lambda attempt, url=url: self._send("GET", url, context),
            )
        raise PermanentError("TOO_MANY_PAGES", f"{operation}: more than {max_pages} pages")

    # ------------------------------------------------------------------ wire

    def _operation(self, operation: str) -> RestOperation:
        try:
            return self.operations[operation]
        except KeyError:
            raise PermanentError(
                "UNKNOWN_OPERATION",
                f"system {self.system} has no operation {operation!r}; "
                f"valid: {', '.join(sorted(self.operations)) or 'none'}",
            ) from None

    def _url(self, path: str) -> str:
        return self.endpoint + "/" + path.lstrip("/") if path else self.endpoint + "/"

    def _send(
        self,
        method: str,
        url: str,
        context: CallContext,
        *,
        body: bytes | None = None,
    ) -> Received[dict[str, Any]]:
        answer = send_json(self._client, method, url, context, self.max_response_bytes, body=body)
        data = answer.value
        if isinstance(data, dict):
            return answer
        return Received({"items": data} if isinstance(data, list) else {"value": data}, answer.raw)


def path_segment(value: Any, name: str) -> str:
    """A path parameter encoded as one segment; ``.``, ``..`` and control characters refused."""
    text = str(value)
    if _UNRESERVED.fullmatch(text) and text not in (".", ".."):
        return text  # what quote() would return, without its cost
    if text in (".", "..") or _CONTROL.search(text):
        raise PermanentError(
            "INVALID_MESSAGE", f"path parameter {name!r} is not a valid segment", details={"field": name}
        )
    return quote(text, safe="")
