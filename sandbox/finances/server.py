"""A real SFTP server on a loopback port, with a host key made at start for clients to pin.

One thread accepts connections and hands each to its own thread for the SSH handshake; paramiko's
Transport then runs the session. While the downtime (or error-rate) knob says so, new connections
are closed before the SSH banner, as a server behind a failing load balancer would.
"""

from __future__ import annotations

import io
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sandbox.finances.processor import FinancesState, InboxProcessor
from sandbox.finances.sftp import ConfinedSftp, PasswordGate
from sandbox.knobs import Knobs

DEFAULT_USERNAME = "finances"
DEFAULT_PASSWORD = "sandbox-finances"


def generate_host_key() -> paramiko.PKey:
    """A fresh Ed25519 key (paramiko cannot generate those itself)."""
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem))


def known_hosts_line(host: str, port: int, key: paramiko.PKey) -> str:
    """The OpenSSH known_hosts line for ``key`` at ``host:port``."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key.get_name()} {key.get_base64()}"


class FinancesServer:
    """The finance system: SFTP intake with ``inbox/``, ``outbox/``, ``archive/`` under a root."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        knobs: Knobs | None = None,
        root: Path | None = None,
        host_key: paramiko.PKey | None = None,
        poll_interval_s: float = 0.05,
        sock: socket.socket | None = None,
    ) -> None:
        self.host = host
        self.username = username
        self.password = password
        self.knobs = knobs if knobs is not None else Knobs()
        self._owns_root = root is None
        self.state = FinancesState(Path(root) if root else Path(tempfile.mkdtemp(prefix="sandbox-finances-")))
        self.host_key = host_key if host_key is not None else generate_host_key()
        self.processor = InboxProcessor(self.state, poll_interval_s)
        if sock is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self._stopping = threading.Event()
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="sandbox-finances-accept", daemon=True
        )
        self.refused_connections = 0

    @property
    def known_hosts_line(self) -> str:
        return known_hosts_line(self.host, self.port, self.host_key)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self.username}@{host}:{self.port}"

    def start(self) -> FinancesServer:
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._acceptor.start()
        self.processor.start()
        return self

    def stop(self, *, remove_files: bool | None = None) -> None:
        """Stop accepting, close every session, stop the intake; remove the root if we made it."""
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)
        self._sock.close()
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.close()
        for transport in transports:
            if transport.is_alive():
                transport.join(timeout=5)
        self.processor.stop()
        if remove_files if remove_files is not None else self._owns_root:
            shutil.rmtree(self.state.root, ignore_errors=True)

    def __enter__(self) -> FinancesServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.knobs.should_fail():
                self.refused_connections += 1
                conn.close()
                continue
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=self._serve, args=(conn,), name="sandbox-finances-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        with self._lock:
            if self._stopping.is_set():
                conn.close()
                return
            self._transports.add(transport)
        try:
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, ConfinedSftp, self.state, self.knobs)
            transport.start_server(server=PasswordGate(self.username, self.password))
            transport.join()
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()
            with self._lock:
                self._transports.discard(transport)
