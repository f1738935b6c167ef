"""SFTP protocol adapter: paramiko on the wire, the :class:`~connectors.gateway.Gateway` around it.

One :class:`SftpAdapter` per back-end system (``sftp://user@host:port[/base]``):

- the server's host key is pinned by the system's ``known_hosts`` line; the client offers only
  that key's algorithm, and a server presenting another key is refused (``HOST_KEY_CHANGED``),
  as is an endpoint the line does not name (``HOST_KEY_UNKNOWN``). There is no "trust on first
  use": paramiko's ``AutoAddPolicy`` is never used, nor ``~/.ssh/known_hosts``, agents or keys
  lying around;
- a file is written under a temporary dot-name (``.<name>.part``, which intakes ignore) and renamed
  when complete, so no partial file is ever visible under its real name. The temporary name is the
  same on every attempt: a worker killed mid-upload leaves a ``.part`` the next attempt overwrites;
- remote names are validated (letters, digits, ``._-``; no ``..``, no ``/``, no control characters)
  before any use, and never used to build a local path;
- the wire is reachable only inside a gateway attempt; each operation is one attempt, journaled.

Sessions (an SSH transport and its SFTP channel) are kept for reuse, at most ``max_concurrency``.
"""

from __future__ import annotations

import errno
import posixpath
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import paramiko

from connectors.errors import CallTimeoutError, ConnectorError, PermanentError, TransientError
from connectors.exchange import CallContext
from connectors.gateway import Gateway, require_attempt

CHUNK = 32 * 1024  # paramiko's SFTP write size; pipelined, so round trips overlap
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_RSA_ALGORITHMS = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]


