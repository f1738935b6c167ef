"""Shared helpers of the benchmarks: processes, fresh databases, the load generator, figures.

Every benchmark runs the hub as production does: ``hub serve`` in its own process (uvicorn), so the
load generator in the benchmark process never shares the server's GIL. Databases are fresh per run
(a SQLite file in a temporary folder, or a new PostgreSQL database dropped at the end), and the
configuration is a temporary copy of ``config/hub.yaml`` with absolute paths, so nothing is written
into the working tree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa
import yaml

from sandbox.runner import TEST_CREDENTIALS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HUB_CLI = str(BIN / "hub")
SAMPLES = ROOT / "sandbox" / "samples"
PG_ADMIN_URL = os.environ.get("HUB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PSEUDONYM_KEY = "00" * 32
STARTUP_TIMEOUT_S = 60.0
TERMINAL = ("completed", "failed", "rejected")

_database_counter = itertools.count(1)

# The benchmarks drive the sandbox: its test credentials, under the names the shipped hub.yaml reads
# (it takes credentials from the environment only), for the hubs started here and in-process loads.
for _name, _value in TEST_CREDENTIALS.items():
    os.environ.setdefault(_name, _value)


# ---------------------------------------------------------------------------------------- figures


def emit(name: str, value: float, unit: str) -> None:
    """Print one figure as ``name: value unit`` (ratios with two decimals)."""
    if unit == "ratio":
        text = f"{value:.2f}"
    elif isinstance(value, int) or abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.1f}"
    print(f"{name}: {text} {unit}", flush=True)


def note(message: str) -> None:
    """Progress and explanations go to stderr, so stdout holds only the figures."""
    print(f"# {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


def database_choices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres", "both"),
        default="both",
        help="which database(s) the hub runs on (default: both)",
    )


def databases(choice: str) -> list[str]:
    return ["sqlite", "postgres"] if choice == "both" else [choice]


def load_options(parser: argparse.ArgumentParser, *, duration: float) -> None:
    parser.add_argument("--duration", type=float, default=duration, help="measured seconds of load")
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive clients")
    parser.add_argument(
        "--client-processes", type=int, default=1, help="split the clients over this many processes"
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: a minimal asyncio HTTP/1.1 client (default) or httpx.AsyncClient",
    )


# -------------------------------------------------------------------------------------- databases


def sa_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite database file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """A new empty database URL (the hub migrates it at start); dropped or deleted at the end."""
    number = next(_database_counter)
    if kind == "sqlite":
        path = workdir / f"hub-{number}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            remove_sqlite(path)
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    name = f"hub_bench_{os.getpid()}_{number}"
    admin = sa.create_engine(sa_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def count_rows(url: str, sql: str) -> Any:
    engine = sa.create_engine(sa_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql)).one()
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------------------- config


def write_config(workdir: Path, *, concurrency: int | None = None) -> Path:
    """A copy of config/hub.yaml with absolute paths (and another worker concurrency if given)."""
    source = ROOT / "config" / "hub.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["paths"] = {
        "flows": str(ROOT / "flows"),
        "mappings": str(ROOT / "mappings"),
        "data": str(workdir / "var"),
    }
    for system in data.get("systems", {}).values():
        for key in ("wsdl", "openapi"):  # files named relative to config/
            if system.get(key):
                system[key] = str((source.parent / system[key]).resolve())
    if concurrency is not None:
        data.setdefault("worker", {})["concurrency"] = concurrency
    suffix = f"-c{concurrency}" if concurrency else ""
    path = workdir / f"hub{suffix}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def hub_env(url: str, config: Path, sandbox: Sandbox | None = None) -> dict[str, str]:
    """The environment of ``hub serve`` / ``hub clients add``: the database, the config, and the
    sandbox's addresses (free ports), SFTP host key line and credentials when a sandbox runs."""
    env = dict(os.environ)
    env.update(HUB_DATABASE_URL=url, HUB_CONFIG=str(config), HUB_PSEUDONYM_KEY=PSEUDONYM_KEY)
    if sandbox is not None:
        env.update(sandbox.environment)
    return env


