"""``python -m sandbox``: run the four back-ends in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from sandbox.runner import NAMES, start_sandbox


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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the sandbox, print where each back-end listens, block until interrupted."""
    args = _parser().parse_args(argv)
    if not 0 <= args.port_base <= 65535 - len(NAMES):
        print(f"--port-base must be 0 or a port up to {65535 - len(NAMES)}", file=sys.stderr)
        return 2
    ports = {name: args.port_base + i for i, name in enumerate(NAMES)} if args.port_base else {}
    try:
        handle = start_sandbox(args.host, ports=ports, issue_delay_s=args.issue_delay)
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
            print(f"finances known_hosts: {handle.sftp_host_key_line}")
            print(
                f"credentials: ecole Authorization: Bearer {handle.ecole_token} | "
                f"ged X-Api-Key: {handle.ged_api_key} | "
                f"finances {handle.sftp_username}/{handle.sftp_password}"
            )
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


if __name__ == "__main__":
    sys.exit(main())
