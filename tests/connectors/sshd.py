"""OpenSSH's sshd from Debian on a loopback port, with a generated host key and a temp config.

The SFTP subsystem is sshd's ``internal-sftp`` started in a temporary folder; the client logs in
as the current user with a generated Ed25519 key listed in a temporary ``authorized_keys``.
Nothing of the machine's own SSH setup is read or changed.
"""

from __future__ import annotations

import getpass
import io
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.connectors.live_server import closed_port

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/bin/sshd")


def sshd_binary() -> str | None:
    found = next((path for path in SSHD_CANDIDATES if Path(path).is_file()), None)
    return found or shutil.which("sshd")


def new_key() -> paramiko.Ed25519Key:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem.decode()))


@dataclass
class Sshd:
    port: int
    root: Path
    user: str
    client_key: paramiko.PKey
    host_key_line: str

    @property
    def endpoint(self) -> str:
        return f"sftp://{self.user}@127.0.0.1:{self.port}"


@contextmanager
def running_sshd(folder: Path, binary: str) -> Iterator[Sshd]:
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "sftp-root"
    root.mkdir()
    host_key = folder / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True, capture_output=True
    )
    client_key = new_key()
    (folder / "authorized_keys").write_text(f"{client_key.get_name()} {client_key.get_base64()}\n")
    port = closed_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                f"Subsystem sftp internal-sftp -d {root}",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    process = subprocess.Popen(
        [binary, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("sshd does not accept connections") from None
                time.sleep(0.05)
        public = host_key.with_suffix(".pub").read_text().split()
        line = f"[127.0.0.1]:{port} {public[0]} {public[1]}"
        yield Sshd(port, root, getpass.getuser(), client_key, line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
