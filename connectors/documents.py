"""Documents protocol adapter (GED): streamed upload with metadata, streamed download, search.

A document never sits whole in memory: uploads stream from a seekable binary file (read once to
compute its SHA-256, then streamed as multipart), downloads stream into a destination file while
their digest is computed and checked against the one the GED declares. What goes through the
gateway, and so into the journal and any message, is a claim check: the document's reference,
size and digest, never its bytes.

Same wire as the REST adapter (:mod:`connectors.httpguard`): allow-list, no redirects, no
environment proxies, capped JSON answers, and no request outside a gateway attempt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import httpx

from connectors.errors import ConnectorError, PermanentError, TransientError
from connectors.exchange import CallContext, Received
from connectors.gateway import Gateway
from connectors.httpguard import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpAuth,
    call_headers,
    classify,
    error_body,
    gateway_client,
    is_under,
    send_json,
    status_error,
)
from connectors.rest import path_segment

CHUNK = 256 * 1024
DEFAULT_MAX_DOCUMENT_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """A claim check: what messages and the journal carry instead of a document."""

    id: str
    sha256: str
    size: int
    content_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(source: BinaryIO) -> tuple[str, int]:
    """Digest and size of a seekable file, read in chunks from the start; rewinds it."""
    source.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    source.seek(0)
    return digest.hexdigest(), size


class DocumentsAdapter:
    """Files and retrieves documents in one GED through its gateway."""

    def __init__(
        self,
        system: str,
        endpoint: str,
        gateway: Gateway,
        *,
        auth: HttpAuth | None = None,
        allow_hosts: Iterable[str] = (),
        allow_redirects: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        timeout_s: float | None = None,
    ) -> None:
        self.system = system
        self.endpoint = endpoint.rstrip("/")
        self.max_response_bytes = max_response_bytes
        self.max_document_bytes = max_document_bytes
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

    # ------------------------------------------------------------------ operations

    def upload(
        self,
        operation: str,
        source: BinaryIO,
        metadata: Mapping[str, str],
        context: CallContext,
        *,
        filename: str,
        content_type: str = "application/octet-stream",
        retry: bool = True,
    ) -> DocumentRef:
        """Stream ``source`` (a seekable binary file) with its metadata; return its claim check."""
        sha256, size = sha256_of(source)
        if size > self.max_document_bytes:
            raise PermanentError(
                "DOCUMENT_TOO_LARGE", f"{size} bytes exceeds the limit of {self.max_document_bytes}"
            )
        claim = {"sha256": sha256, "size": size, "metadata": dict(metadata)}

        def send(attempt: int) -> dict[str, Any]:
            files = {"file": (filename, source, content_type)}
            answer = self._json(
                "POST", self._url("documents"), context, data=dict(metadata), files=files
            ).value
            if answer.get("sha256") != sha256:
                # The GED stored other bytes than we sent: corrupted on the way; send again.
                raise TransientError("DIGEST_MISMATCH", "the GED reports another digest than sent")
            return DocumentRef(str(answer["id"]), sha256, size, content_type).as_dict()

        return DocumentRef(**self._gateway.call(operation, claim, context, send, retry=retry))

    def download(
        self,
        operation: str,
        document_id: str,
        destination: BinaryIO,
        context: CallContext,
        *,
        retry: bool = True,
    ) -> DocumentRef:
        """Stream a document into ``destination`` (rewound and truncated on each attempt), check
        its digest, return its claim check."""
        url = self._url(f"documents/{path_segment(document_id, 'document_id')}/content")

        def send(attempt: int) -> dict[str, Any]:
            destination.seek(0)
            destination.truncate()
            try:
                with closing(self._client.open("GET", url, call_headers(context, "GET"))) as response:
                    if response.status_code >= 300:
                        raise status_error(response, error_body(response))
                    declared = response.headers.get("x-content-sha256")
                    digest = hashlib.sha256()
                    size = 0
                    for chunk in response.iter_bytes(CHUNK):
                        size += len(chunk)
                        if size > self.max_document_bytes:
                            raise PermanentError(
                                "DOCUMENT_TOO_LARGE", f"document exceeds {self.max_document_bytes} bytes"
                            )
                        digest.update(chunk)
                        destination.write(chunk)
                    content_type = response.headers.get("content-type")
            except ConnectorError:
                raise
            except Exception as exc:
                raise classify(exc) from exc
            destination.flush()
            sha256 = digest.hexdigest()
            if declared and declared.lower() != sha256:
                raise TransientError("DIGEST_MISMATCH", "downloaded bytes differ from the declared digest")
            return DocumentRef(document_id, sha256, size, content_type).as_dict()

        return DocumentRef(
            **self._gateway.call(operation, {"document_id": document_id}, context, send, retry=retry)
        )

    def metadata(self, operation: str, document_id: str, context: CallContext, *, retry: bool = True) -> dict:
        url = self._url(f"documents/{path_segment(document_id, 'document_id')}")
        return self._gateway.call(
            operation,
            {"document_id": document_id},
            context,
            lambda attempt: self._json("GET", url, context),
            retry=retry,
        )

    def search(
        self,
        operation: str,
        criteria: Mapping[str, str],
        context: CallContext,
        *,
        max_pages: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Documents whose metadata equal ``criteria``, page after page (``next`` links)."""
        url = self._url("documents")
        params: dict[str, str] | None = {k: str(v) for k, v in criteria.items() if v is not None}
        for page in range(1, max_pages + 1):
            answer = self._gateway.call(
                operation,
                {"criteria": params, "page": page, "url": url},
                context,
                lambda attempt, url=url, params=params: self._json("GET", url, context, params=params),
            )
            yield from answer.get("items") or []
            link = answer.get("next")
            if not link:
                return
            url = str(httpx.URL(self._url("")).join(str(link)))
            if not is_under(url, self.endpoint):
                raise PermanentError("ENDPOINT_REFUSED", "a pagination link points outside the GED endpoint")
            params = None
        raise PermanentError("TOO_MANY_PAGES", f"{operation}: more than {max_pages} pages")

    def health(self, operation: str, context: CallContext, path: str = "health") -> dict[str, Any]:
        url = self._url(path)
        return self._gateway.call(
            operation, {}, context, lambda attempt: self._json("GET", url, context), retry=False
        )

    # ------------------------------------------------------------------ wire

    def _url(self, path: str) -> str:
        return f"{self.endpoint}/{path}"

    def _json(self, method: str, url: str, context: CallContext, **kwargs: Any) -> Received[dict[str, Any]]:
        answer = send_json(self._client, method, url, context, self.max_response_bytes, **kwargs)
        if not isinstance(answer.value, dict):
            raise PermanentError("INVALID_RESPONSE", "expected a JSON object")
        return answer
