"""The journal's seal and verify: rows sealed per second, and the time to verify a 100k-row chain.

``seal`` chains rows written unsealed (as the intake and the gateways write them, each with its
MAC) in batches of :data:`hub.journal.SEAL_BATCH`: one UPDATE per batch for the rows, one for the
authenticated head. **Baseline**: the same rows' chain hashes computed in memory, no database
(``journal.<db>.seal.vs_hashing``). ``verify`` walks the whole chain from the genesis hash,
checking every row's hash and MAC and the head's MAC. **Baseline**: one plain SELECT of the same
rows (``journal.<db>.verify.vs_read``), the reading that verification cannot avoid.

Run: ``python bench/journal.py [--seal-rows 20000] [--verify-rows 100000] [--database ...]``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench._common as c
from connectors.exchange import CallContext
from hub import journal
from hub.db.engine import Database
from hub.db.migrate import upgrade
from hub.db.models import JOURNAL

KEY = b"bench journal key".ljust(32, b".")


def rows(count: int, start: int = 0) -> list[dict]:
    """Outbound rows as the gateway writes them (content and MAC), unsealed."""
    made = []
    for i in range(start, start + count):
        context = CallContext(
            correlation_id=f"c-{i // 4}",
            request_id=f"r-{i // 4}",
            client="portal",
            purpose="etat_civil_delivrance_actes",
            legal_basis="legal_obligation",
            citizen_ref=f"cit_{i % 997:040x}",
        )
        made.append(
            journal._row(
                KEY,
                context,
                "outbound",
                "etat_civil",
                "RequestActCopy",
                "ok",
                1,
                12.5,
                f"hmac-sha256:{i:064x}",
                None,
                None,
            )
        )
    return made


def insert(db: Database, count: int) -> None:
    done = 0
    while done < count:
        chunk = rows(min(10_000, count - done), done)
        with db.connection() as connection:
            connection.execute(sa.insert(JOURNAL), chunk)
        done += len(chunk)


def seal(db: Database) -> int:
    """The seal as this version of the hub takes it (with the key since the head is authenticated)."""
    if "key" in inspect.signature(journal.seal).parameters:
        return journal.seal(db, KEY)
    return journal.seal(db)  # type: ignore[call-arg]


def hashing_rate(count: int) -> float:
    """Chain hashes of ``count`` rows in memory: the floor of the seal's own work."""
    sample = rows(count)
    started = time.perf_counter()
    running = journal.GENESIS
    for seq, row in enumerate(sample, 1):
        content = {**row, "id": seq, "seq": seq}
        running = journal._content_hash(content, running)
    return count / (time.perf_counter() - started)


def measure(kind: str, workdir: Path, args: argparse.Namespace) -> None:
    with c.fresh_database(kind, workdir) as url:
        upgrade(url)
        db = Database(url)
        try:
            insert(db, args.seal_rows)
            started = time.perf_counter()
            sealed = seal(db)
            elapsed = time.perf_counter() - started
            assert sealed == args.seal_rows, sealed
            c.emit(f"journal.{kind}.seal", sealed / elapsed, "rows/s")
            baseline = hashing_rate(min(args.seal_rows, 20_000))
            c.emit(f"journal.{kind}.seal.hashing_baseline", baseline, "rows/s")
            c.emit(f"journal.{kind}.seal.vs_hashing", c.ratio(sealed / elapsed, baseline), "ratio")

            insert(db, args.verify_rows - args.seal_rows)
            seal(db)
            started = time.perf_counter()
            result = journal.verify(db, KEY)
            verify_s = time.perf_counter() - started
            assert result.ok and result.checked == args.verify_rows, result.describe()
            c.emit(f"journal.{kind}.verify_{args.verify_rows // 1000}k", verify_s, "s")
            started = time.perf_counter()
            with db.reading() as connection:
                read = len(connection.execute(sa.select(JOURNAL)).all())
            read_s = time.perf_counter() - started
            assert read == args.verify_rows
            c.emit(f"journal.{kind}.read_{args.verify_rows // 1000}k_baseline", read_s, "s")
            c.emit(f"journal.{kind}.verify.vs_read", c.ratio(verify_s, read_s), "ratio")
        finally:
            db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seal-rows", type=int, default=20_000, help="rows sealed in the timed seal")
    parser.add_argument("--verify-rows", type=int, default=100_000, help="rows in the verified chain")
    c.database_choices(parser)
    args = parser.parse_args()
    if args.verify_rows < args.seal_rows:
        parser.error("--verify-rows must be at least --seal-rows")
    with c.workspace("hub-bench-journal-") as workdir:
        for kind in c.databases(args.database):
            measure(kind, workdir, args)


if __name__ == "__main__":
    main()
