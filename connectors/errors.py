"""The two kinds of failure every connector reports, and the codes they carry.

The worker decides from ``transient`` alone: a transient failure is retried (in-process by the
gateway, or rescheduled by the hub) with the same idempotency key; a permanent one is dead-lettered
with its code, visible and replayable. ``code`` is stable and documented (below); ``message`` is for
humans and never carries personal data, since the journal keeps it.

Codes raised by the connectors package:

- transient: ``TIMEOUT``, ``CONNECTION_FAILED``, ``HTTP_5XX`` (``details["status"]``),
  ``HTTP_THROTTLED`` (408/429, ``details["retry_after_s"]`` when given), ``SOAP_SERVER_FAULT`` (or
  the back-end's own detail code), ``CIRCUIT_OPEN``, ``CONCURRENCY_LIMIT``, ``INCOMPLETE_UPLOAD``
  (SFTP: fewer bytes arrived than sent), ``DIGEST_MISMATCH`` (a document's bytes differ from its
  declared SHA-256);
- permanent: ``SOAP_CLIENT_FAULT`` (or the back-end's own detail code, e.g. ``RECORD_NOT_FOUND``),
  ``HTTP_ERROR`` (a 4xx answer without a readable code) or the back-end's own code upper-cased
  (``{"error": {"code": "family_not_found"}}`` gives ``FAMILY_NOT_FOUND``, ``details["status"]``),
  ``HTTP_REDIRECT_REFUSED``, ``RESPONSE_TOO_LARGE``, ``DOCUMENT_TOO_LARGE``, ``INVALID_RESPONSE``,
  ``INVALID_MESSAGE`` (the message does not match the WSDL or the operation), ``UNKNOWN_OPERATION``,
  ``TOO_MANY_PAGES``, ``ENDPOINT_REFUSED`` (a URL outside the configured endpoint or allow-list),
  ``GATEWAY_BYPASSED`` (a wire call outside a gateway attempt: a bug in a connector),
  ``HOST_KEY_CHANGED`` (SFTP server key other than the pinned one), ``AUTH_FAILED``,
  ``INVALID_REMOTE_NAME``, ``SFTP_NO_SUCH_FILE``, ``SFTP_PERMISSION_DENIED``, ``SFTP_FAILURE``,
  ``UNEXPECTED_ERROR`` (a bug: an exception no adapter classified).
"""

from __future__ import annotations

from typing import Any


class ConnectorError(Exception):
    """A failed outbound call, classified for the worker."""

    def __init__(
        self, code: str, message: str, *, transient: bool, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient
        self.details: dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        kind = "transient" if self.transient else "permanent"
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {kind})"


class TransientError(ConnectorError):
    """The back-end may answer later: timeouts, refused connections, 5xx, SOAP Server faults."""

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, transient=True, details=details)


class PermanentError(ConnectorError):
    """Sending the same message again will fail the same way: the message or the data is wrong."""

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, transient=False, details=details)


class CallTimeoutError(TransientError):
    """The back-end did not answer within the system's ``timeout_s`` (connect or read)."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__("TIMEOUT", message, details=details)


class CircuitOpenError(TransientError):
    """The gateway refused to call: the system failed repeatedly and is left alone for a while.

    Not retried in-process (the breaker would refuse again); the hub reschedules after
    ``details["retry_after_s"]``.
    """

    def __init__(self, system: str, retry_after_s: float) -> None:
        super().__init__(
            "CIRCUIT_OPEN",
            f"circuit open for system {system}; next probe in {retry_after_s:.1f} s",
            details={"system": system, "retry_after_s": round(retry_after_s, 3)},
        )
        self.retry_after_s = retry_after_s


def declared_categories(declared: dict[str, tuple[str, ...]], operation: str, system: str) -> tuple[str, ...]:
    """The personal-data categories a connector declares for ``operation``; an operation it does
    not declare is ``UNKNOWN_OPERATION`` (a flow must not send data nobody registered)."""
    try:
        return declared[operation]
    except KeyError:
        raise PermanentError(
            "UNKNOWN_OPERATION", f"{system} has no operation {operation!r}; valid: {', '.join(declared)}"
        ) from None
