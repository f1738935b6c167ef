"""GED documents against the sandbox on a real socket: streamed in and out, claim check only."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.documents import DocumentsAdapter
from connectors.errors import PermanentError, TransientError
from connectors.exchange import CallContext
from connectors.gateway import Gateway, SystemPolicy
from connectors.ged import GedConnector
from connectors.httpguard import HttpAuth
from sandbox.ged import GedState, create_app
from sandbox.knobs import Knobs
from tests.connectors.live_server import serve
from tests.connectors.recording import ListRecorder

API_KEY = "test-ged-key"


def ctx(key: str | None = None) -> CallContext:
    return CallContext(
        correlation_id="corr-ged", request_id="req-42", citizen_ref="cit-7", idempotency_key=key
    )


@dataclass
class Ged:
    endpoint: str
    state: GedState
    knobs: Knobs


@pytest.fixture
def ged() -> Iterator[Ged]:
    knobs = Knobs()
    app, state = create_app(knobs, api_key=API_KEY)
    with serve(app) as base_url:
        yield Ged(base_url + "/api", state, knobs)
    state.close()


def wire(endpoint: str, key: str = API_KEY, **policy: float) -> tuple[GedConnector, ListRecorder]:
    recorder = ListRecorder()
    gateway = Gateway("ged", SystemPolicy(**{"timeout_s": 10.0, "max_attempts": 1, **policy}), recorder)
    adapter = DocumentsAdapter("ged", endpoint, gateway, auth=HttpAuth("api_key", key))
    return GedConnector(adapter), recorder


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "justificatif.pdf"
    with path.open("wb") as out:
        for _ in range(24):
            out.write(os.urandom(1024 * 1024))
    return path


def test_file_then_retrieve_a_24_mb_document_streamed_both_ways(
    ged: Ged, big_file: Path, tmp_path: Path
) -> None:
    connector, recorder = wire(ged.endpoint)
    expected = hashlib.sha256(big_file.read_bytes()).hexdigest()
    tracemalloc.start()
    try:
        with big_file.open("rb") as content:
            ref = connector.file_document(
                ctx("req-42:file"),
                content,
                title="Justificatif de domicile",
                doc_type="justificatif",
                filename="justificatif.pdf",
            )
        target = tmp_path / "copy.pdf"
        with target.open("wb") as out:
            back = connector.retrieve(ctx(), ref.id, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.sha256 == back.sha256 == expected and ref.size == back.size == 24 * 1024 * 1024
    assert hashlib.sha256(target.read_bytes()).hexdigest() == expected
    assert peak < 8 * 1024 * 1024  # streamed: never the 24 MB document in memory
    metadata = connector.document(ctx(), ref.id)
    assert metadata["citizen_ref"] == "cit-7" and metadata["request_ref"] == "req-42"
    # Claim check: the journal holds the document's digest, never its bytes or metadata values.
    upload = recorder.exchanges[0]
    assert upload.operation == "FileDocument" and upload.outcome == "ok"
    assert "Justificatif" not in repr(recorder.exchanges)


def test_same_idempotency_key_files_one_document(ged: Ged) -> None:
    connector, _ = wire(ged.endpoint)
    for _ in range(2):
        connector.file_document(
            ctx("req-42:file"),
            io.BytesIO(b"%PDF-1.7 acte"),
            title="Acte",
            doc_type="acte",
            filename="acte.pdf",
        )
    assert ged.state.documents_created == 1


def test_search_pages_through_results_for_flows(ged: Ged) -> None:
    connector, recorder = wire(ged.endpoint)
    for number in range(5):
        connector.file_document(
            ctx(f"k{number}"),
            io.BytesIO(f"doc {number}".encode()),
            title=f"Pièce {number}",
            doc_type="justificatif",
            filename=f"p{number}.pdf",
        )
    recorder.exchanges.clear()
    answer = connector.call("SearchDocuments", {"citizen_ref": "cit-7", "limit": "2"}, ctx())
    assert answer["count"] == 5 and len({d["id"] for d in answer["items"]}) == 5
    assert [e.operation for e in recorder.exchanges] == ["SearchDocuments"] * 3


def test_flows_cannot_push_content_through_messages(ged: Ged) -> None:
    connector, _ = wire(ged.endpoint)
    with pytest.raises(PermanentError) as raised:
        connector.call("FileDocument", {"content": "base64..."}, ctx())
    assert raised.value.code == "UNKNOWN_OPERATION"


def test_unknown_document_and_wrong_key_are_permanent(ged: Ged) -> None:
    connector, _ = wire(ged.endpoint)
    with pytest.raises(PermanentError) as raised:
        connector.call("GetDocument", {"document_id": "nope"}, ctx())
    assert raised.value.code == "DOCUMENT_NOT_FOUND"
    wrong, _ = wire(ged.endpoint, key="wrong")
    with pytest.raises(PermanentError) as raised:
        wrong.search(ctx(), type="acte")
    assert raised.value.code == "UNAUTHORIZED"


def test_download_retried_after_an_outage_rewrites_the_destination(ged: Ged, tmp_path: Path) -> None:
    connector, recorder = wire(
        ged.endpoint, max_attempts=20, backoff_initial_s=0.02, backoff_max_s=0.1, breaker_failures=100
    )
    ref = connector.file_document(
        ctx("k"), io.BytesIO(b"contenu"), title="Acte", doc_type="acte", filename="a.pdf"
    )
    ged.knobs.down_for(0.3)
    out = io.BytesIO(b"stale bytes from an earlier attempt")
    back = connector.retrieve(ctx(), ref.id, out)
    assert out.getvalue() == b"contenu" and back.sha256 == ref.sha256
    assert "transient_error" in recorder.outcomes()


def test_the_wire_is_unreachable_outside_a_gateway_attempt(ged: Ged) -> None:
    connector, _ = wire(ged.endpoint)
    with pytest.raises(PermanentError) as raised:
        connector.adapter._client.get(ged.endpoint + "/documents")
    assert raised.value.code == "GATEWAY_BYPASSED"


def test_down_is_transient(ged: Ged) -> None:
    connector, _ = wire(ged.endpoint)
    ged.knobs.down_for(5)
    with pytest.raises(TransientError) as raised:
        connector.search(ctx(), type="acte")
    assert raised.value.code == "HTTP_5XX"


def test_an_oversized_or_tampered_download_is_refused(tmp_path: Path) -> None:
    from tests.connectors.hostile import Answer, HostileServer, always, megabytes

    huge = Answer(200, {"Content-Type": "application/pdf"}, megabytes(50))
    with HostileServer(always(huge)).running() as peer:
        gateway = Gateway("ged", SystemPolicy(max_attempts=1), ListRecorder())
        adapter = DocumentsAdapter("ged", peer.url + "/api", gateway, max_document_bytes=1024 * 1024)
        with pytest.raises(PermanentError) as raised:
            adapter.download("RetrieveDocument", "D-1", io.BytesIO(), ctx())
        assert raised.value.code == "DOCUMENT_TOO_LARGE" and peer.bytes_sent < 50 * 1024 * 1024
    lying = Answer(200, {"X-Content-SHA256": "0" * 64}, b"%PDF tampered")
    with HostileServer(always(lying)).running() as peer:
        gateway = Gateway("ged", SystemPolicy(max_attempts=1), ListRecorder())
        adapter = DocumentsAdapter("ged", peer.url + "/api", gateway)
        with pytest.raises(TransientError) as raised:
            adapter.download("RetrieveDocument", "D-1", io.BytesIO(), ctx())
        assert raised.value.code == "DIGEST_MISMATCH"
