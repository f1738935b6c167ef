"""Real-time match: one incoming record against a stored population of 1,000,000 people.

Each measured operation is what the worker does for a request's citizen: read the candidates
through the blocking-key index, score them (Fellegi-Sunter, ``Matcher.decide``), and update the
golden record (new source version, index keys, cross-reference, golden values re-derived, a new
version), committed — in a warm process, one operation at a time, on SQLite and/or PostgreSQL.
Half the incoming records are noisy variants of stored people (accents dropped, a typo in the
surname, the birth place missing, another system's identifier: they link and update a golden
record), half are new people (a new golden record).

Baseline in the same run: the bare indexed candidate SELECT of the store for the same records
(keys computed beforehand), i.e. the floor any real-time matcher pays to read its candidates.

The population is generated (French-looking: Faker's fr_FR name lists if installed, else a short
built-in list; dates over 1930-2024; INSEE codes of ~2,000 communes) and bulk-loaded with the
store's own row formats (executemany on SQLite, COPY on PostgreSQL): one person = one source record,
its blocking keys, a cross-reference, a golden record, its values with lineage and a first version.

The loaded population is cached (it takes minutes to build at 1,000,000 people) under
``var/bench-cache/`` (``HUB_BENCH_CACHE`` elsewhere): the SQLite file and a PostgreSQL template
database, keyed by population size, seed and a fingerprint of what the rows hold (blocking keys,
survivorship policy). Each run measures on a copy upgraded to the current schema, so every run starts
from the same state; ``--rebuild`` builds the cache again.

    .venv/bin/python bench/realtime_match.py [--population 1000000] [--queries 1000]
                                             [--database sqlite|postgres|both] [--rebuild]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pickle
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as c
import sqlalchemy as sa

from hub.config import load_config
from hub.db.engine import Database
from hub.db.migrate import upgrade
from hub.ids import new_id
from hub.master_store import GoldenStore, record_digest, record_json
from hub.server import tune_for_serving
from master_data.matching import IdentityRecord, Matcher, MatchModel, estimate_model
from master_data.survivorship import SourceVersion, derive

CHUNK = 20_000
SYSTEMS = ("etat_civil", "ecole", "finances", "portal")

try:
    from faker.providers.person.fr_FR import Provider as _Names

    SURNAMES = list(_Names.last_names)
    FEMALE = list(_Names.first_names_female)
    MALE = list(_Names.first_names_male)
except ImportError:  # pragma: no cover - faker is a bench extra
    SURNAMES = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy"]
    FEMALE = ["Marie", "Élodie", "Camille", "Léa", "Chloé", "Manon", "Inès", "Sarah", "Jeanne", "Hélène"]
    MALE = ["Jean", "Pierre", "Louis", "Gabriel", "Léo", "Hugo", "Paul", "Lucas", "Nicolas", "Étienne"]
STREET_KINDS = ["rue", "avenue", "place", "chemin", "allée", "boulevard", "impasse", "route"]
TOWN_PREFIXES = ["Saint", "Villeneuve", "Mont", "Bourg", "Font", "Roche", "Pont", "Val", "Beau", "Sainte"]


# ------------------------------------------------------------------------------------ population


class People:
    """A reproducible stream of French-looking identities."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        rnd = random.Random(seed + 1)
        # ~2,000 communes (INSEE code, postal code, name) and ~5,000 street names, as a region has.
        self.places = [f"{rnd.randint(1, 95):02d}{rnd.randint(1, 700):03d}" for _ in range(2000)]
        self.postal = [f"{p[:2]}{rnd.randint(0, 9)}{rnd.randint(0, 9)}0" for p in self.places]
        self.towns = [f"{rnd.choice(TOWN_PREFIXES)}-{rnd.choice(SURNAMES)}" for _ in self.places]
        self.streets = [
            f"{rnd.choice(STREET_KINDS)} {rnd.choice(FEMALE + MALE)} {rnd.choice(SURNAMES)}"
            for _ in range(5000)
        ]

    def person(self, system: str, local_id: str) -> IdentityRecord:
        r = self.rnd
        sex = r.choice("MF")
        names = FEMALE if sex == "F" else MALE
        surname = r.choice(SURNAMES)
        if r.random() < 0.1:
            surname = f"{surname}-{r.choice(SURNAMES)}"
        given = tuple(r.sample(names, r.choice((1, 1, 2, 2, 3))))
        place = r.randrange(len(self.places))
        birth = f"{r.randint(1930, 2024)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        return IdentityRecord(
            system=system,
            local_id=local_id,
            birth_name=surname,
            given_names=given,
            birth_date=birth,
            sex=sex,
            birth_place=self.places[place],
            address=f"{r.randint(1, 120)} {r.choice(self.streets)}",
            postal_code=self.postal[place],
            city=self.towns[place],
            email=f"{given[0].lower()}.{surname.lower()}{r.randint(1, 999)}@example.org"
            if r.random() < 0.5
            else None,
            phone=f"06{r.randint(0, 99_999_999):08d}" if r.random() < 0.5 else None,
        )

    def variant(self, record: IdentityRecord, system: str, local_id: str) -> IdentityRecord:
        """The same person as another system writes them."""
        r = self.rnd
        name = record.birth_name or ""
        kind = r.randrange(4)
        if kind == 0:  # accents dropped, upper case
            name = name.upper().translate(str.maketrans("ÉÈÊËÀÂÎÏÔÖÙÛÇ", "EEEEAAIIOOUUC"))
        elif kind == 1 and len(name) > 4:  # one letter mistyped
            i = r.randrange(1, len(name) - 1)
            name = name[:i] + r.choice("aeiounrst") + name[i + 1 :]
        return IdentityRecord(
            system=system,
            local_id=local_id,
            birth_name=name,
            given_names=record.given_names[:1] if kind == 2 else record.given_names,
            birth_date=record.birth_date,
            sex=record.sex,
            birth_place=None if kind == 3 else record.birth_place,
            address=f"{r.randint(1, 120)} {r.choice(self.streets)}",
            postal_code=record.postal_code,
            city=record.city,
        )


