"""The GED (document management system) as business operations: file, retrieve, find documents.

Written on :class:`~connectors.documents.DocumentsAdapter`: documents stream in and out, and
only their claim check (id, digest, size) goes through messages and the journal. Flows may call
the metadata operations (``SearchDocuments``, ``GetDocument``) by name; filing and retrieving
content take files, so code calls :meth:`GedConnector.file_document` and
:meth:`GedConnector.retrieve`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar, Literal

from connectors.documents import DocumentRef, DocumentsAdapter
from connectors.errors import PermanentError, declared_categories
from connectors.exchange import CallContext

DocumentType = Literal["justificatif", "acte", "courrier", "decision", "autre"]
FILING_FIELDS = ("title", "type", "filename")
# The operation a filing is journaled under (the hub looks for its rows when a worker was lost).
FILE_OPERATION = "FileDocument"


class GedConnector:
    """Operations of the GED (REST documents API under ``/api``)."""

    DATA_CATEGORIES: ClassVar[dict[str, tuple[str, ...]]] = {
        # A filed document may be anything a citizen attached: an identity card, a payslip.
        FILE_OPERATION: ("identite", "documents_justificatifs"),
        "RetrieveDocument": (),  # the document reference only
        "GetDocument": (),
        "SearchDocuments": ("identite",),  # criteria may name the citizen's reference
        "Health": (),
    }
    FLOW_OPERATIONS: ClassVar[frozenset[str]] = frozenset({"GetDocument", "SearchDocuments", "Health"})

    def __init__(self, adapter: DocumentsAdapter) -> None:
        self.adapter = adapter
        self.system = adapter.system
        self.operations = frozenset(self.DATA_CATEGORIES)

    def close(self) -> None:
        self.adapter.close()

    def data_categories(self, operation: str) -> tuple[str, ...]:
        return declared_categories(self.DATA_CATEGORIES, operation, "the GED")

    def call(
        self, operation: str, message: Mapping[str, Any], context: CallContext, *, retry: bool = True
    ) -> dict[str, Any]:
        """The operations a flow may call with a mapped message (metadata only, no content)."""
        self.data_categories(operation)
        if operation not in self.FLOW_OPERATIONS:
            raise PermanentError(
                "UNKNOWN_OPERATION",
                f"GED operation {operation!r} takes a file and is called from code; flows may call "
                f"{', '.join(sorted(self.FLOW_OPERATIONS))}",
            )
        if operation == "GetDocument":
            document_id = message.get("document_id")
            if not isinstance(document_id, str) or not document_id:
                raise PermanentError("INVALID_MESSAGE", "GetDocument needs a document_id")
            return self.adapter.metadata(operation, document_id, context, retry=retry)
        if operation == "Health":
            return self.adapter.health(operation, context)
        items = list(self.adapter.search(operation, message, context))
        return {"items": items, "count": len(items)}

    def file_document(
        self,
        context: CallContext,
        content: BinaryIO,
        *,
        title: str,
        doc_type: DocumentType,
        filename: str,
        content_type: str = "application/pdf",
        citizen_ref: str | None = None,
        request_ref: str | None = None,
    ) -> DocumentRef:
        """File a justificatif or an issued act; ``request_ref`` defaults to the hub's request."""
        metadata = {"title": title, "type": doc_type}
        if citizen_ref or context.citizen_ref:
            metadata["citizen_ref"] = citizen_ref or context.citizen_ref or ""
        if request_ref or context.request_id:
            metadata["request_ref"] = request_ref or context.request_id or ""
        return self.adapter.upload(
            FILE_OPERATION, content, metadata, context, filename=filename, content_type=content_type
        )

    def file(
        self, context: CallContext, content: BinaryIO, fields: Mapping[str, Any], *, content_type: str
    ) -> DocumentRef:
        """File what a flow step produced or received, with the metadata its mapping built
        (``title``, ``type``, optional ``filename``). The citizen is named by the context's
        pseudonymous reference and the request by its id, never by identity."""
        unknown = sorted(set(fields) - set(FILING_FIELDS))
        missing = [name for name in ("title", "type") if not fields.get(name)]
        if unknown or missing:
            raise PermanentError(
                "INVALID_MESSAGE",
                f"document metadata: unknown {unknown}, missing {missing}; "
                f"valid: {', '.join(FILING_FIELDS)} (title and type required)",
            )
        filename = str(fields.get("filename") or "document")
        return self.file_document(
            context,
            content,
            title=str(fields["title"]),
            doc_type=str(fields["type"]),  # type: ignore[arg-type]  # the GED checks its own types
            filename=filename,
            content_type=content_type,
        )

    def retrieve(self, context: CallContext, document_id: str, destination: BinaryIO) -> DocumentRef:
        """Stream a document into ``destination`` for an agent; its digest is checked."""
        return self.adapter.download("RetrieveDocument", document_id, destination, context)

    def document(self, context: CallContext, document_id: str) -> dict[str, Any]:
        return self.adapter.metadata("GetDocument", document_id, context)

    def search(self, context: CallContext, **criteria: str) -> list[dict[str, Any]]:
        return list(self.adapter.search("SearchDocuments", criteria, context))
