"""The runner starts the four back-ends on real ports and frees them on stop."""

from __future__ import annotations

import io
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paramiko

from sandbox.runner import HUB_VARIABLES, NAMES, bind_socket, start_sandbox


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        base = random.randrange(20000, 60000)
        sockets = []
        try:
            for port in range(base, base + count):
                sockets.append(bind_socket("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no block of free ports")


def test_start_sandbox_serves_all_four_and_stop_frees_the_ports() -> None:
    with start_sandbox(issue_delay_s=0.05) as sandbox:
        assert set(sandbox.urls) == {"etat_civil", "ecole", "ged", "finances"}
        assert set(sandbox.states) == set(sandbox.knobs) == set(sandbox.urls)
        assert all(accepts(port) for port in sandbox.ports.values())

        wsdl = httpx.get(f"{sandbox.urls['etat_civil']}?wsdl")
        assert wsdl.status_code == 200 and b"definitions" in wsdl.content
        ecole = httpx.get(
            f"{sandbox.urls['ecole']}/families",
            params={"birth_name": "x"},
            headers={"Authorization": f"Bearer {sandbox.ecole_token}"},
        )
        assert ecole.json() == {"items": [], "count": 0, "next": None}
        ged = httpx.get(f"{sandbox.urls['ged']}/documents", headers={"X-Api-Key": sandbox.ged_api_key})
        assert ged.json()["count"] == 0

        sandbox.knobs["ecole"].down_for(5)
        assert httpx.get(f"{sandbox.urls['ecole']}/families").status_code == 503

        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        entry = paramiko.hostkeys.HostKeyEntry.from_line(sandbox.sftp_host_key_line)
        client.get_host_keys().add(entry.hostnames[0], entry.key.get_name(), entry.key)
        client.connect(
            "127.0.0.1",
            sandbox.ports["finances"],
            username=sandbox.sftp_username,
            password=sandbox.sftp_password,
            look_for_keys=False,
            allow_agent=False,
        )
        with client.open_sftp() as sftp:
            # No stat after the upload (confirm): the sandbox may already have taken the file in.
            sftp.putfo(io.BytesIO(b"ref,amount\nA,1\n"), "/inbox/a.csv", confirm=False)
        client.close()
        ports = dict(sandbox.ports)
        ged_root = sandbox.states["ged"].root
    for port in ports.values():
        assert not accepts(port)
        bind_socket("127.0.0.1", port).close()
    assert not ged_root.exists()


def test_fixed_ports_are_honoured_and_unknown_names_refused() -> None:
    with start_sandbox() as first:
        wanted = dict(first.ports)
    with start_sandbox(ports=wanted) as second:
        assert second.ports == wanted
        assert second.urls["ecole"] == f"http://127.0.0.1:{wanted['ecole']}/api/v1"
    try:
        start_sandbox(ports={"cantine": 1})
    except ValueError as exc:
        assert "cantine" in str(exc)
    else:
        raise AssertionError("unknown back-end name accepted")


def _exports(lines: list[str]) -> dict[str, str]:
    """The ``export NAME=value`` lines of the sandbox's output, as a shell would read them."""
    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    return dict(pairs)


def _started(*args: str) -> tuple[subprocess.Popen, list[str]]:
    """``python -m sandbox`` and the lines it printed up to "Ctrl-C to stop"."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    while not lines or lines[-1] != "Ctrl-C to stop":
        line = process.stdout.readline()
        if not line:
            process.kill()
            raise AssertionError(process.stderr.read())
        lines.append(line.strip())
    return process, lines


def test_python_m_sandbox_prints_addresses_and_stops_on_sigint() -> None:
    process, lines = _started()
    try:
        addresses = dict(line.split(": ", 1) for line in lines[:4])
        assert addresses["ecole"].startswith("http://127.0.0.1:")
        assert addresses["finances"].startswith("sftp://finances@127.0.0.1:")
        exports = _exports([line for line in lines if line.startswith("export ")])
        assert exports["HUB_ECOLE_URL"] == addresses["ecole"]
        assert " ssh-ed25519 " in exports["HUB_FINANCES_KNOWN_HOSTS"]
        assert exports["HUB_ECOLE_TOKEN"] and exports["HUB_FINANCES_PASSWORD"]
        port = int(addresses["ecole"].rsplit(":", 1)[1].split("/")[0])
        assert accepts(port)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert "sandbox stopped" in process.stdout.read()
        deadline = time.monotonic() + 2
        while accepts(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not accepts(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_print_env_gives_what_the_running_sandbox_prints_and_the_shipped_config_needs(tmp_path) -> None:
    """``eval "$(hub sandbox --print-env)"`` is the README's way to point a hand-run hub at the
    sandbox: the exports, known before starting, are the running sandbox's own, and with them alone
    (no credential inherited from this test's environment) the shipped config loads."""
    base = free_port_block(len(NAMES))
    hub = str(Path(sys.executable).with_name("hub"))
    printed = subprocess.run(
        [hub, "sandbox", "--print-env", "--port-base", str(base)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert all(line.startswith("export ") for line in printed)
    before_start = _exports(printed)

    process, lines = _started("--port-base", str(base))
    try:
        assert _exports([line for line in lines if line.startswith("export ")]) == before_start
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)

    clean = {k: v for k, v in os.environ.items() if k not in HUB_VARIABLES}
    check = subprocess.run([hub, "config", "check"], capture_output=True, text=True, env=clean)
    assert check.returncode == 1 and "HUB_ECOLE_TOKEN is not set" in check.stderr + check.stdout
    check = subprocess.run(
        [hub, "config", "check"], capture_output=True, text=True, env={**clean, **before_start}
    )
    assert check.returncode == 0, check.stderr + check.stdout


def test_small_responses_are_not_held_back_by_nagle() -> None:
    """50 keep-alive calls; with Nagle on, each waits ~40 ms for a delayed ACK (2 s in all)."""
    with (
        start_sandbox() as sandbox,
        httpx.Client(headers={"Authorization": f"Bearer {sandbox.ecole_token}"}) as client,
    ):
        url = f"{sandbox.urls['ecole']}/families"
        client.get(url, params={"birth_name": "x"})
        started = time.perf_counter()
        for _ in range(50):
            client.get(url, params={"birth_name": "x"})
        assert time.perf_counter() - started < 1.0


def test_main_reports_a_busy_port_instead_of_crashing(capsys) -> None:
    from sandbox.runner import main

    with bind_socket("127.0.0.1", 0) as busy:
        assert main(["--port-base", str(busy.getsockname()[1])]) == 1
    assert "cannot listen" in capsys.readouterr().err
