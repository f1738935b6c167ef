"""The SFTP side of the finance system: password auth and a file tree confined to its root.

Clients see the root as ``/``. Any path with a ``..`` component is refused (permission denied)
rather than silently clamped, and symlinks are resolved and must stay under the root. Every
operation except reading and writing file blocks waits for the latency knob.
"""

from __future__ import annotations

import functools
import hmac
import os
import posixpath
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import paramiko
from paramiko.sftp import SFTP_FAILURE, SFTP_OK, SFTP_PERMISSION_DENIED

from sandbox.finances.processor import FinancesState
from sandbox.knobs import Knobs

T = TypeVar("T")


class PathEscape(Exception):
    """The client asked for a path outside its root."""


class PasswordGate(paramiko.ServerInterface):
    """One account, password only, and only session channels (for the sftp subsystem)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return paramiko.AUTH_SUCCESSFUL if user_ok and password_ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(paramiko.SFTPHandle):
    def __init__(self, flags: int, local: Path, state: FinancesState, writing: bool) -> None:
        super().__init__(flags)
        self.local = local
        self.state = state
        self.writing = writing

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        try:
            paramiko.SFTPServer.set_file_attr(str(self.local), attr)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)
        return SFTP_OK

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.writing:
                self.writing = False
                self.state.closed(self.local)


def _operation(method: Callable[..., T]) -> Callable[..., T | int]:
    """Apply the latency knob and turn path escapes and OS errors into SFTP status codes."""

    @functools.wraps(method)
    def wrapper(self: ConfinedSftp, *args: Any) -> T | int:
        if self.knobs.latency_ms:
            time.sleep(self.knobs.latency_ms / 1000)
        try:
            return method(self, *args)
        except PathEscape:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    return wrapper


class ConfinedSftp(paramiko.SFTPServerInterface):
    """Serves ``state.root`` as ``/``; what paramiko's SFTPClient needs for put-then-rename."""

    def __init__(self, server: paramiko.ServerInterface, state: FinancesState, knobs: Knobs) -> None:
        super().__init__(server)
        self.state = state
        self.knobs = knobs
        self.root = Path(os.path.realpath(state.root))

    def _local(self, path: str) -> Path:
        parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
        if ".." in parts:
            raise PathEscape(path)
        local = self.root.joinpath(*parts)
        real = os.path.realpath(local)
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise PathEscape(path)
        return local

    def canonicalize(self, path: str) -> str:
        return posixpath.normpath(posixpath.join("/", path.replace("\\", "/")))

    @_operation
    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> _Handle:
        local = self._local(path)
        writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
        if writing:
            self.state.open_for_write(local)
        try:
            fd = os.open(local, flags | getattr(os, "O_BINARY", 0), 0o644)
        except OSError:
            if writing:
                self.state.closed(local)
            raise
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        handle = _Handle(flags, local, self.state, writing)
        handle.filename = str(local)
        handle.readfile = handle.writefile = os.fdopen(fd, mode)
        return handle

    @_operation
    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes]:
        local = self._local(path)
        entries = []
        for name in sorted(os.listdir(local)):
            attr = paramiko.SFTPAttributes.from_stat(os.lstat(local / name))
            attr.filename = name
            entries.append(attr)
        return entries

    @_operation
    def stat(self, path: str) -> paramiko.SFTPAttributes:
        return paramiko.SFTPAttributes.from_stat(os.stat(self._local(path)))

    @_operation
    def lstat(self, path: str) -> paramiko.SFTPAttributes:
        return paramiko.SFTPAttributes.from_stat(os.lstat(self._local(path)))

    @_operation
    def remove(self, path: str) -> int:
        os.remove(self._local(path))
        return SFTP_OK

    @_operation
    def rename(self, oldpath: str, newpath: str) -> int:
        """SFTP v3 rename refuses to overwrite, as OpenSSH's does; posix_rename overwrites."""
        old, new = self._local(oldpath), self._local(newpath)
        if new.exists():
            return SFTP_FAILURE
        os.rename(old, new)
        return SFTP_OK

    @_operation
    def posix_rename(self, oldpath: str, newpath: str) -> int:
        os.replace(self._local(oldpath), self._local(newpath))
        return SFTP_OK

    @_operation
    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        os.mkdir(self._local(path), 0o755)
        return SFTP_OK

    @_operation
    def rmdir(self, path: str) -> int:
        local = self._local(path)
        if local == self.root:
            raise PathEscape(path)
        os.rmdir(local)
        return SFTP_OK

    @_operation
    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        paramiko.SFTPServer.set_file_attr(str(self._local(path)), attr)
        return SFTP_OK
