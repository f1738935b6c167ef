"""Finances SFTP server with paramiko's SFTPClient, pinning the generated host key."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import paramiko
import pytest

from sandbox.finances import FinancesServer, acknowledge, generate_host_key, known_hosts_line

PAYMENTS = (
    b"reference;amount;label\n"
    b"F-001;120,50;cantine septembre\n"
    b"F-002;;garderie\n"
    b"F-003;12.00\n"
    b"\n"
    b"F-004;douze;creche\n"
)


@pytest.fixture
def finances() -> Iterator[FinancesServer]:
    with FinancesServer(password="s3cret", poll_interval_s=0.02) as server:
        yield server


def connect(server: FinancesServer, *, known_hosts: str | None = None, password: str = "s3cret"):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    entry = paramiko.hostkeys.HostKeyEntry.from_line(known_hosts or server.known_hosts_line)
    assert entry is not None
    for name in entry.hostnames:
        client.get_host_keys().add(name, entry.key.get_name(), entry.key)
    client.connect(
        server.host,
        server.port,
        username="finances",
        password=password,
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
    )
    return client


@pytest.fixture
def sftp(finances: FinancesServer) -> Iterator[paramiko.SFTPClient]:
    client = connect(finances)
    with client.open_sftp() as channel:
        yield channel
    client.close()


def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def upload(sftp: paramiko.SFTPClient, name: str, content: bytes) -> None:
    sftp.putfo(io.BytesIO(content), f"/inbox/{name}.part")
    sftp.rename(f"/inbox/{name}.part", f"/inbox/{name}")


def test_put_to_part_then_rename_gets_a_per_line_acknowledgement(finances, sftp) -> None:
    upload(sftp, "paiements-2026-09.csv", PAYMENTS)
    wait_for(lambda: "paiements-2026-09.csv.ack" in sftp.listdir("/outbox"))
    with sftp.open("/outbox/paiements-2026-09.csv.ack") as ack:
        lines = ack.read().decode().splitlines()
    assert lines == [
        "line,status,reason",
        "2,ACCEPTED,",
        "3,REJECTED,empty amount",
        '4,REJECTED,"expected 3 columns, got 2"',
        "6,REJECTED,amount 'douze' is not decimal",
    ]
    assert sftp.listdir("/archive") == ["paiements-2026-09.csv"]
    assert sftp.listdir("/inbox") == []
    assert finances.state.counters["lines_accepted"] == 1


def test_the_same_content_is_processed_once(finances, sftp) -> None:
    upload(sftp, "lot.csv", PAYMENTS)
    wait_for(lambda: finances.state.counters["files_processed"] == 1)
    sftp.remove("/outbox/lot.csv.ack")
    upload(sftp, "lot.csv", PAYMENTS)
    wait_for(lambda: finances.state.counters["duplicates"] == 1)
    assert "lot.csv.ack" not in sftp.listdir("/outbox")
    assert finances.state.counters["files_processed"] == 1
    assert len(sftp.listdir("/archive")) == 2


def test_part_and_dot_files_are_left_alone(finances, sftp) -> None:
    sftp.putfo(io.BytesIO(PAYMENTS), "/inbox/lot.csv.part")
    sftp.putfo(io.BytesIO(PAYMENTS), "/inbox/.lot.csv")
    sftp.putfo(io.BytesIO(PAYMENTS), "/inbox/lot.tmp")
    time.sleep(0.2)
    assert sorted(sftp.listdir("/inbox")) == [".lot.csv", "lot.csv.part", "lot.tmp"]
    assert sftp.listdir("/outbox") == []


def test_file_operations_a_client_needs(sftp) -> None:
    sftp.mkdir("/inbox/sub")
    sftp.putfo(io.BytesIO(b"abc"), "/inbox/sub/x.tmp")
    assert sftp.stat("/inbox/sub/x.tmp").st_size == 3
    assert sftp.lstat("/inbox/sub").st_mode is not None
    sftp.rename("/inbox/sub/x.tmp", "/inbox/sub/y.tmp")
    assert sftp.listdir("/inbox/sub") == ["y.tmp"]
    sftp.remove("/inbox/sub/y.tmp")
    sftp.rmdir("/inbox/sub")
    assert sftp.normalize(".") == "/"
    with pytest.raises(FileNotFoundError):
        sftp.stat("/inbox/missing.csv")


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/../../etc/passwd", "/inbox/../../x", "inbox/../outbox/x"]
)
def test_paths_outside_the_root_are_refused(sftp, path: str) -> None:
    with pytest.raises(PermissionError):
        sftp.putfo(io.BytesIO(b"x"), path)
    with pytest.raises(PermissionError):
        sftp.listdir(path)


def test_absolute_paths_stay_inside_the_root(finances, sftp) -> None:
    with pytest.raises(FileNotFoundError):
        sftp.stat("/etc/passwd")
    sftp.putfo(io.BytesIO(b"x"), "/outbox/note.tmp")
    assert (finances.state.root / "outbox" / "note.tmp").read_bytes() == b"x"


def test_a_client_pinning_another_key_refuses_the_server(finances) -> None:
    other = known_hosts_line(finances.host, finances.port, generate_host_key())
    with pytest.raises(paramiko.BadHostKeyException):
        connect(finances, known_hosts=other).close()


def test_wrong_password_is_refused(finances) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(finances, password="wrong")


def test_downtime_refuses_new_connections(finances) -> None:
    finances.knobs.down_for(0.5)
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        connect(finances)
    assert finances.refused_connections == 1
    time.sleep(0.55)
    connect(finances).close()


def test_latency_knob_slows_each_operation(finances, sftp) -> None:
    finances.knobs.update({"latency_ms": 150})
    started = time.perf_counter()
    sftp.listdir("/outbox")
    assert time.perf_counter() - started >= 0.15


def test_stop_frees_the_port_and_removes_the_root() -> None:
    server = FinancesServer().start()
    root, port = server.state.root, server.port
    server.stop()
    assert not root.exists()
    with FinancesServer(port=port) as again:
        assert again.port == port


def test_acknowledge_rules() -> None:
    assert acknowledge(b"ref,montant\nA,1\n") == [(2, "ACCEPTED", "")]
    assert acknowledge(b"ref,label\nA,1\n")[0][1] == "REJECTED"
    assert acknowledge(b"\xff\xfe") == [(1, "REJECTED", "file is not UTF-8 text")]
    assert acknowledge(b"") == [(1, "REJECTED", "missing header line")]
