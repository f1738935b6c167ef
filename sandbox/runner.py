"""Start the four sandbox back-ends on loopback, each on its own port, and stop them as one.

``start_sandbox`` is for tests and the demo; ``main`` is ``python -m sandbox`` and ``hub sandbox``.

Each HTTP back-end runs a uvicorn server in a thread on a socket bound here first, so the real port
is known (port 0 picks a free one) before ``start_sandbox`` returns; it returns once every server
accepts connections. The SFTP back-end is a paramiko server with a host key generated at start.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import paramiko
import uvicorn
from starlette.types import ASGIApp

from sandbox import ecole, etat_civil, ged
from sandbox.finances import DEFAULT_PASSWORD, DEFAULT_USERNAME, FinancesServer
from sandbox.finances.fixed_key import sandbox_host_key
from sandbox.finances.server import known_hosts_line
from sandbox.knobs import Knobs

NAMES = ("etat_civil", "ecole", "ged", "finances")
BASE_PATHS = {"etat_civil": "/etat-civil", "ecole": "/api/v1", "ged": "/api"}
STARTUP_TIMEOUT_S = 10.0
# The variables the shipped config/hub.yaml reads: each back-end's address, the SFTP host key line,
# and the credentials (which the hub only ever takes from the environment).
ENDPOINT_VARIABLES = {
    "etat_civil": "HUB_ETAT_CIVIL_URL",
    "ecole": "HUB_ECOLE_URL",
    "ged": "HUB_GED_URL",
    "finances": "HUB_FINANCES_URL",
}
# The sandbox's test credentials, under the names the shipped hub.yaml reads them from.
TEST_CREDENTIALS = {
    "HUB_ECOLE_TOKEN": ecole.DEFAULT_TOKEN,
    "HUB_GED_KEY": ged.DEFAULT_API_KEY,
    "HUB_FINANCES_PASSWORD": DEFAULT_PASSWORD,
}
HUB_VARIABLES = (*ENDPOINT_VARIABLES.values(), "HUB_FINANCES_KNOWN_HOSTS", *TEST_CREDENTIALS)


def hub_environment(
    host: str,
    ports: dict[str, int],
    *,
    host_key_line: str,
    ecole_token: str = ecole.DEFAULT_TOKEN,
    ged_api_key: str = ged.DEFAULT_API_KEY,
    sftp_username: str = DEFAULT_USERNAME,
    sftp_password: str = DEFAULT_PASSWORD,
) -> dict[str, str]:
    """The environment a hub running the shipped config needs to reach a sandbox on ``ports``."""
    url_host = f"[{host}]" if ":" in host else host
    urls = {name: f"http://{url_host}:{ports[name]}{path}" for name, path in BASE_PATHS.items()}
    urls["finances"] = f"sftp://{sftp_username}@{url_host}:{ports['finances']}"
    return {
        **{variable: urls[name] for name, variable in ENDPOINT_VARIABLES.items()},
        "HUB_FINANCES_KNOWN_HOSTS": host_key_line,
        "HUB_ECOLE_TOKEN": ecole_token,
        "HUB_GED_KEY": ged_api_key,
        "HUB_FINANCES_PASSWORD": sftp_password,
    }


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; SO_REUSEADDR so a stopped sandbox's port can be reused at once.

    The protocol must be given as IPPROTO_TCP: asyncio only disables Nagle's algorithm on accepted
    sockets whose ``proto`` says TCP, and with it on, every response whose headers and body are
    written separately waits ~40 ms for the client's delayed ACK (22 requests/s instead of 2000).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class ServerThread:
    """One uvicorn server driven from a background thread on a pre-bound socket."""

    def __init__(self, name: str, app: ASGIApp, sock: socket.socket) -> None:
        self.name = name
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{name}", daemon=True
        )

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"sandbox {self.name}: server thread ended during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox {self.name}: not accepting after {timeout_s} s")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.sock.close()


@dataclass
class SandboxHandle:
    """The running sandbox: where each back-end listens, its knobs, its state, its credentials."""

    host: str
    urls: dict[str, str]
    ports: dict[str, int]
    knobs: dict[str, Knobs]
    states: dict[str, Any]
    sftp_host_key_line: str
    sftp_username: str
    sftp_password: str
    ecole_token: str
    ged_api_key: str
    _servers: list[ServerThread] = field(default_factory=list, repr=False)
    _finances: FinancesServer | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def environment(self) -> dict[str, str]:
        """The variables that point the shipped config at this sandbox (see :func:`hub_environment`)."""
        return hub_environment(
            self.host,
            self.ports,
            host_key_line=self.sftp_host_key_line,
            ecole_token=self.ecole_token,
            ged_api_key=self.ged_api_key,
            sftp_username=self.sftp_username,
            sftp_password=self.sftp_password,
        )

    def stop(self) -> None:
        """Stop every back-end, free its port and remove its temporary files; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for server in self._servers:
            server.stop()
        if self._finances is not None:
            self._finances.stop()
        ged_state = self.states.get("ged")
        if ged_state is not None:
            ged_state.close()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_sandbox(
    host: str = "127.0.0.1",
    *,
    ports: dict[str, int] | None = None,
    issue_delay_s: float = 0.5,
    ecole_token: str = ecole.DEFAULT_TOKEN,
    ged_api_key: str = ged.DEFAULT_API_KEY,
    sftp_password: str = DEFAULT_PASSWORD,
    sftp_host_key: paramiko.PKey | None = None,
) -> SandboxHandle:
    """Start état civil (SOAP), école (REST), GED (REST) and finances (SFTP) on ``host``.

    ``ports`` maps a back-end name (``etat_civil``, ``ecole``, ``ged``, ``finances``) to its port;
    a missing name or 0 takes any free port. ``sftp_host_key`` defaults to a fresh key.
    """
    ports = dict(ports or {})
    unknown = set(ports) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown sandbox back-ends {sorted(unknown)}; valid: {list(NAMES)}")
    knobs = {name: Knobs() for name in NAMES}
    etat_civil_app, etat_civil_state = etat_civil.create_app(knobs["etat_civil"], issue_delay_s)
    ecole_app, ecole_state = ecole.create_app(knobs["ecole"], token=ecole_token)
    ged_app, ged_state = ged.create_app(knobs["ged"], api_key=ged_api_key)
    apps = {"etat_civil": etat_civil_app, "ecole": ecole_app, "ged": ged_app}

    servers: list[ServerThread] = []
    finances: FinancesServer | None = None
    try:
        for name, app in apps.items():
            server = ServerThread(name, app, bind_socket(host, ports.get(name, 0)))
            servers.append(server)
            server.start()
        finances = FinancesServer(
            host,
            ports.get("finances", 0),
            password=sftp_password,
            knobs=knobs["finances"],
            host_key=sftp_host_key,
        ).start()
    except BaseException:
        for server in servers:
            server.stop()
        ged_state.close()
        raise

    url_host = f"[{host}]" if ":" in host else host
    urls = {server.name: f"http://{url_host}:{server.port}{BASE_PATHS[server.name]}" for server in servers}
    urls["finances"] = finances.url
    return SandboxHandle(
        host=host,
        urls=urls,
        ports={**{server.name: server.port for server in servers}, "finances": finances.port},
        knobs=knobs,
        states={
            "etat_civil": etat_civil_state,
            "ecole": ecole_state,
            "ged": ged_state,
            "finances": finances.state,
        },
        sftp_host_key_line=finances.known_hosts_line,
        sftp_username=finances.username,
        sftp_password=sftp_password,
        ecole_token=ecole_token,
        ged_api_key=ged_api_key,
        _servers=servers,
        _finances=finances,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Simulated municipal back-ends (état civil SOAP, école REST, GED REST, "
        "finances SFTP) on loopback, for the demo and the tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port-base",
        type=int,
        default=0,
        help=f"first port; the back-ends take it and the next ones in the order {list(NAMES)}. "
        "0 (default) picks free ports",
    )
    parser.add_argument(
        "--issue-delay",
        type=float,
        default=0.5,
        help="seconds the état-civil registry takes to issue a requested act",
    )
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="print the shell exports that point the shipped hub.yaml at this sandbox (addresses, "
        "host key, test credentials) and exit without starting; needs --port-base",
    )
    return parser


def _exports(environment: dict[str, str]) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in environment.items())


def main(argv: list[str] | None = None) -> int:
    """Start the sandbox, print where each back-end listens, block until interrupted."""
    args = _parser().parse_args(argv)
    if not 0 <= args.port_base <= 65535 - len(NAMES):
        print(f"--port-base must be 0 or a port up to {65535 - len(NAMES)}", file=sys.stderr)
        return 2
    ports = {name: args.port_base + i for i, name in enumerate(NAMES)} if args.port_base else {}
    if args.print_env:
        if not ports:
            print("--print-env needs --port-base (free ports are only known once started)", file=sys.stderr)
            return 2
        key_line = known_hosts_line(args.host, ports["finances"], sandbox_host_key())
        print(_exports(hub_environment(args.host, ports, host_key_line=key_line)))
        return 0
    try:
        handle = start_sandbox(
            args.host, ports=ports, issue_delay_s=args.issue_delay, sftp_host_key=sandbox_host_key()
        )
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with handle:
            for name, url in handle.urls.items():
                print(f"{name}: {url}")
            print("the hub reaches this sandbox with (its secrets come only from the environment):")
            print(_exports(handle.environment()))
            print("Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("sandbox stopped", flush=True)
    return 0