def population_rows(
    people: People, start: int, count: int, matcher: Matcher, store: GoldenStore, now: datetime
) -> tuple[dict[str, list[tuple]], list[IdentityRecord]]:
    """The rows of ``count`` people numbered from ``start``, as the store itself would write them."""
    rows: dict[str, list[tuple]] = {
        k: [] for k in ("sources", "keys", "xrefs", "golden", "values", "versions")
    }
    records = []
    for n in range(start, start + count):
        source_id = n + 1
        record = people.person("etat_civil", f"N-{n:08d}")
        records.append(record)
        golden_id = new_id()
        rows["sources"].append(
            (
                source_id,
                record.system,
                record.local_id,
                1,
                json.dumps(record_json(record)),
                record_digest(record),
                now,
            )
        )
        rows["keys"] += [(key, source_id) for key in sorted(matcher.blocking_keys(record))]
        rows["xrefs"].append((record.system, record.local_id, golden_id, source_id, "new", None, now))
        rows["golden"].append((golden_id, "active", None, 1, now, now))
        values = derive([SourceVersion(source_id, record, now, None)], store.policy)
        snapshot = {
            "values": {
                a: {"value": v.value, "lineage": v.lineage.as_json()} for a, v in sorted(values.items())
            },
            "xrefs": [[record.system, record.local_id]],
        }
        rows["values"] += [
            (
                golden_id,
                a,
                json.dumps(v.value),
                source_id,
                v.lineage.system,
                v.lineage.local_id,
                None,
                now,
                v.lineage.rule,
            )
            for a, v in values.items()
        ]
        rows["versions"].append((golden_id, 1, now, "created", "bench", "active", None, json.dumps(snapshot)))
    return rows, records


COLUMNS = {
    "sources": ("md_source_records", "id, system, local_id, version, record, digest, received_at"),
    "keys": ("md_blocking_keys", "key, source_record_id"),
    "xrefs": ("md_xrefs", "system, local_id, golden_id, source_record_id, link, probability, linked_at"),
    "golden": ("md_golden_records", "id, status, merged_into, version, created_at, updated_at"),
    "values": (
        "md_golden_values",
        "golden_id, attribute, value, source_record_id, system, local_id, exchange_id, observed_at, rule",
    ),
    "versions": ("md_golden_versions", "golden_id, version, at, cause, actor, status, merged_into, golden"),
}
ORDER = ("sources", "golden", "keys", "xrefs", "values", "versions")  # foreign keys first


