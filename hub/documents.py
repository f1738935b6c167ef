"""Documents a flow filed in a GED, retrieved for an agent.

Only a document one of the request's claim checks names can be retrieved (a ``file_document``
step saved it: system, document id, digest), so the hub is no open door to the whole GED. The
bytes come through the GED's instrumented client (the gateway journals the ``RetrieveDocument``
exchange with the agent as caller, the flow's purpose and the citizen's reference), stream into
a spooled file (memory up to 1 MiB, then disk) and must match the digest filed: a GED that now
holds other bytes answers ``document_changed``, not someone else's document. Every attempt, found
or not, also writes an inbound journal row naming the agent.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import insert, select

from connectors.exchange import CallContext, digest
from hub.db.models import JOURNAL, REQUESTS
from hub.flows import Flow
from hub.ids import new_id
from hub.journal import inbound_row
from hub.runtime import Hub

SPOOL_MEMORY_BYTES = 1024 * 1024
API_OPERATION = "GET /v1/requests/{id}/documents/{document_id}"
CHUNK = 64 * 1024


class DocumentError(Exception):
    """A retrieval the hub refuses or cannot serve, with its HTTP status and error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Retrieved:
    """The document's bytes (rewound) and the claim check they matched."""

    content: IO[bytes]
    claim: dict[str, Any]

    def chunks(self) -> Iterator[bytes]:
        try:
            while chunk := self.content.read(CHUNK):
                yield chunk
        finally:
            self.content.close()


def filed_documents(flow: Flow, context: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The claim checks a request holds: the results its flow's ``file_document`` steps saved, and
    nothing else (a back-end's saved answer, whatever its keys, names no document to serve)."""
    saved = context or {}
    names = [step.save_as for step in flow.steps if step.file_document is not None and step.save_as]
    return [saved[name] for name in names if isinstance(saved.get(name), dict)]


def retrieve(
    hub: Hub, request_id: str, document_id: str, agent: str, *, channel: str = API_OPERATION
) -> Retrieved:
    """Fetch a document the request filed, for ``agent``; raise :class:`DocumentError` or the
    connector's :class:`~connectors.errors.ConnectorError`. ``channel`` names the way in (the API
    route, the CLI) in the inbound journal row."""
    started = time.perf_counter()
    with hub.db.sessions() as session:
        row = session.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).first()
    flow = hub.flows.get(row.flow) if row is not None else None
    context = hub.request_context(
        request_id=request_id if row is not None else None,
        flow_name=row.flow if row is not None else None,
        correlation_id=new_id(),
        client=agent[:64],
        citizen_ref=row.citizen_ref if row is not None else None,
        golden_id=row.golden_id if row is not None else None,
    )
    claim = None
    if flow is not None:
        claim = next((c for c in filed_documents(flow, row.context) if c["document_id"] == document_id), None)
    if claim is None:
        _journal(hub, channel, context, document_id, "not_found", started)
        raise DocumentError(404, "not_found", f"request {request_id!r} filed no document {document_id!r}")
    # Closed by Retrieved.chunks once the answer is streamed, or below on failure.
    system = hub.config.systems.get(claim["system"])
    if system is None or system.kind != "documents":
        _journal(hub, channel, context, document_id, "system_unknown", started)
        raise DocumentError(
            409, "system_unknown", f"the document was filed in {claim['system']!r}, no documents system now"
        )
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    try:
        filed = hub.adapter(claim["system"]).retrieve(context, document_id, spool)
        if filed.sha256 != claim["sha256"]:
            raise DocumentError(
                502, "document_changed", "the GED holds other bytes than the ones filed for this request"
            )
    except Exception as exc:
        spool.close()
        _journal(hub, channel, context, document_id, getattr(exc, "code", "failed"), started)
        raise
    _journal(hub, channel, context, document_id, "ok", started)
    spool.seek(0)
    return Retrieved(spool, claim)


def _journal(
    hub: Hub, channel: str, context: CallContext, document_id: str, outcome: str, started: float
) -> None:
    row = inbound_row(
        key=hub.journal_key,
        context=context,
        operation=channel,
        outcome=outcome[:32],
        latency_ms=(time.perf_counter() - started) * 1000,
        payload_digest=digest(f"{context.request_id}/{document_id}", hub.digest_key),
    )
    with hub.db.connection(single_statement=True) as connection:
        connection.execute(insert(JOURNAL), row)
