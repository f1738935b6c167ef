"""Schema migrations: several processes started together (``hub serve`` and ``hub worker`` each
upgrade at start) must not race on the DDL of a fresh PostgreSQL database, and rows stored before
a migration get what it can infer."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT

# Every process imports, then waits for the same instant, then upgrades.
UPGRADE_AT = """
import sys, time
from hub.db.migrate import upgrade
start_at = float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
upgrade(sys.argv[1])
"""


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


@contextlib.contextmanager
def fresh_database(database_template: str, tmp_path) -> Iterator[str]:
    """An empty database of the suite's kind: a new SQLite file, or a new PostgreSQL schema."""
    if not database_template.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    schema = f"migrate_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in database_template else "?"
    admin = _engine(database_template)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{database_template}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_processes_started_together_all_upgrade_a_fresh_postgresql_database(
    database_template, tmp_path
) -> None:
    if not database_template.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; on SQLite every transaction begins IMMEDIATE")
    with fresh_database(database_template, tmp_path) as url:
        start_at = time.time() + 4.0  # after every interpreter has imported the hub
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", UPGRADE_AT, url, str(start_at)],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
        for process in processes:
            process.stdout.close()
            process.stderr.close()
        assert [code for code, _ in outcomes] == [0] * len(processes), "\n".join(e for _, e in outcomes)
        engine = _engine(url)
        with engine.connect() as connection:
            heads = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            tables = connection.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
            ).scalar()
        engine.dispose()
        assert len(heads) == 1 and tables > 10


def test_review_tasks_made_before_0010_get_the_rule_that_can_be_inferred(database_template, tmp_path):
    """The rule a task's explanation names; ``identifier_conflict`` for a task on a later version
    of a known record (only a newly stated identifier made those); none for the score's band, nor
    for a task above the upper threshold whose reason was not stored (the report's above_upper)."""
    from hub.db.migrate import upgrade

    with fresh_database(database_template, tmp_path) as url:
        upgrade(url, "0009")
        engine = _engine(url)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO md_source_records (id, system, local_id, version, record, digest,"
                    " received_at)"
                    " VALUES (:id, 'ecole', :local_id, :version, '{}', 'd', '2026-01-02 03:04:05')"
                ),
                [
                    {"id": 1, "local_id": "A", "version": 1},
                    {"id": 2, "local_id": "B", "version": 1},
                    {"id": 3, "local_id": "A", "version": 2},
                ],
            )
            tasks = [
                (1, 2, "conflict:birth_place", 0.99),  # a conflict
                (2, 1, None, 0.8),  # the score's band
                (2, 1, None, 0.97),  # above upper, reason not stored
                (3, 2, "same_identifier", 0.4),  # a known record's newly stated identifier
                (3, 2, "conflict:birth_date", 0.3),  # the same, in conflict on its traits
            ]
            connection.execute(
                sa.text(
                    "INSERT INTO md_review_tasks (id, status, created_at, source_record_id, golden_id,"
                    " candidate_source_record_id, candidate_golden_id, probability, total, explanation)"
                    " VALUES (:id, 'open', '2026-01-02 03:04:05', :source, 'g1', :candidate, 'g2',"
                    " :probability, 1.0, :explanation)"
                ),
                [
                    {
                        "id": k,
                        "source": source,
                        "candidate": candidate,
                        "probability": probability,
                        "explanation": json.dumps({"rule": rule, "comparisons": [], "total": 1.0}),
                    }
                    for k, (source, candidate, rule, probability) in enumerate(tasks, start=1)
                ],
            )
        upgrade(url)
        with engine.connect() as connection:
            rules = connection.execute(sa.text("SELECT id, rule FROM md_review_tasks ORDER BY id")).all()
        engine.dispose()
    assert [tuple(row) for row in rules] == [
        (1, "conflict:birth_place"),
        (2, None),
        (3, None),
        (4, "identifier_conflict"),
        (5, "identifier_conflict"),
    ]