class Loader:
    """Bulk writes in the store's formats: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"))
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=OFF")  # the load only; the measured hub runs FULL
            self.conn.execute("PRAGMA cache_size=-400000")
        else:
            import psycopg

            self.conn = psycopg.connect(url)

    def write(self, rows: dict[str, list[tuple]]) -> None:
        if self.kind == "sqlite":
            with self.conn:
                for name in ORDER:
                    table, columns = COLUMNS[name]
                    marks = ", ".join("?" * len(columns.split(",")))
                    self.conn.executemany(
                        f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                        [tuple(_sqlite(v) for v in row) for row in rows[name]],
                    )
            return
        with self.conn.cursor() as cursor:
            for name in ORDER:
                table, columns = COLUMNS[name]
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows[name]:
                        copy.write_row(row)
        self.conn.commit()

    def finish(self, count: int) -> None:
        if self.kind == "postgres":
            with self.conn.cursor() as cursor:
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence('md_source_records', 'id'), %s)", (count,)
                )
            self.conn.commit()
            # A production table is kept vacuumed by autovacuum; one just bulk-loaded is not yet.
            # VACUUM sets the visibility map, without which the candidate read (an index-only scan
            # of md_blocking_keys) visits the table for every index entry it returns.
            self.conn.autocommit = True
            self.conn.execute("VACUUM (ANALYZE)")
        else:
            self.conn.execute("ANALYZE")
        self.conn.close()


def _sqlite(value: object) -> object:
    # SQLAlchemy's DateTime on SQLite: naive UTC text, as hub.db.models.UTCDateTime writes it.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return value


# ------------------------------------------------------------------------------------ the cache

CACHE = Path(os.environ.get("HUB_BENCH_CACHE", c.ROOT / "var" / "bench-cache"))
# Bump when People or population_rows change what is generated.
POPULATION_FORMAT = 1


class PopulationCache:
    """The loaded population, kept between runs: a SQLite file and a PostgreSQL template database.

    Built under a temporary name and renamed when complete, so an interrupted build is never
    taken for a cached one; measured on copies, so each run starts from the same state."""

    def __init__(self, args: argparse.Namespace, store: GoldenStore, matcher: Matcher) -> None:
        # What the stored rows depend on besides size and seed: the blocking keys of a few probe
        # people and the survivorship policy (another branch's rules make another population).
        probe = People(1)
        probes = [probe.person("etat_civil", f"P-{i}") for i in range(50)]
        fingerprint = hashlib.sha256(
            repr(([sorted(matcher.blocking_keys(r)) for r in probes], store.policy)).encode()
        ).hexdigest()[:12]
        # Not keyed by the schema's revision: each copy is upgraded to the head before it is
        # measured, as a deployed store would be, so a migration elsewhere needs no rebuild.
        key = f"{args.population}-{args.seed}-f{POPULATION_FORMAT}-{fingerprint}"
        self.folder = CACHE / f"realtime-{key}"
        self.sqlite = self.folder / "population.db"
        self.state = self.folder / "people.pickle"
        self.pg_name = "hub_rt_cache_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        self.pg_base = c.PG_ADMIN_URL.rsplit("/", 1)[0]

    def missing(self, kinds: list[str]) -> list[str]:
        if not self.state.exists():
            return list(kinds)
        return [kind for kind in kinds if not self._has(kind)]

    def _has(self, kind: str) -> bool:
        if kind == "sqlite":
            return self.sqlite.exists()
        with self._admin() as connection:
            return bool(
                connection.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": self.pg_name}
                ).first()
            )

    @contextlib.contextmanager
    def _admin(self) -> Iterator[sa.Connection]:
        engine = sa.create_engine(c.sa_url(c.PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()

    def build(self, kinds: list[str], args: argparse.Namespace, store: GoldenStore, matcher: Matcher) -> None:
        """Generate the population once, bulk-load it into each database, and keep the result."""
        self.folder.mkdir(parents=True, exist_ok=True)
        building = {}
        for kind in kinds:
            if kind == "sqlite":
                path = self.sqlite.with_suffix(".building")
                c.remove_sqlite(path)
                building[kind] = f"sqlite:///{path}"
            else:
                with self._admin() as connection:
                    for name in (f"{self.pg_name}_building", self.pg_name):
                        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    connection.execute(sa.text(f'CREATE DATABASE "{self.pg_name}_building"'))
                building[kind] = f"{self.pg_base}/{self.pg_name}_building"
        for url in building.values():
            upgrade(url)
        people, sample = load(building, args, store, matcher)
        for kind in kinds:
            if kind == "sqlite":
                self.sqlite.with_suffix(".building").rename(self.sqlite)
            else:
                with self._admin() as connection:
                    connection.execute(
                        sa.text(f'ALTER DATABASE "{self.pg_name}_building" RENAME TO "{self.pg_name}"')
                    )
        with self.state.open("wb") as file:
            pickle.dump({"rnd": people.rnd.getstate(), "sample": sample}, file)
        c.note(f"population cached: {self.folder} and PostgreSQL database {self.pg_name}")

    def people(self, args: argparse.Namespace) -> tuple[People, list[IdentityRecord]]:
        """The generator where the population's generation left it, and the sample of stored people."""
        with self.state.open("rb") as file:
            state = pickle.load(file)  # our own cache file
        people = People(args.seed)
        people.rnd.setstate(state["rnd"])
        return people, state["sample"]

    @contextlib.contextmanager
    def copy(self, kind: str, workdir: Path) -> Iterator[str]:
        """A throw-away copy of the cached population to measure on."""
        started = time.perf_counter()
        if kind == "sqlite":
            path = workdir / "population.db"
            shutil.copyfile(self.sqlite, path)
            upgrade(f"sqlite:///{path}")
            c.note(f"sqlite: copied the cached population in {time.perf_counter() - started:.0f} s")
            try:
                yield f"sqlite:///{path}"
            finally:
                c.remove_sqlite(path)
            return
        name = f"hub_rt_run_{os.getpid()}"
        with self._admin() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(
                sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_name}" STRATEGY FILE_COPY')
            )
        upgrade(f"{self.pg_base}/{name}")
        c.note(f"postgres: copied the cached population in {time.perf_counter() - started:.0f} s")
        try:
            yield f"{self.pg_base}/{name}"
        finally:
            with self._admin() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ------------------------------------------------------------------------------------ measuring


