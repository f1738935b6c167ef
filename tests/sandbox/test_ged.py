"""GED document store over a real socket: streamed upload and download, search, idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.ged import GedState, create_app
from sandbox.ged.multipart import MalformedMultipart, PartHeaders, read_parts
from sandbox.knobs import Knobs

API_KEY = "test-ged-key"
SIZE = 8 * 1024 * 1024 + 123


@pytest.fixture
def ged(serve_app) -> Iterator[tuple[httpx.Client, GedState, Knobs]]:
    knobs = Knobs()
    app, state = create_app(knobs, api_key=API_KEY)
    base = serve_app(app)
    with httpx.Client(base_url=base, headers={"X-Api-Key": API_KEY}, timeout=30) as client:
        yield client, state, knobs
    state.close()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("ged") / "acte.pdf"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(SIZE // (1 << 20) + 1):
            chunk = os.urandom(min(1 << 20, SIZE - out.tell()))
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


def chunks_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(256 * 1024):
            yield chunk


def test_multi_mb_multipart_upload_streams_to_disk_and_downloads_intact(ged, big_file) -> None:
    client, state, _ = ged
    path, sha256 = big_file
    with path.open("rb") as source:
        response = client.post(
            "/api/documents",
            data={"type": "acte_naissance", "citizen_ref": "CIT-1", "request_ref": "REQ-9"},
            files={"file": ("acte.pdf", source, "application/pdf")},
        )
    assert response.status_code == 201, response.text
    document = response.json()
    assert (document["sha256"], document["size"]) == (sha256, SIZE)
    assert (document["title"], document["content_type"]) == ("acte.pdf", "application/pdf")
    assert state.content_path(document["id"]).stat().st_size == SIZE
    assert not list((state.root / "incoming").iterdir())

    digest, received = hashlib.sha256(), 0
    with client.stream("GET", f"/api/documents/{document['id']}/content") as download:
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/pdf"
        assert download.headers["x-content-sha256"] == sha256
        for chunk in download.iter_bytes():
            digest.update(chunk)
            received += len(chunk)
    assert (digest.hexdigest(), received) == (sha256, SIZE)
    assert client.get(f"/api/documents/{document['id']}").json() == document


def test_raw_body_upload_takes_metadata_from_the_query(ged, big_file) -> None:
    client, _, _ = ged
    path, sha256 = big_file
    response = client.post(
        "/api/documents",
        params={"title": "Acte", "type": "acte_naissance", "citizen_ref": "CIT-2"},
        content=chunks_of(path),
        headers={"content-type": "application/pdf"},
    )
    assert response.status_code == 201, response.text
    assert (response.json()["sha256"], response.json()["size"]) == (sha256, SIZE)


def test_search_by_metadata(ged) -> None:
    client, _, _ = ged
    for citizen, kind in (("CIT-1", "acte"), ("CIT-1", "justificatif"), ("CIT-2", "acte")):
        client.post(
            "/api/documents",
            params={"title": "t", "type": kind, "citizen_ref": citizen},
            content=b"x",
        ).raise_for_status()
    found = client.get("/api/documents", params={"citizen_ref": "CIT-1", "type": "acte"}).json()
    assert found["count"] == 1
    assert found["items"][0]["citizen_ref"] == "CIT-1"
    assert client.get("/api/documents", params={"citizen_ref": "CIT-1"}).json()["count"] == 2
    bad = client.get("/api/documents", params={"owner": "x"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "unknown_search_key")


def test_idempotent_upload_stores_one_document(ged) -> None:
    client, state, _ = ged
    headers = {"Idempotency-Key": "upload-1"}
    params = {"title": "Acte", "type": "acte"}
    first = client.post("/api/documents", params=params, content=b"%PDF-1", headers=headers)
    again = client.post("/api/documents", params=params, content=b"%PDF-1", headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert state.documents_created == 1
    other = client.post("/api/documents", params=params, content=b"%PDF-2", headers=headers)
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert state.documents_created == 1
    assert not list((state.root / "incoming").iterdir())


def test_auth_and_bad_uploads(ged) -> None:
    client, state, _ = ged
    refused = client.post("/api/documents", content=b"x", headers={"X-Api-Key": "nope"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized")
    no_type = client.post("/api/documents", params={"title": "t"}, content=b"x")
    assert (no_type.status_code, no_type.json()["error"]["code"]) == (422, "missing_metadata")
    broken = client.post(
        "/api/documents",
        content=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "malformed_multipart")
    missing = client.get("/api/documents/unknown/content")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "document_not_found")
    assert state.documents_created == 0
    assert not list((state.root / "incoming").iterdir())


def test_downtime_knob_answers_503(ged) -> None:
    client, _, knobs = ged
    knobs.down_for(5)
    assert client.get("/api/documents").status_code == 503
    knobs.update({"down_until": 0})
    assert client.get("/api/documents").status_code == 200


def _encode(fields: list[tuple[str, bytes]], boundary: str) -> bytes:
    body = b""
    for name, value in fields:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        body += b'; filename="f.bin"\r\nContent-Type: application/octet-stream' if name == "file" else b""
        body += b"\r\n\r\n" + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


async def _parse(body: bytes, cuts: list[int], boundary: str) -> list[tuple[str, bytes]]:
    async def chunks() -> AsyncIterator[bytes]:
        start = 0
        for cut in [*sorted(set(cuts)), len(body)]:
            yield body[start:cut]
            start = cut

    parts: list[tuple[str, bytes]] = []
    async for event in read_parts(chunks(), boundary):
        if isinstance(event, PartHeaders):
            parts.append((event.name, b""))
        elif isinstance(event, bytes):
            parts[-1] = (parts[-1][0], parts[-1][1] + event)
    return parts


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    data=st.data(),
)
def test_multipart_reader_gives_the_same_parts_however_the_body_is_chunked(values, data) -> None:
    boundary = "----sandboxBoundary7MA4YWxk"
    fields = [(f"f{i}", v) for i, v in enumerate(values[:-1])] + [("file", values[-1])]
    body = _encode(fields, boundary)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    assert asyncio.run(_parse(body, cuts, boundary)) == fields


def test_multipart_reader_refuses_a_truncated_body() -> None:
    body = _encode([("file", b"abc")], "b")[:-8]
    with pytest.raises(MalformedMultipart):
        asyncio.run(_parse(body, [], "b"))