def validate_remote_name(name: str) -> str:
    """``name`` if it is a plain file name safe on any side; else ``INVALID_REMOTE_NAME``."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise PermanentError(
            "INVALID_REMOTE_NAME",
            "remote names are 1-200 letters, digits, '.', '_' or '-', not starting with '.' or '-' "
            "and without '..'",
            details={"name": repr(name)[:80]},
        )
    return name


def validate_remote_dir(directory: str) -> str:
    """A relative directory of plain segments (``inbox``, ``out/acks``); '' for the base."""
    if directory in ("", "."):
        return ""
    for segment in directory.split("/"):
        validate_remote_name(segment)
    return directory


@dataclass(frozen=True, slots=True)
class RemoteFile:
    name: str
    size: int
    mtime: int


@dataclass(frozen=True, slots=True)
class FileReceipt:
    """What one upload delivered: the name the back-end sees, its size and SHA-256."""

    name: str
    directory: str
    size: int
    sha256: str
    already_present: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SftpEndpoint:
    host: str
    port: int
    username: str
    base: str

    @classmethod
    def parse(cls, endpoint: str) -> SftpEndpoint:
        parts = urlsplit(endpoint)
        if parts.scheme != "sftp" or not parts.hostname or not parts.username:
            raise ValueError(f"endpoint {endpoint!r} must read sftp://user@host[:port][/base]")
        base = unquote(parts.path).strip("/")
        if base:
            validate_remote_dir(base)
        return cls(parts.hostname, parts.port or 22, unquote(parts.username), base)

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def pinned_key(known_hosts_line: str, endpoint: SftpEndpoint) -> paramiko.PKey:
    """The host key the line pins for the endpoint; ``ValueError`` if the line names another host."""
    entry = paramiko.hostkeys.HostKeyEntry.from_line(known_hosts_line.strip())
    if entry is None or entry.key is None:
        raise ValueError("known_hosts: not an OpenSSH known_hosts line (host keytype base64key)")
    keys = paramiko.HostKeys()
    keys._entries.append(entry)
    found = keys.lookup(endpoint.known_hosts_name)
    if not found:
        raise ValueError(
            f"known_hosts: the line does not name {endpoint.known_hosts_name} "
            "(the host key of this endpoint is unknown)"
        )
    return next(iter(found.values()))


class _Session:
    def __init__(self, transport: paramiko.Transport, sftp: paramiko.SFTPClient) -> None:
        self.transport = transport
        self.sftp = sftp

    @property
    def alive(self) -> bool:
        return self.transport.is_active()

    def close(self) -> None:
        try:
            self.sftp.close()
        finally:
            self.transport.close()


class SftpAdapter:
    """File exchanges with one SFTP system through its gateway."""

    def __init__(
        self,
        system: str,
        endpoint: str,
        gateway: Gateway,
        *,
        known_hosts: str,
        password: str | None = None,
        private_key: paramiko.PKey | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if gateway.system != system:
            raise ValueError(f"gateway is for system {gateway.system!r}, adapter for {system!r}")
        if (password is None) == (private_key is None):
            raise ValueError(f"system {system}: give a password or a private key (exactly one)")
        self.system = system
        self.endpoint = SftpEndpoint.parse(endpoint)
        self.host_key = pinned_key(known_hosts, self.endpoint)
        self.timeout_s = timeout_s if timeout_s is not None else gateway.policy.timeout_s
        self._password = password
        self._private_key = private_key
        self._gateway = gateway
        self._idle: list[_Session] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()

    # ------------------------------------------------------------------ operations

    def upload(
        self,
        operation: str,
        directory: str,
        name: str,
        source: BinaryIO,
        context: CallContext,
        *,
        sha256: str,
        size: int,
        retry: bool = True,
    ) -> FileReceipt:
        """Write ``source`` (seekable, ``size`` bytes, digest ``sha256``) as ``directory/name``,
        via a temporary name then a rename."""
        directory = validate_remote_dir(directory)
        name = validate_remote_name(name)
        final = self._path(directory, name)
        temporary = self._path(directory, f".{name}.part")

        def send(attempt: int) -> dict[str, Any]:
            source.seek(0)
            with self._session() as sftp:
                with sftp.open(temporary, "wb") as remote:
                    remote.set_pipelined(True)
                    while chunk := source.read(CHUNK):
                        remote.write(chunk)
                written = sftp.stat(temporary).st_size
                if written != size:
                    raise TransientError(
                        "INCOMPLETE_UPLOAD", f"{written} of {size} bytes arrived", details={"name": name}
                    )
                present = False
                try:
                    sftp.rename(temporary, final)
                except OSError:
                    # An earlier attempt renamed it and died before knowing: the same file is there.
                    if _size_or_none(sftp, final) != size:
                        raise
                    sftp.remove(temporary)
                    present = True
            return FileReceipt(name, directory, size, sha256, present).as_dict()

        claim = {"directory": directory, "name": name, "size": size, "sha256": sha256}
        return FileReceipt(**self._gateway.call(operation, claim, context, send, retry=retry))

    def listdir(
        self, operation: str, directory: str, context: CallContext, *, retry: bool = True
    ) -> tuple[list[RemoteFile], int]:
        """Regular files of ``directory`` whose names are valid, and how many others were skipped
        (hostile or malformed names are never returned, only counted)."""
        directory = validate_remote_dir(directory)

        def send(attempt: int) -> dict[str, Any]:
            with self._session() as sftp:
                entries = sftp.listdir_attr(self._path(directory, ""))
            files, skipped = [], 0
            for entry in entries:
                if entry.st_mode is not None and not _is_regular(entry.st_mode):
                    continue
                try:
                    validate_remote_name(entry.filename)
                except PermanentError:
                    skipped += 1
                    continue
                files.append(asdict(RemoteFile(entry.filename, entry.st_size or 0, entry.st_mtime or 0)))
            return {"files": files, "skipped": skipped}

        answer = self._gateway.call(operation, {"directory": directory}, context, send, retry=retry)
        return [RemoteFile(**f) for f in answer["files"]], answer["skipped"]

    def read(
        self,
        operation: str,
        directory: str,
        name: str,
        context: CallContext,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        retry: bool = True,
    ) -> bytes:
        """A whole (small) remote file, such as an acknowledgement; refused beyond ``max_bytes``."""
        path = self._path(validate_remote_dir(directory), validate_remote_name(name))

        def send(attempt: int) -> bytes:
            with self._session() as sftp, sftp.open(path, "rb") as remote:
                if (remote.stat().st_size or 0) > max_bytes:
                    raise PermanentError("RESPONSE_TOO_LARGE", f"{name} exceeds {max_bytes} bytes")
                remote.prefetch()
                data = remote.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise PermanentError("RESPONSE_TOO_LARGE", f"{name} exceeds {max_bytes} bytes")
            return data

        return self._gateway.call(
            operation, {"directory": directory, "name": name}, context, send, retry=retry
        )

    # ------------------------------------------------------------------ wire

    def _path(self, directory: str, name: str) -> str:
        parts = [p for p in (self.endpoint.base, directory, name) if p]
        return posixpath.join(*parts) if parts else "."

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        """A live SFTP session, reused when one is idle; closed instead of kept after an error."""
        require_attempt(self.system)
        session = None
        with self._lock:
            while self._idle and session is None:
                candidate = self._idle.pop()
                if candidate.alive:
                    session = candidate
                else:
                    candidate.close()
        try:
            if session is None:
                session = self._connect()
            yield session.sftp
        except ConnectorError:
            if session is not None and not session.alive:
                session.close()
            elif session is not None:
                self._release(session)
            raise
        except Exception as exc:
            if session is not None:
                session.close()
            raise classify(exc) from exc
        except BaseException:
            if session is not None:
                session.close()
            raise
        else:
            self._release(session)

    def _release(self, session: _Session) -> None:
        with self._lock:
            if len(self._idle) < self._gateway.policy.max_concurrency:
                self._idle.append(session)
                return
        session.close()

    def _connect(self) -> _Session:
        sock = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=self.timeout_s)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = self.timeout_s
            transport.handshake_timeout = self.timeout_s
            transport.auth_timeout = self.timeout_s
            key_type = self.host_key.get_name()
            transport.get_security_options().key_types = (
                _RSA_ALGORITHMS if key_type == "ssh-rsa" else [key_type]
            )
            try:
                transport.start_client(timeout=self.timeout_s)
            except paramiko.SSHException as exc:
                if "host key" in str(exc).lower():
                    raise _host_key_changed(self.endpoint) from None
                raise
            offered = transport.get_remote_server_key()
            if offered.get_name() != key_type or offered.asbytes() != self.host_key.asbytes():
                raise _host_key_changed(self.endpoint)
            if self._private_key is not None:
                transport.auth_publickey(self.endpoint.username, self._private_key)
            else:
                transport.auth_password(self.endpoint.username, self._password or "")
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise TransientError("CONNECTION_FAILED", "the server opened no SFTP channel")
            sftp.get_channel().settimeout(self.timeout_s)
        except BaseException:
            transport.close()
            raise
        return _Session(transport, sftp)


def _host_key_changed(endpoint: SftpEndpoint) -> PermanentError:
    return PermanentError(
        "HOST_KEY_CHANGED",
        f"{endpoint.known_hosts_name} presented a host key other than the pinned one; refusing "
        "(update known_hosts only after checking the new key with the system's administrators)",
    )


def _is_regular(mode: int) -> bool:
    return (mode & 0o170000) == 0o100000


def _size_or_none(sftp: paramiko.SFTPClient, path: str) -> int | None:
    try:
        return sftp.stat(path).st_size
    except OSError:
        return None


def classify(exc: Exception) -> ConnectorError:
    """What paramiko and the socket raise, as transient or permanent; messages name no data."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, paramiko.AuthenticationException):
        return PermanentError("AUTH_FAILED", "the SFTP server refused the credentials")
    if isinstance(exc, socket.timeout | TimeoutError):
        return CallTimeoutError(f"no answer in time ({type(exc).__name__})")
    if isinstance(exc, paramiko.SSHException | EOFError | ConnectionError):
        return TransientError("CONNECTION_FAILED", f"SSH connection failed ({type(exc).__name__})")
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            return PermanentError("SFTP_NO_SUCH_FILE", "no such remote file or directory")
        if exc.errno == errno.EACCES:
            return PermanentError("SFTP_PERMISSION_DENIED", "the SFTP server denied the operation")
        if exc.errno is None:  # an SFTP status the server answered (e.g. SSH_FX_FAILURE)
            return PermanentError("SFTP_FAILURE", "the SFTP server refused the operation")
        return TransientError("CONNECTION_FAILED", f"network error ({type(exc).__name__})")
    return PermanentError("UNEXPECTED_ERROR", f"unclassified {type(exc).__name__} in the SFTP adapter")