def load(
    urls: dict[str, str], args: argparse.Namespace, store: GoldenStore, matcher: Matcher
) -> tuple[People, list[IdentityRecord]]:
    """Generate the population once and bulk-load it into every database; return a sample of it."""
    people = People(args.seed)
    loaders = {kind: Loader(kind, url) for kind, url in urls.items()}
    seconds = dict.fromkeys(urls, 0.0)
    sample: list[IdentityRecord] = []
    now = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, args.population, CHUNK):
        rows, records = population_rows(
            people, start, min(CHUNK, args.population - start), matcher, store, now
        )
        for kind, loader in loaders.items():
            t0 = time.perf_counter()
            loader.write(rows)
            seconds[kind] += time.perf_counter() - t0
        sample += records[:: max(1, args.population // (args.queries * 4))]
        if (start // CHUNK) % 10 == 0:
            c.note(f"{start + len(records):,} people generated and loaded")
    for kind, loader in loaders.items():
        t0 = time.perf_counter()
        loader.finish(args.population)
        seconds[kind] += time.perf_counter() - t0
        c.note(f"{kind}: {args.population:,} people, rows bulk-loaded in {seconds[kind]:.0f} s")
    c.note(f"generation and load: {time.perf_counter() - started:.0f} s")
    return people, sample


def measure(
    kind: str,
    url: str,
    incoming: list[IdentityRecord],
    args: argparse.Namespace,
    store: GoldenStore,
    matcher: Matcher,
) -> None:
    prefix = f"realtime.{kind}"
    db = Database(url)
    keys = [matcher.blocking_keys(record) for record in incoming]
    baseline, latencies, commits, candidates, outcomes, cpu = [], [], [], [], {}, []
    for i, record in enumerate(incoming):
        # Measured: keys + candidates + scoring + golden-record update, committed. First, so that
        # no read of the same keys has warmed their index and row pages just before.
        cpu0 = time.thread_time()
        t1 = time.perf_counter()
        with db.connection() as connection:
            resolution = store.resolve(connection, record, matcher, now=datetime.now(UTC))
            t_commit = time.perf_counter()
        t2 = time.perf_counter()
        cpu.append((time.thread_time() - cpu0) * 1000)
        if i < args.warmup:
            continue
        latencies.append((t2 - t1) * 1000)
        commits.append((t2 - t_commit) * 1000)
        outcomes[resolution.outcome] = outcomes.get(resolution.outcome, 0) + 1
    for i in range(args.warmup, len(incoming)):
        # Baseline, in a pass of its own afterwards: the bare indexed candidate SELECT (keys
        # computed beforehand) on a read session. Its pages are warm by now, which only favours
        # the baseline (the ratio is conservative); its count includes the stored incoming record.
        t0 = time.perf_counter()
        with db.sessions() as session:
            found = store.candidates(session.connection(), keys[i])
        baseline.append((time.perf_counter() - t0) * 1000)
        candidates.append(len(found))
    if kind == "sqlite":
        wal = Path(url.removeprefix("sqlite:///") + "-wal")
        c.note(f"sqlite: WAL file at the end of the run: {wal.stat().st_size / 1e6:.1f} MB")
    db.dispose()
    c.emit(f"{prefix}.p50", c.percentile(latencies, 50), "ms")
    c.emit(f"{prefix}.p99", c.percentile(latencies, 99), "ms")
    # The durable commit alone (WAL fsync on SQLite with synchronous=FULL, WAL flush on PostgreSQL):
    # the part of the tail that is the disk's, not the matcher's.
    c.emit(f"{prefix}.commit.p50", c.percentile(commits, 50), "ms")
    c.emit(f"{prefix}.commit.p99", c.percentile(commits, 99), "ms")
    # This thread's CPU time per operation: what the operation costs, whatever the machine's load
    # (the latency of a shared machine is mostly waiting for a core).
    cpu = cpu[args.warmup :]
    c.emit(f"{prefix}.cpu.p50", c.percentile(cpu, 50), "ms")
    c.emit(f"{prefix}.cpu.p99", c.percentile(cpu, 99), "ms")
    c.emit(f"{prefix}.baseline_select.p50", c.percentile(baseline, 50), "ms")
    c.emit(f"{prefix}.baseline_select.p99", c.percentile(baseline, 99), "ms")
    c.emit(
        f"{prefix}.p99_vs_baseline", c.ratio(c.percentile(latencies, 99), c.percentile(baseline, 99)), "ratio"
    )
    c.emit(f"{prefix}.candidates_mean", sum(candidates) / len(candidates), "records")
    c.emit(f"{prefix}.candidates_max", max(candidates), "records")
    for outcome in ("link", "review", "new"):
        c.emit(f"{prefix}.outcome_{outcome}", outcomes.get(outcome, 0), "records")


def incoming_records(
    people: People, sample: list[IdentityRecord], count: int, seed: int
) -> list[IdentityRecord]:
    """Half noisy variants of stored people (from other systems), half new people."""
    rnd = random.Random(seed + 7)
    records = []
    for q in range(count):
        system = SYSTEMS[1 + q % 3]
        if q % 2 == 0:
            records.append(people.variant(rnd.choice(sample), system, f"Q-{q}"))
        else:
            records.append(people.person(system, f"Q-{q}"))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.database_choices(parser)
    parser.add_argument("--population", type=int, default=1_000_000, help="stored people")
    parser.add_argument("--queries", type=int, default=1000, help="measured incoming records")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured incoming records first")
    parser.add_argument(
        "--estimate-sample", type=int, default=50_000, help="records the EM model learns from"
    )
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument(
        "--rebuild", action="store_true", help="build the cached population again (minutes at 1,000,000)"
    )
    args = parser.parse_args(argv)
    one, five, _ = os.getloadavg()
    c.note(f"machine load before: {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cores")

    config, _ = load_config(c.ROOT / "config" / "hub.yaml")
    settings = config.master_data
    store = GoldenStore(
        settings.policy(), settings.max_candidates, settings.max_key_records, settings.portal_system
    )
    people = People(args.seed + 99)
    started = time.perf_counter()
    training = [people.person("etat_civil", f"T-{i}") for i in range(args.estimate_sample)]
    training += [
        people.variant(r, "ecole", f"V-{i}") for i, r in enumerate(training[: args.estimate_sample // 5])
    ]
    model = estimate_model(training) if args.estimate_sample >= 1000 else MatchModel.default()
    c.note(f"model estimated (EM) on {len(training):,} records in {time.perf_counter() - started:.1f} s")
    matcher = Matcher(model, settings.thresholds.upper, settings.thresholds.lower)

    kinds = c.databases(args.database)
    cache = PopulationCache(args, store, matcher)
    missing = kinds if args.rebuild else cache.missing(kinds)
    if missing:
        cache.build(missing, args, store, matcher)
    people, sample = cache.people(args)
    incoming = incoming_records(people, sample, args.queries + args.warmup, args.seed)
    c.emit("realtime.population", args.population, "people")
    # Measured as the worker runs it: `hub worker` and `hub serve` tune the interpreter once loaded
    # (start-up objects frozen out of the collector's way, young generations collected less often).
    # Without it, the collections of this process's own build and generated people land in the tail.
    tune_for_serving()
    with c.workspace("hub-bench-realtime-") as workdir:
        for kind in kinds:
            with cache.copy(kind, workdir) as url:
                measure(kind, url, incoming, args, store, matcher)
    one, five, _ = os.getloadavg()
    c.note(f"machine load after: {one:.2f} (1 min), {five:.2f} (5 min)")
    c.emit("realtime.machine_load_1min", one, "load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
