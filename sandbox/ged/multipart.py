"""A streaming ``multipart/form-data`` reader, so uploads go to disk chunk by chunk.

Starlette's ``request.form()`` needs the python-multipart package; this reader needs nothing and
never holds more than one chunk plus a boundary's length in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message

MAX_HEADER_BYTES = 16 * 1024


class MalformedMultipart(ValueError):
    """The body does not follow RFC 7578."""


@dataclass(frozen=True)
class PartHeaders:
    name: str
    filename: str | None
    content_type: str | None


def boundary_of(content_type: str) -> str:
    message = Message()
    message["content-type"] = content_type
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 70:
        raise MalformedMultipart("multipart/form-data needs a boundary parameter (1-70 chars)")
    return boundary


def _parse_headers(block: bytes) -> PartHeaders:
    message = Message()
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MalformedMultipart(f"bad part header line {line!r}")
        message[name.strip()] = value.strip()
    disposition = message.get("content-disposition")
    if disposition is None or message.get_content_disposition() != "form-data":
        raise MalformedMultipart("each part needs Content-Disposition: form-data")
    name = message.get_param("name", header="content-disposition")
    if not isinstance(name, str):
        raise MalformedMultipart("each part needs a name")
    filename = message.get_filename()
    content_type = message.get("content-type")
    return PartHeaders(name, filename, content_type)


async def read_parts(
    chunks: AsyncIterator[bytes], boundary: str
) -> AsyncIterator[PartHeaders | bytes | None]:
    """Yield, for each part, its headers, then its data chunks, then ``None`` at its end."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    # A leading CRLF lets the first boundary be found like every other one.
    buffer = b"\r\n"
    state = "preamble"
    finished = False
    stream = chunks.__aiter__()
    while True:
        if state == "preamble":
            at = buffer.find(delimiter)
            if at < 0:
                buffer = buffer[-len(delimiter) :]
            else:
                buffer = buffer[at + len(delimiter) :]
                state = "after_delimiter"
                continue
        elif state == "after_delimiter":
            if len(buffer) >= 2:
                if buffer.startswith(b"--"):
                    return
                if not buffer.startswith(b"\r\n"):
                    raise MalformedMultipart("boundary not followed by CRLF")
                buffer = buffer[2:]
                state = "headers"
                continue
        elif state == "headers":
            if buffer.startswith(b"\r\n"):
                raise MalformedMultipart("each part needs Content-Disposition: form-data")
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                block, buffer = buffer[:end], buffer[end + 4 :]
                yield _parse_headers(block)
                state = "body"
                continue
            if len(buffer) > MAX_HEADER_BYTES:
                raise MalformedMultipart("part headers too long")
        elif state == "body":
            at = buffer.find(delimiter)
            if at >= 0:
                if at:
                    yield buffer[:at]
                yield None
                buffer = buffer[at + len(delimiter) :]
                state = "after_delimiter"
                continue
            keep = len(delimiter) - 1
            if len(buffer) > keep:
                yield buffer[:-keep]
                buffer = buffer[-keep:]
        if finished:
            raise MalformedMultipart("body ended before the closing boundary")
        try:
            chunk = await stream.__anext__()
        except StopAsyncIteration:
            finished = True
            continue
        buffer += chunk
