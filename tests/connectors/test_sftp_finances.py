"""Finance files over SFTP against the sandbox finance server and OpenSSH's sshd, on real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from connectors.errors import PermanentError, TransientError
from connectors.exchange import CallContext
from connectors.finances import FinancesConnector, parse_ack
from connectors.gateway import Gateway, SystemPolicy
from connectors.sftp import SftpAdapter, validate_remote_name
from hub.acks import ACK_FILES, SqlAckLedger
from hub.db.engine import Database
from sandbox.finances import FinancesServer, generate_host_key, known_hosts_line
from tests.conftest import ROOT, require_peer
from tests.connectors.recording import ListRecorder
from tests.connectors.sshd import Sshd, running_sshd, sshd_binary

HEADER = "reference;nom;montant"
PASSWORD = "test-finances"


def ctx(key: str | None = None) -> CallContext:
    return CallContext(correlation_id="corr-fin", request_id="req-1", idempotency_key=key)


@pytest.fixture
def finances() -> Iterator[FinancesServer]:
    server = FinancesServer("127.0.0.1", 0, password=PASSWORD, poll_interval_s=0.02).start()
    yield server
    server.stop()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    with database.connection() as connection:
        connection.execute(delete(ACK_FILES))
    yield database
    database.dispose()


def adapter_for(
    server: FinancesServer,
    recorder: ListRecorder | None = None,
    known_hosts: str | None = None,
    **policy: float,
) -> SftpAdapter:
    gateway = Gateway(
        "finances",
        SystemPolicy(**{"timeout_s": 5.0, "max_attempts": 1, **policy}),
        recorder or ListRecorder(),
    )
    return SftpAdapter(
        "finances", server.url, gateway, known_hosts=known_hosts or server.known_hosts_line, password=PASSWORD
    )


def connector_for(server: FinancesServer, db: Database, **policy: float) -> FinancesConnector:
    return FinancesConnector(
        adapter_for(server, **policy), SqlAckLedger(db), headers={"billing": HEADER, "aid_payment": HEADER}
    )


def wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_billing_file_is_acknowledged_line_by_line_and_read_once(
    finances: FinancesServer, db: Database
) -> None:
    connector = connector_for(finances, db)
    receipt = connector.send_file(
        "billing", ["F-1;Martin;12.50", "F-2;Diallo;abc", "F-3;Nguyen;7"], ctx("req-1:bill")
    )
    assert receipt.name == "facturation-req-1_bill.csv" and receipt.size > 0
    wait_for(lambda: finances.state.counters["files_processed"] == 1)
    status = connector.call("GetFileStatus", {"file": receipt.name}, ctx())
    assert status["status"] == "PARTIAL" and status["accepted"] == 2
    assert status["rejections"] == [{"line": 3, "reason": "amount 'abc' is not decimal"}]
    assert connector.poll_acknowledgements(ctx()) == []  # already processed


def test_the_answers_are_those_the_connector_declares(finances: FinancesServer, db: Database) -> None:
    """Flows are checked at load against FinancesConnector.ANSWERS: they must be the real ones."""
    import jsonschema

    connector = connector_for(finances, db)
    answers = {"SendAidPaymentFile": connector.call("SendAidPaymentFile", "A-1;Martin;12.50", ctx("r:pay"))}
    name = answers["SendAidPaymentFile"]["name"]
    answers["GetFileStatus (pending)"] = connector.file_status("facturation-none.csv", ctx())
    wait_for(lambda: finances.state.counters["files_processed"] == 1)
    answers["GetFileStatus"] = connector.call("GetFileStatus", {"file": name}, ctx())
    answers["PollAcknowledgements"] = connector.call("PollAcknowledgements", {}, ctx())
    answers["Health"] = connector.call("Health", {}, ctx())
    for operation, answer in answers.items():
        jsonschema.validate(answer, FinancesConnector.ANSWERS[operation.split(" ")[0]])
    assert answers["GetFileStatus"]["status"] == "ACCEPTED"
    assert set(FinancesConnector.ANSWERS) == set(FinancesConnector.DATA_CATEGORIES)


def test_an_acknowledgement_is_processed_once_across_restarts_and_workers(
    finances: FinancesServer, db: Database
) -> None:
    first = connector_for(finances, db)
    for number in range(4):
        first.send_file("aid_payment", [f"A-{number};Martin;{number}0.00"], ctx(f"req-{number}:pay"))
    wait_for(lambda: finances.state.counters["files_processed"] == 4)
    # Two "restarted" workers (new connections, same database) poll at the same time.
    workers = [connector_for(finances, db) for _ in range(2)]
    seen: list[list] = [[], []]
    threads = [
        threading.Thread(target=lambda i=i: seen[i].extend(workers[i].poll_acknowledgements(ctx())))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = sorted(a.file for batch in seen for a in batch)
    assert names == sorted(f"aides-req-{n}_pay.csv" for n in range(4))  # each exactly once
    assert connector_for(finances, db).poll_acknowledgements(ctx()) == []
    assert first.file_status("aides-req-2_pay.csv", ctx())["status"] == "ACCEPTED"


def test_resending_the_same_step_delivers_one_file(finances: FinancesServer, db: Database) -> None:
    connector = connector_for(finances, db)
    for _ in range(2):
        connector.send_file("billing", ["F-1;Martin;12.50"], ctx("req-7:bill"))
        wait_for(lambda: not any(finances.state.inbox.iterdir()))
    assert finances.state.counters["files_processed"] == 1 and finances.state.counters["duplicates"] == 1
    assert not [p for p in finances.state.root.rglob("*.part")]


def test_unknown_and_changed_host_keys_are_refused(finances: FinancesServer) -> None:
    other = known_hosts_line("127.0.0.1", finances.port, generate_host_key())
    recorder = ListRecorder()
    adapter = adapter_for(finances, recorder, known_hosts=other)
    with pytest.raises(PermanentError) as raised:
        adapter.listdir("Health", "outbox", ctx())
    assert raised.value.code == "HOST_KEY_CHANGED" and recorder.outcomes() == ["permanent_error"]
    elsewhere = known_hosts_line("127.0.0.1", finances.port + 1, finances.host_key)
    with pytest.raises(ValueError, match="unknown"):
        adapter_for(finances, known_hosts=elsewhere)


def test_names_are_validated_before_any_use(finances: FinancesServer, db: Database) -> None:
    connector = connector_for(finances, db)
    for name in ("../etc/passwd", "/abs.csv", "a/b.csv", ".hidden", "-rf", "x\n.csv", "é.csv", "", "a" * 201):
        with pytest.raises(PermanentError) as raised:
            connector.send_file("billing", ["F;X;1"], ctx(), name=name)
        assert raised.value.code == "INVALID_REMOTE_NAME"
    with pytest.raises(PermanentError) as raised:
        connector.send_file("billing", ["F;X;1\nF;Y;2"], ctx("k"))
    assert raised.value.code == "INVALID_MESSAGE"


def test_hostile_remote_names_are_skipped_never_followed(finances: FinancesServer, db: Database) -> None:
    outbox = finances.state.outbox
    for name in ("..ack", "-rf.ack", "x y.ack", "tab\t.ack", "nl\n.ack", "é.ack", ".hidden.ack"):
        (outbox / name).write_text("line,status,reason\n2,ACCEPTED,\n")
    (outbox / "link.ack").symlink_to("/etc/passwd")
    files, skipped = adapter_for(finances).listdir("Poll", "outbox", ctx())
    assert [f.name for f in files] == [] and skipped == 7
    assert connector_for(finances, db).poll_acknowledgements(ctx()) == []


def test_server_down_is_transient(finances: FinancesServer, db: Database) -> None:
    finances.knobs.down_for(5)
    with pytest.raises(TransientError) as raised:
        connector_for(finances, db).send_file("billing", ["F;X;1"], ctx("k"))
    assert raised.value.code == "CONNECTION_FAILED"


def test_the_wire_is_unreachable_outside_a_gateway_attempt(finances: FinancesServer) -> None:
    adapter = adapter_for(finances)
    with pytest.raises(PermanentError) as raised, adapter._session():
        pass
    assert raised.value.code == "GATEWAY_BYPASSED"


def test_ack_parsing_refuses_garbage() -> None:
    with pytest.raises(PermanentError):
        parse_ack("x.ack", b"\xff\xfe")
    with pytest.raises(PermanentError):
        parse_ack("x.ack", b"line,status\n2,MAYBE\n")
    assert parse_ack("f.csv.ack", b"line,status,reason\n2,ACCEPTED,\n").status == "ACCEPTED"


KILLED_UPLOADER = textwrap.dedent(
    """
    import os, sys, time, hashlib
    from connectors.exchange import CallContext, NullRecorder
    from connectors.gateway import Gateway, SystemPolicy
    from connectors.sftp import SftpAdapter

    url, line, password, path = sys.argv[1:5]

    class SlowDisk:
        def __init__(self, handle):
            self.handle = handle
        def seek(self, *args):
            return self.handle.seek(*args)
        def read(self, size=-1):
            time.sleep(0.01)
            return self.handle.read(size)

    data = open(path, "rb").read()
    gateway = Gateway("finances", SystemPolicy(timeout_s=5, max_attempts=1), NullRecorder())
    adapter = SftpAdapter("finances", url, gateway, known_hosts=line, password=password)
    with open(path, "rb") as handle:
        adapter.upload("SendBillingFile", "inbox", "facturation-req-9_bill.csv", SlowDisk(handle),
                       CallContext("c", idempotency_key="req-9:bill"),
                       sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    """
)


def test_worker_killed_during_an_upload_leaves_no_visible_file_and_the_retry_delivers_once(
    finances: FinancesServer, db: Database, tmp_path: Path
) -> None:
    lines = [f"F-{n};Martin;{n % 100}.00" for n in range(200_000)]
    source = tmp_path / "billing.csv"
    source.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_UPLOADER,
            finances.url,
            finances.known_hosts_line,
            PASSWORD,
            str(source),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )
    temporary = finances.state.inbox / ".facturation-req-9_bill.csv.part"
    try:
        wait_for(lambda: (temporary.exists() and temporary.stat().st_size > 0) or child.poll() is not None)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    time.sleep(0.2)  # let the intake poll: it must ignore the partial file
    assert sorted(p.name for p in finances.state.inbox.iterdir()) == [temporary.name]
    assert finances.state.counters["files_processed"] == 0
    # The worker restarts and runs the step again: same name, same content.
    connector = connector_for(finances, db)
    receipt = connector.send_file("billing", lines, ctx("req-9:bill"))
    wait_for(lambda: finances.state.counters["files_processed"] == 1)
    assert receipt.size == source.stat().st_size
    assert not temporary.exists() and finances.state.counters["duplicates"] == 0
    status = connector.file_status(receipt.name, ctx())
    assert status["status"] == "ACCEPTED" and status["accepted"] == 200_000


# ---------------------------------------------------------------------------- OpenSSH sshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    binary = sshd_binary()
    require_peer(binary is not None, "OpenSSH sshd is not installed (apt-get install openssh-server)")
    assert binary is not None
    with running_sshd(tmp_path / "sshd", binary) as server:
        yield server


def sshd_adapter(
    server: Sshd, recorder: ListRecorder | None = None, known_hosts: str | None = None
) -> SftpAdapter:
    gateway = Gateway("finances", SystemPolicy(timeout_s=5.0, max_attempts=1), recorder or ListRecorder())
    return SftpAdapter(
        "finances",
        server.endpoint,
        gateway,
        known_hosts=known_hosts or server.host_key_line,
        private_key=server.client_key,
    )


def test_openssh_upload_is_atomic_and_exact(sshd: Sshd, db: Database) -> None:
    (sshd.root / "inbox").mkdir()
    connector = FinancesConnector(sshd_adapter(sshd), SqlAckLedger(db), headers={"billing": HEADER})
    lines = [f"F-{n};Durand;{n}.10" for n in range(5000)]
    receipt = connector.send_file("billing", lines, ctx("req-3:bill"))
    written = (sshd.root / "inbox" / receipt.name).read_text()
    assert written == HEADER + "\n" + "\n".join(lines) + "\n"
    assert sorted(p.name for p in (sshd.root / "inbox").iterdir()) == [receipt.name]  # no .part left
    # OpenSSH refuses to rename over an existing file: a re-run finds the same file there.
    again = connector.send_file("billing", lines, ctx("req-3:bill"))
    assert again.already_present and again.sha256 == receipt.sha256


def test_openssh_changed_host_key_is_refused(sshd: Sshd) -> None:
    impostor = known_hosts_line("127.0.0.1", sshd.port, generate_host_key())
    with pytest.raises(PermanentError) as raised:
        sshd_adapter(sshd, known_hosts=impostor).listdir("Health", "", ctx())
    assert raised.value.code == "HOST_KEY_CHANGED"


def test_openssh_hostile_names_are_skipped(sshd: Sshd) -> None:
    outbox = sshd.root / "outbox"
    outbox.mkdir()
    for name in ("ok.csv.ack", "..ack", "-rf.ack", "nl\n.ack", "x y.ack"):
        (outbox / name).write_text("line,status,reason\n")
    files, skipped = sshd_adapter(sshd).listdir("Poll", "outbox", ctx())
    assert [f.name for f in files] == ["ok.csv.ack"] and skipped == 4


def test_openssh_ack_read_through_the_connector(sshd: Sshd, db: Database) -> None:
    (sshd.root / "outbox").mkdir()
    (sshd.root / "outbox" / "facturation-x.csv.ack").write_text("line,status,reason\n2,REJECTED,bad iban\n")
    connector = FinancesConnector(sshd_adapter(sshd), SqlAckLedger(db))
    status = connector.file_status("facturation-x.csv", ctx())
    assert status["status"] == "REJECTED" and status["rejections"][0]["reason"] == "bad iban"


def test_remote_name_rules() -> None:
    assert validate_remote_name("facturation-req_1.csv.ack") == "facturation-req_1.csv.ack"
    with pytest.raises(PermanentError):
        validate_remote_name("a..b")