def add_client(env: dict[str, str], name: str = "bench-portal") -> str:
    """``hub clients add`` (which also migrates the fresh database); the key is the last stdout line."""
    done = subprocess.run(
        [HUB_CLI, "clients", "add", name, "--scopes", "portal"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"hub clients add failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1].strip()


# -------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A server in its own process, listening on a loopback port."""

    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, path: str = "/health", timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s: {self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _spawn(name: str, argv: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    handle = log.open("wb")
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    return Server(name, process, port, log)


@contextlib.contextmanager
def hub_server(env: dict[str, str], workdir: Path, *, worker: bool, processes: int = 1) -> Iterator[Server]:
    """``hub serve`` (the production entry point) in a subprocess; stopped with SIGINT at the end."""
    port = free_port()
    argv = [HUB_CLI, "serve", "--port", str(port), "--worker" if worker else "--no-worker"]
    argv += ["--processes", str(processes)]
    server = _spawn("hub serve", argv, env, port, workdir / f"hub-{port}.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def hub_workers(env: dict[str, str], workdir: Path, count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` standalone ``hub worker`` processes (beside ``hub serve --no-worker``)."""
    processes = []
    try:
        for number in range(count):
            with (workdir / f"worker-{number}.log").open("wb") as handle:
                processes.append(
                    subprocess.Popen(
                        [HUB_CLI, "worker"], env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT
                    )
                )
        yield processes
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def baseline_server(config: Path, workdir: Path) -> Iterator[Server]:
    """The no-database intake (bench/_baseline_server.py) under the same uvicorn settings."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).parent / "_baseline_server.py"), "--port", str(port)]
    env = dict(os.environ, HUB_CONFIG=str(config))
    server = _spawn("baseline", argv, env, port, workdir / f"baseline-{port}.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@dataclass
class Sandbox:
    process: subprocess.Popen
    urls: dict[str, str]
    # what the hub needs to reach it (addresses, SFTP host key line, test credentials), from the
    # export lines it prints
    environment: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def sandbox_process(issue_delay_s: float = 0.0) -> Iterator[Sandbox]:
    """``python -m sandbox`` in its own process (free ports); its URLs parsed from what it prints."""
    argv = [sys.executable, "-m", "sandbox", "--issue-delay", str(issue_delay_s)]
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    urls: dict[str, str] = {}
    environment: dict[str, str] = {}
    timer = threading.Timer(STARTUP_TIMEOUT_S, process.kill)  # readline cannot block forever
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            name, _, value = line.strip().partition(": ")
            if name in ("etat_civil", "ecole", "ged", "finances"):
                urls[name] = value
            elif line.startswith("export "):
                variable, _, quoted = line.strip().removeprefix("export ").partition("=")
                environment[variable] = shlex.split(quoted)[0] if quoted else ""
            if line.startswith("Ctrl-C"):
                break
    finally:
        timer.cancel()
    sandbox = Sandbox(process, urls, environment)
    try:
        if "etat_civil" not in urls:
            raise RuntimeError(f"sandbox did not start (exit {process.poll()})")
        yield sandbox
    finally:
        sandbox.stop()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


# --------------------------------------------------------------------------------- load generator


def sample_bodies() -> list[bytes]:
    """The valid sample requests (files whose name contains ``invalid`` are left out), as JSON bytes."""
    paths = sorted(p for p in SAMPLES.glob("*.json") if "invalid" not in p.name)
    return [json.dumps(json.loads(p.read_text(encoding="utf-8"))).encode() for p in paths]


@dataclass
class LoadResult:
    """What the clients saw: statuses, latencies of the 202s (ms), wall time and client CPU time."""

    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    machine_cpu: float = float("nan")
    ids: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.statuses.get(202, 0)

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.elapsed_s if self.elapsed_s else 0.0

    def merge(self, other: LoadResult) -> None:
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.latencies_ms.extend(other.latencies_ms)
        self.ids.extend(other.ids)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.client_cpu_s += other.client_cpu_s


class RawHttpConnection:
    """A minimal HTTP/1.1 keep-alive client connection (Content-Length bodies only) on asyncio streams.

    httpx measured ~2.3 ms of client CPU per request here and its shared async pool collapses with
    32 connections (~110 req/s at 100 % of a core), so it could not load a server faster than itself.
    This client costs a few tens of microseconds per request; httpx stays available (``--client``).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
                elif name == "transfer-encoding":
                    raise ValueError("chunked responses are not supported by this client")
            payload = await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _load(
    base_url: str,
    key: str,
    bodies: list[bytes],
    concurrency: int,
    duration_s: float | None,
    count: int | None,
    keep_ids: bool,
    client_kind: str,
) -> LoadResult:
    result = LoadResult()
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    numbers = itertools.count()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started = time.perf_counter()
    deadline = started + duration_s if duration_s is not None else float("inf")
    parts = httpx.URL(base_url)

    async def client_task(post: Any) -> None:
        while True:
            number = next(numbers)
            if (count is not None and number >= count) or time.perf_counter() >= deadline:
                return
            body = bodies[number % len(bodies)]
            sent = time.perf_counter()
            try:
                status, payload = await post(body, {**headers, "Idempotency-Key": f"{prefix}{number}"})
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors[type(exc).__name__] += 1
                continue
            result.statuses[status] += 1
            if status == 202:
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                if keep_ids:
                    result.ids.append(json.loads(payload)["id"])

    cpu = time.process_time()
    if client_kind == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

            async def post_httpx(body: bytes, request_headers: dict[str, str]) -> tuple[int, bytes]:
                response = await client.post("/v1/requests", content=body, headers=request_headers)
                return response.status_code, response.content

            await asyncio.gather(*(client_task(post_httpx) for _ in range(concurrency)))
    else:
        connections = [RawHttpConnection(parts.host, parts.port or 80) for _ in range(concurrency)]

        def raw_post(connection: RawHttpConnection) -> Any:
            async def post(body: bytes, request_headers: dict[str, str]) -> tuple[int, bytes]:
                return await asyncio.wait_for(connection.post("/v1/requests", body, request_headers), 60)

            return post

        try:
            await asyncio.gather(*(client_task(raw_post(conn)) for conn in connections))
        finally:
            for connection in connections:
                await connection.close()
    result.client_cpu_s = time.process_time() - cpu
    result.elapsed_s = time.perf_counter() - started
    return result


def _load_in_process(*args: Any) -> LoadResult:
    return asyncio.run(_load(*args))


def load_with(server: Server, key: str, bodies: list[bytes], args: Any, **run: Any) -> LoadResult:
    """:func:`run_load` against ``server`` with the load options every script takes (--clients,
    --client, --client-processes); ``run`` says how long or how many (duration_s= or count=)."""
    return run_load(
        server.base_url,
        key,
        bodies,
        concurrency=args.clients,
        processes=getattr(args, "client_processes", 1),
        client=args.client,
        **run,
    )


def run_load(
    base_url: str,
    key: str,
    bodies: list[bytes],
    *,
    concurrency: int = 32,
    duration_s: float | None = None,
    count: int | None = None,
    processes: int = 1,
    keep_ids: bool = False,
    client: str = "raw",
) -> LoadResult:
    """``concurrency`` keep-alive clients posting distinct requests for ``duration_s`` or ``count``.

    With ``processes`` > 1 the clients are split over that many processes (when one generator
    process would saturate its core before the server does).
    """
    if processes <= 1:
        return _load_in_process(base_url, key, bodies, concurrency, duration_s, count, keep_ids, client)
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    counts = (
        [None] * processes
        if count is None
        else [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    )
    merged = LoadResult()
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_load_in_process, base_url, key, bodies, share, duration_s, part, keep_ids, client)
            for share, part in zip(shares, counts, strict=True)
        ]
        for future in futures:
            merged.merge(future.result())
    return merged


class RssSampler:
    """Samples a process's resident set size every ``interval_s`` in a thread; keeps the peak.
    ``tree``: the largest of the process and its children (``hub serve --processes N``'s workers)."""

    def __init__(self, pid: int, interval_s: float = 0.1, *, tree: bool = False) -> None:
        self.process = psutil.Process(pid)
        self.tree = tree
        self.interval_s = interval_s
        self.peak = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                rss = self.process.memory_info().rss
                if self.tree:
                    for child in self.process.children():
                        with contextlib.suppress(psutil.Error):
                            rss = max(rss, child.memory_info().rss)
                self.samples.append(rss)
                self.peak = max(self.peak, rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class CpuMeter:
    """CPU seconds used by processes between enter and exit (server-side share of the load)."""

    def __init__(self, *pids: int) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.used_s = 0.0

    def _total(self) -> float:
        # The processes and their children (``hub serve --processes N`` forks uvicorn workers).
        total = 0.0
        family = [p for process in self.processes for p in (process, *process.children(recursive=True))]
        for process in family:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def __enter__(self) -> CpuMeter:
        self._start = self._total()
        return self

    def __exit__(self, *_: object) -> None:
        self.used_s = self._total() - self._start


class MachineCpuMeter:
    """Busy CPU seconds of the whole machine (every core, every process, the kernel's network and
    disk work included) between enter and exit: with the time a run took, what the run left of the
    cores for anything else, and the ceiling of one request's total cost."""

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def __enter__(self) -> MachineCpuMeter:
        self._start = self._busy()
        self.used_s = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.used_s = self._busy() - self._start


def postgres_backends_cpu_s(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving ``database`` (by their process title)."""
    total = 0.0
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(process.info["cmdline"] or [])
            if cmdline.startswith("postgres:") and f" {database} " in f"{cmdline} ":
                times = process.cpu_times()
                total += times.user + times.system
    return total


MB = 1024 * 1024
