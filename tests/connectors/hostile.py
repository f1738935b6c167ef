"""A hostile HTTP peer on a real loopback socket: any status, headers and (streamed) body.

For what the sandbox's honest services never do: redirect elsewhere, answer 50 MB, point a
pagination link at another host, send XML bombs. It counts requests and body bytes it managed to
send, so a test can tell that the hub hung up early instead of reading everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Callable[[], Iterable[bytes]] | bytes = b""


@dataclass
class HostileServer:
    answer: Callable[[str, str], Answer]  # (method, path) -> Answer
    hits: int = 0
    bytes_sent: int = 0
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    url: str = ""

    @contextmanager
    def running(self) -> Iterator[HostileServer]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _answer(self) -> None:
                outer.hits += 1
                outer.paths.append(self.path)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                length = int(self.headers.get("content-length") or 0)
                outer.bodies.append(self.rfile.read(length) if length else b"")
                answer = outer.answer(self.command, self.path)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                body = answer.body
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                chunks = [body] if isinstance(body, bytes) else body()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        outer.bytes_sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def megabytes(count: int, chunk: bytes = b"x" * (1024 * 1024)) -> Callable[[], Iterator[bytes]]:
    """A body of ``count`` MiB streamed in 1 MiB chunks (never built whole)."""

    def body() -> Iterator[bytes]:
        for _ in range(count):
            yield chunk

    return body


def always(answer: Answer) -> Callable[[str, str], Answer]:
    return lambda method, path: answer
